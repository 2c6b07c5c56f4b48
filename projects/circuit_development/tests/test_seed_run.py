"""The seed-settings pipeline end to end on a generic checkpoint folder (the zoo's initialisation
and its trained model exported as state dicts), with a token file and a prompt file as any model
would need, at a tiny size; plus the feature visualisation against a brute-force ranking."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from feature_lens.zoo import corpus_tokens, load_zoo_model
from feature_lens.zoo.model import ZooModelConfig, build_model
from feature_lens.zoo.tokenizer import save_tokenizer
from projects.circuit_development.checkpoint_folder import CheckpointFolder, export_checkpoint
from projects.circuit_development.circuits import task_prompt_set
from projects.circuit_development.config import SaeSettings
from projects.circuit_development.feature_vis import (
    Context,
    FeatureCard,
    feature_card,
    render_pairs,
    top_contexts,
)
from projects.circuit_development.seed_figures import draw_seed_figures
from projects.circuit_development.seed_run import (
    SeedRunConfig,
    run_edges,
    run_matching,
    train_saes,
)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("seed_run")
    folder_path = root / "checkpoints"
    trained = load_zoo_model()
    export_checkpoint(build_model(ZooModelConfig(), trained.tokenizer, seed=0), folder_path, 0)
    export_checkpoint(trained, folder_path, 5000)
    save_tokenizer(folder_path / "tokenizer")
    tokens_file, prompts_file = root / "tokens.pt", root / "prompts.pt"
    torch.save(corpus_tokens(72, split="test"), tokens_file)
    prompts = task_prompt_set("agreement", 4)
    torch.save(
        {"clean": prompts.clean, "corrupted": prompts.corrupted, "answers": prompts.answers},
        prompts_file,
    )
    config = SeedRunConfig(
        sites=("blocks.1.hook_resid_pre", "blocks.2.hook_resid_pre"),
        saes=SaeSettings(
            n_rows=2048, total_samples=2048, buffer_capacity=2048, contexts_per_batch=8
        ),
        n_match_contexts=16,
        edge_steps=(0, 5000),
        n_edge_prompts=4,
        edge_nodes=12,
        edge_top=8,
        vis_step=0,
        vis_pairs=3,
    )
    folder = CheckpointFolder.open(folder_path)
    artifacts, results = root / "artifacts", root / "results"
    tokens = torch.load(tokens_file, weights_only=True)
    train_saes(folder, artifacts, config, folder.steps, tokens)
    run_matching(folder, artifacts, results, config, folder.steps, tokens)
    run_edges(folder, artifacts, results, config, folder.steps, prompts_file)
    return {"results": results, "figures": draw_seed_figures(results), "config": config}


def test_last_checkpoint_matches_itself(run: dict[str, Any]) -> None:
    rows = _rows(run["results"] / "seed_matching.csv")
    for site in run["config"].sites:
        mine = [
            r for r in rows if r["site"] == site and r["step"] == "5000" and r["control"] == "0"
        ]
        seed = [r for r in mine if r["recipe"] == "seed"]
        assert len(seed) == 5
        # every live feature is its own partner at distance 0: matched at every threshold
        for r in seed:
            assert float(r["matched_fraction"]) == pytest.approx(1 - float(r["dead_fraction"]))
        project = [r for r in mine if r["recipe"] == "project"]
        assert all(float(r["matched_fraction"]) == pytest.approx(1.0) for r in project)
        control = [r for r in rows if r["site"] == site and r["control"] == "1"]
        assert control  # the second-seed SAE is compared too
    hist = _rows(run["results"] / "seed_histograms.csv")
    for site in run["config"].sites:
        bins = [
            int(r["count"])
            for r in hist
            if r["site"] == site
            and r["step"] == "5000"
            and r["control"] == "0"
            and r["kind"] == "activation"
        ]
        assert len(bins) == 49
        live = [
            r for r in rows if r["site"] == site and r["step"] == "5000" and r["control"] == "0"
        ]
        n_live = round((1 - float(live[0]["dead_fraction"])) * 512)
        assert bins[-1] == n_live  # all live pairs in the last bin, [0.98, 1]
        assert sum(bins[:-1]) == 0


def test_edges_of_the_last_circuit_persist_in_themselves(run: dict[str, Any]) -> None:
    rows = _rows(run["results"] / "seed_edges.csv")
    last = [r for r in rows if r["step"] == "5000" and r["control"] == "0"]
    assert [r["task"] for r in last] == ["custom"]
    assert float(last[0]["persisted"]) == 1.0
    assert float(last[0]["weighted_jaccard"]) == pytest.approx(1.0)
    assert int(last[0]["n_edges"]) > 0
    assert {r["step"] for r in rows} == {"0", "5000"}
    assert len(run["figures"]) == 3
    html = (run["results"] / "feature_vis.html").read_text()
    assert html.count("<section>") == 3


def test_top_contexts_equal_a_brute_force_ranking() -> None:
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 6, (3, 5), generator=generator)
    column = torch.relu(torch.randn(3 * 4, generator=generator))
    names = ["<b>", "a&b", "c", "d", "e", "f"]
    got = top_contexts(column, tokens, names, k=4, window=2)
    flat = [(float(column[r * 4 + p - 1]), r, p) for r in range(3) for p in range(1, 5)]
    expected = sorted((x for x in flat if x[0] > 0), key=lambda x: -x[0])[:4]
    assert [(c.value, c.row, c.pos) for c in got] == expected
    for c in got:
        assert c.token == names[int(tokens[c.row, c.pos])]
        assert list(c.before) == [names[int(t)] for t in tokens[c.row, max(0, c.pos - 2) : c.pos]]
    card = feature_card("x", column, tokens, names)
    assert card.density == pytest.approx(float((column > 0).double().mean()))
    handmade = FeatureCard("f <1>", 0.5, 2.0, [Context(0, 1, 2.0, ("<script>",), "a&b")])
    page = render_pairs("<title>", [("pair <1>", handmade, card)])
    assert "&lt;title&gt;" in page
    assert "pair &lt;1&gt;" in page
    assert "&lt;script&gt; <b>a&amp;b</b>" in page
    assert "<script" not in page
    assert not np.isnan(card.max_value)
