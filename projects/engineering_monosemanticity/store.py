"""Results on disk: one JSON file per run, written atomically, with the full config inside.

Layout: ``<results_dir>/<sweep_name>/<var>=<value>[,<var>=<value>]__<config digest>.json`` and, if
asked, the trained weights beside it as ``.pt`` (a plain state dict; load with
``torch.load(..., weights_only=True)``). A run is complete when its JSON exists, so an interrupted
sweep resumes by skipping the files already there; a partly written file is never left behind
(temp file + rename).
"""

from __future__ import annotations

import base64
import json
import math
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from projects.engineering_monosemanticity.config import RunConfig
from projects.engineering_monosemanticity.metrics import (
    monosemanticity_ratio,
    single_feature_activations,
)
from projects.engineering_monosemanticity.train import TrainResult

SCHEMA_VERSION = 1


def run_stem(config: RunConfig, sweep_vars: tuple[str, ...]) -> str:
    """File stem naming a run by its swept values and the digest of its full config."""
    label = ",".join(f"{v}={getattr(config, v):g}" for v in sweep_vars) or "run"
    return f"{label}__{config.digest()}"


def run_path(results_dir: Path, sweep_name: str, config: RunConfig, sweep_vars: tuple[str, ...]):
    """Where the JSON record of this run lives."""
    return Path(results_dir) / sweep_name / f"{run_stem(config, sweep_vars)}.json"


def _round(x: float, digits: int = 6) -> float | None:
    if not math.isfinite(x):
        return None
    return float(f"{x:.{digits}g}")


def environment(threads: int) -> dict[str, Any]:
    """What besides the config decides a run's floating-point bits (see README, Determinism)."""
    return {
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_model": _cpu_model(),
        "threads": threads,
        "mkl_cbwr": os.environ.get("MKL_CBWR"),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def make_record(
    result: TrainResult, sweep_name: str, sweep_vars: tuple[str, ...], runtime_s: float
) -> dict[str, Any]:
    """A JSON-ready dict of everything a figure or the browser needs about one run."""
    model, config = result.model, result.config
    ratios = monosemanticity_ratio(single_feature_activations(model, result.data.embedder)).cpu()
    biases = model.encoder.bias.detach().cpu()
    last = result.snapshots[-1].stats
    return {
        "schema_version": SCHEMA_VERSION,
        "sweep": sweep_name,
        "sweep_vars": list(sweep_vars),
        "config": config.to_dict(),
        "runtime_s": round(runtime_s, 2),
        "environment": environment(result.threads),
        "final": {
            "n_mono": last.n_mono,
            "frac_mono_of_neurons": last.frac_of_neurons,
            "frac_mono_of_features": last.frac_of_features,
            "mean_bias": _round(last.mean_bias),
            "loss": _round(result.final_loss),
        },
        "history": {
            "loss_steps": result.loss_steps,
            "losses": [_round(x, 4) for x in result.losses],
            "snapshot_steps": [s.step for s in result.snapshots],
            "n_mono": [s.stats.n_mono for s in result.snapshots],
            "mean_bias": [_round(s.stats.mean_bias, 4) for s in result.snapshots],
        },
        "final_biases": [_round(float(b), 4) for b in biases],
        "final_encoder": encode_tensors(
            weight=model.encoder.weight.detach(), bias=model.encoder.bias.detach()
        ),
        "final_mono_ratio": [_round(float(r), 4) for r in ratios],
    }


def encode_tensors(**tensors: torch.Tensor) -> dict[str, Any]:
    """Tensors as exact little-endian float32 bytes in base64, with their shapes (for JSON)."""
    out: dict[str, Any] = {}
    for name, t in tensors.items():
        array = t.detach().cpu().to(torch.float32).contiguous().numpy().astype("<f4")
        out[name] = {
            "shape": list(array.shape),
            "f32_b64": base64.b64encode(array.tobytes()).decode(),
        }
    return out


def decode_tensors(encoded: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Inverse of ``encode_tensors``: the exact float32 tensors."""
    out = {}
    for name, item in encoded.items():
        array = np.frombuffer(base64.b64decode(item["f32_b64"]), dtype="<f4")
        out[name] = torch.from_numpy(array.reshape(item["shape"]).copy())
    return out


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` via a temp file and rename (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_weights(path: Path, result: TrainResult) -> None:
    """Save the model and embedding(s) as a state dict beside the JSON record (atomically)."""
    state = {f"model.{k}": v.detach().cpu() for k, v in result.model.state_dict().items()}
    state["embedder"] = result.data.embedder.cpu()
    path.parent.mkdir(parents=True, exist_ok=True)
    if result.data.output_embedder is not None:
        state["output_embedder"] = result.data.output_embedder.cpu()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".pt")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_records(results_dir: Path) -> list[dict[str, Any]]:
    """All run records under ``results_dir`` (recursively), sorted by sweep then file name."""
    paths = sorted(Path(results_dir).rglob("*.json"))
    records = []
    for p in paths:
        if p.name.startswith(".tmp-"):
            continue
        with p.open() as f:
            record = json.load(f)
        if isinstance(record, dict) and "config" in record and "history" in record:
            record["path"] = str(p.relative_to(results_dir))
            records.append(record)
    return records


def load_sweep(
    results_dir: Path, sweep_name: str, var: str, values: list[float] | None = None
) -> tuple[list[dict[str, Any]], list[float]]:
    """The runs of one sweep sorted by ``var``, and which of ``values`` have no run.

    Like the seed's learning-rate sweep loader: ask for the values you expect (e.g. the
    learning rates 0.001 ... 0.032) and get the runs found plus the values still missing (a value
    matches when it equals the run's to 1e-9 relative). Without ``values`` every run is returned.
    """
    folder = Path(results_dir) / sweep_name
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no sweep {sweep_name!r} under {results_dir}; run it first or check --results_dir"
        )
    records = [r for r in load_records(folder) if var in r["config"]]
    records.sort(key=lambda r: float(r["config"][var]))
    if values is None:
        return records, []
    found = [float(r["config"][var]) for r in records]
    chosen = [r for r in records if any(math.isclose(r["config"][var], v, rel_tol=1e-9)
                                        for v in values)]  # fmt: skip
    missing = [v for v in values if not any(math.isclose(v, f, rel_tol=1e-9) for f in found)]
    return chosen, missing
