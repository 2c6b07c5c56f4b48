"""Benchmark: feature pages for 200 features of one SAE over 2,000 prompts, feature-lens vs
SAEDashboard (`sae-dashboard==0.8.0`), same model, SAE and tokens, timed in the same run.

SAEDashboard pins transformer-lens<3, transformers<4.57 and datasets<4, which conflict with ours,
so it gets a virtual environment of its own (created on first use under --venv) and receives the
model (TransformerLens config + state dict), the SAE (W_enc, b_enc, W_dec, b_dec, threshold-free
ReLU/TopK as a standard SAE) and the tokens through files.

    python benchmarks/bench_dashboard.py [--zoo DIR] [--features 200] [--prompts 2000]

Prints wall time and output size of each, and the speed ratio (target: feature-lens >= 3x faster).
Panels: SAEDashboard's feature-centric view has activation histogram, logit histogram, top/bottom
logits, top-activating sequences by quantile group, feature density; feature-lens pages have those
(logit histogram excepted) plus upstream/downstream features across layers with weights and
method, the error-term share, a neighbourhood graph, and downstream logits by exact ablation.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, sys, time, torch
from safetensors.torch import load_file
from transformer_lens import HookedTransformer, HookedTransformerConfig
from sae_lens import SAE, SAEConfig
from sae_dashboard.sae_vis_data import SaeVisConfig
from sae_dashboard.sae_vis_runner import SaeVisRunner
from sae_dashboard.data_writing_fns import save_feature_centric_vis
work = sys.argv[1]
meta = json.load(open(f"{work}/meta.json"))
torch.set_num_threads(meta["threads"])
model = HookedTransformer(HookedTransformerConfig(**meta["model_cfg"]))
model.load_state_dict(load_file(f"{work}/model.safetensors"), strict=False)
w = load_file(f"{work}/sae.safetensors")
cfg = SAEConfig.from_dict({"architecture": "standard", "d_in": w["W_enc"].shape[0], "d_sae": w["W_enc"].shape[1],
    "dtype": "float32", "device": "cpu", "model_name": "zoo", "hook_name": meta["hook"], "hook_layer": meta["layer"],
    "hook_head_index": None, "activation_fn_str": "relu", "apply_b_dec_to_input": False,
    "finetuning_scaling_factor": False, "context_size": meta["n_ctx"], "dataset_path": "", "prepend_bos": True,
    "normalize_activations": "none", "dataset_trust_remote_code": False, "sae_lens_training_version": None})
sae = SAE(cfg); sae.load_state_dict(w, strict=False)
tokens = load_file(f"{work}/tokens.safetensors")["tokens"]
start = time.perf_counter()
vis_cfg = SaeVisConfig(hook_point=meta["hook"], features=list(range(meta["n_features"])),
    minibatch_size_features=64, minibatch_size_tokens=256, device="cpu", dtype="float32")
data = SaeVisRunner(vis_cfg).run(encoder=sae, model=model, tokens=tokens)
save_feature_centric_vis(sae_vis_data=data, filename=f"{work}/saedashboard.html")
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def size(path: Path) -> int:
    """Bytes under a file or folder."""
    return (
        path.stat().st_size
        if path.is_file()
        else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    )


def ensure_venv(venv: Path) -> Path:
    """SAEDashboard's own virtual environment (created once)."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "sae-dashboard==0.8.0"], check=True
        )
    return python


def main() -> None:
    """Run both and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--zoo", type=Path, default=None, help="zoo folder (default: the shipped one)"
    )
    parser.add_argument("--features", type=int, default=200)
    parser.add_argument("--prompts", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--venv", type=Path, default=Path(tempfile.gettempdir()) / "saedashboard-venv"
    )
    args = parser.parse_args()

    import torch
    from safetensors.torch import save_file

    from feature_lens import Lens
    from feature_lens.dashboard import FeatureId, build_dashboards
    from feature_lens.loading import load_sae
    from feature_lens.zoo import corpus_tokens, load_zoo_model, zoo_dictionary_dirs

    torch.set_num_threads(args.threads)
    dirs = zoo_dictionary_dirs(args.zoo)
    hook = [h for h in dirs if h.endswith("hook_resid_post")][-1]
    model = load_zoo_model(args.zoo)
    sae = load_sae(dirs[hook])
    lens = Lens(model, [sae])
    n_ctx = int(model.cfg.n_ctx)
    tokens = corpus_tokens(args.prompts, n_ctx=n_ctx)
    n_features = min(args.features, lens.dictionary(hook).d_sae)
    work = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))

    start = time.perf_counter()
    features = [FeatureId(hook, i) for i in range(n_features)]
    build_dashboards(lens, work / "feature-lens", tokens, features=features, progress=False)
    ours = time.perf_counter() - start
    print(f"feature-lens:  {ours:8.1f} s  {size(work / 'feature-lens') / 1e6:8.1f} MB")

    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()}, str(work / "model.safetensors")
    )
    save_file(
        {n: getattr(sae, n).detach().contiguous() for n in ("W_enc", "b_enc", "W_dec", "b_dec")},
        str(work / "sae.safetensors"),
    )
    save_file({"tokens": tokens}, str(work / "tokens.safetensors"))
    cfg = {
        k: v
        for k, v in model.cfg.to_dict().items()
        if isinstance(v, (int, float, str, bool)) or v is None
    }
    meta = {
        "model_cfg": cfg,
        "hook": hook,
        "layer": lens.site_layer(hook),
        "n_ctx": n_ctx,
        "n_features": n_features,
        "threads": args.threads,
    }
    (work / "meta.json").write_text(json.dumps(meta))
    (work / "child.py").write_text(CHILD)
    python = ensure_venv(args.venv)
    proc = subprocess.run(
        [str(python), str(work / "child.py"), str(work)], capture_output=True, text=True, check=True
    )
    theirs = json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]
    print(f"SAEDashboard:  {theirs:8.1f} s  {size(work / 'saedashboard.html') / 1e6:8.1f} MB")
    print(f"speed ratio (SAEDashboard / feature-lens): {theirs / ours:.2f}x (target >= 3x)")


if __name__ == "__main__":
    main()
