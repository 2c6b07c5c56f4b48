"""Write `notebooks/circuit_development.ipynb` (unexecuted): it reads the committed results and
draws the figures with `projects.circuit_development.figures`."""

from __future__ import annotations

from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
NOTEBOOK = HERE / "notebooks" / "circuit_development.ipynb"

CELLS: list[tuple[str, str]] = [
    (
        "markdown",
        "# How features and circuits develop while the zoo model trains\n\nReads the committed results of `python -m projects.circuit_development.run` (`projects/circuit_development/results/`); nothing here trains or attributes. See the project README for the story.",
    ),
    (
        "code",
        """\
from pathlib import Path

import projects.circuit_development as project
from projects.circuit_development.figures import (
    accuracy_figure,
    circuits_figure,
    matching_figure,
    read_rows,
    sae_figure,
)

RESULTS = Path(project.__file__).resolve().parent / "results"
accuracy = read_rows(RESULTS / "accuracy.csv")
circuits = read_rows(RESULTS / "circuits.csv")
matching = read_rows(RESULTS / "matching.csv")
checkpoints = sorted({r["step"] for r in circuits})
print(f"{len(accuracy)} evaluation steps, checkpoints {checkpoints}")""",
    ),
    (
        "markdown",
        "## Task accuracy over training\n\nGrey lines: the saved checkpoints.",
    ),
    (
        "code",
        """\
accuracy_figure(accuracy, checkpoints);""",
    ),
    (
        "code",
        """\
from feature_lens.zoo.tasks import TASKS


def first_step(task, level):
    return next((r["step"] for r in accuracy if r[f"{task}_accuracy"] >= level), None)


for task in TASKS:
    print(
        f"{task:10s} top-1 >= 0.5 at step {first_step(task, 0.5)}, >= 0.9 at step {first_step(task, 0.9)}"
    )""",
    ),
    (
        "markdown",
        "## SAEs per checkpoint",
    ),
    (
        "code",
        """\
sae_figure(read_rows(RESULTS / "saes.csv"), read_rows(RESULTS / "live_features.csv"));""",
    ),
    (
        "markdown",
        "## Matching features to the final SAE\n\nHungarian assignment on activation correlation (shared held-out tokens) and on decoder cosine; dash-dotted: a second-seed SAE on the final model at the middle threshold (the ceiling of matching).",
    ),
    (
        "code",
        """\
matching_figure(matching, [0.5, 0.7, 0.9]);""",
    ),
    (
        "markdown",
        "## Circuits across checkpoints\n\nFaithfulness of the top-64 attribution-patching nodes, and the share of the final circuit's features already in the circuit. Hollow markers: the metric's span m(full) - m(empty) is under 1 nat, so the ratio is noise.",
    ),
    (
        "code",
        """\
control = read_rows(RESULTS / "circuits_control.csv")
circuits_figure(circuits, accuracy, 64, control);""",
    ),
    (
        "code",
        """\
for r in circuits:
    if r["task"] in ("ioi", "induction"):
        print(
            f"{r['task']:10s} step {r['step']:5d}  logit diff {r['logit_diff']:6.2f}  faithfulness@64 {r['faithfulness_64']:6.2f}  final circuit present {r['final_circuit_present']:.2f}  exact r {r['exact_correlation']:.2f}"
        )""",
    ),
]


def build() -> nbformat.NotebookNode:
    """The notebook object."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell(text)
        if kind == "markdown"
        else nbformat.v4.new_code_cell(text)
        for kind, text in CELLS
    ]
    for index, cell in enumerate(notebook.cells):
        cell.id = f"cell-{index}"  # stable ids, so regenerating leaves the file unchanged
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return notebook


if __name__ == "__main__":
    NOTEBOOK.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(build(), NOTEBOOK)
