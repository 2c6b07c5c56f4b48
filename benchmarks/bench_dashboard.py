"""Benchmark: feature pages for 200 features of one SAE over 2,000 prompts, feature-lens vs
SAEDashboard (`sae-dashboard==0.8.0`), same model, SAE and tokens, timed in the same run.

SAEDashboard pins transformer-lens<3, transformers<4.57 and datasets<4, which conflict with ours,
so it gets a virtual environment of its own (created on first use under --venv, by default
`~/.cache/feature-lens-bench/saedashboard-venv`) and receives everything through files: the zoo
folder itself (the model's `model.json` + `model.safetensors`, its Hugging Face tokenizer, the SAE's
SAE-Lens folder, which both sides load with `sae_lens.SAE.load_from_disk`) and the tokens.

    python benchmarks/bench_dashboard.py [--zoo DIR] [--features 200] [--prompts 2000]

The SAE is the zoo's widest (the last of the widest, so a deep residual-stream one). Without a
shipped zoo (`feature_lens/zoo/data`), a stand-in of the same shapes is written first: a randomly
initialised zoo transformer, the zoo tokenizer and a random TopK SAE (d_sae 512, k 12); the run
says which it used.

Prints wall time and output size of each, the speed ratio (target: feature-lens >= 3x faster), and
the panels each has. Each side is timed from a loaded model and SAE to the written pages.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

CHILD = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, PreTrainedTokenizerFast
from transformer_lens import HookedTransformerConfig
from sae_lens import SAE, HookedSAETransformer
from sae_dashboard.sae_vis_data import SaeVisConfig
from sae_dashboard.sae_vis_runner import SaeVisRunner
from sae_dashboard.data_writing_fns import save_feature_centric_vis
work = sys.argv[1]
meta = json.load(open(f"{work}/meta.json"))
torch.set_num_threads(meta["threads"])
# Saved by transformers 5 ("TokenizersBackend", unknown to transformers 4): rebuild the same fast
# tokenizer from its tokenizer.json and special tokens, and save it in transformers 4's format
# (TransformerLens re-loads a tokenizer by its name_or_path).
special = json.load(open(f"{meta['tokenizer']}/tokenizer_config.json"))
PreTrainedTokenizerFast(tokenizer_file=f"{meta['tokenizer']}/tokenizer.json",
    **{k: special[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token") if k in special}
).save_pretrained(f"{work}/tokenizer-tf4")
tokenizer = AutoTokenizer.from_pretrained(f"{work}/tokenizer-tf4")
model = HookedSAETransformer(HookedTransformerConfig(**meta["model_cfg"]), tokenizer=tokenizer)
missing, unexpected = model.load_state_dict(load_file(meta["weights"]), strict=False)
params = dict(model.named_parameters())
assert not [k for k in missing if k in params] and not unexpected, (missing, unexpected)
model.eval()
sae = SAE.load_from_disk(meta["sae"], device="cpu")
# SaeVisRunner.run folds the decoder norms into the encoder, which sae-lens refuses for TopK SAEs
# (it would change which k features win). Without the fold both sides show the SAE's own
# activations, so the instance's fold is a no-op here.
sae.fold_W_dec_norm = lambda: None
tokens = load_file(f"{work}/tokens.safetensors")["tokens"]
start = time.perf_counter()
vis_cfg = SaeVisConfig(hook_point=meta["hook"], features=list(range(meta["n_features"])),
    minibatch_size_features=64, minibatch_size_tokens=256, device="cpu", dtype="float32")
data = SaeVisRunner(vis_cfg).run(encoder=sae, model=model, tokens=tokens)
save_feature_centric_vis(sae_vis_data=data, filename=f"{work}/saedashboard.html")
print(json.dumps({"seconds": time.perf_counter() - start, "sae": type(sae).__name__}))
"""

# What each side's feature page shows (feature-lens: docs/dashboards.md; SAEDashboard: its
# default feature-centric layout, SaeVisLayoutConfig.default_feature_centric_layout).
PANELS_SAEDASHBOARD = [
    "feature tables: neuron alignment (largest W_dec components), correlated neurons, "
    "correlated features (activation correlation)",
    "activation histogram",
    "logit histogram",
    "top/bottom direct logits",
    "top activating sequences and quantile groups",
]
PANELS_FEATURE_LENS = [
    "feature tables: neuron alignment, correlated neurons, correlated features",
    "density and max activation",
    "activation histogram",
    "logit histogram",
    "top/bottom direct logits",
    "top activating examples and quantile groups",
    "strongest prompt in full (circuitsvis)",
    "upstream nodes with weights (attribution patching)",
    "downstream features and logits (exact ablation)",
    "error-term share of the input",
    "neighbourhood graph",
]


def size(path: Path) -> int:
    """Bytes under a file or folder."""
    return (
        path.stat().st_size
        if path.is_file()
        else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    )


def ensure_venv(venv: Path) -> Path:
    """SAEDashboard's own virtual environment (created once; pip's own configuration applies)."""
    python = venv / "bin" / "python"
    if not python.exists():
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        # Its resolution pairs numpy 1.26 with pyarrow 26, which needs numpy 2 (datasets then fails
        # to import): cap pyarrow at a release that supports numpy 1.
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "sae-dashboard==0.8.0", "pyarrow<21"],
            check=True,
        )
    return python


def stand_in_zoo(folder: Path) -> Path:
    """A zoo folder of the shipped zoo's shapes: random transformer, zoo tokenizer, one random
    TopK SAE (512 features, k 12) on the last residual stream, saved in SAE-Lens's format."""
    import sae_lens
    import torch

    from feature_lens.zoo.dictionaries import DICTIONARIES_DIR
    from feature_lens.zoo.model import TOKENIZER_DIR, ZooModelConfig, build_model, save_model
    from feature_lens.zoo.tokenizer import save_tokenizer

    config = ZooModelConfig()
    model = build_model(config, seed=0)
    save_model(model, config, folder)
    save_tokenizer(folder / TOKENIZER_DIR)
    hook = f"blocks.{config.n_layers - 1}.hook_resid_post"
    d_sae = 8 * config.d_model
    sae = sae_lens.TopKSAE(sae_lens.TopKSAEConfig(d_in=config.d_model, d_sae=d_sae, k=12))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(config.d_model, d_sae, generator=generator) / 8)
        sae.W_dec.copy_(sae.W_enc.T / sae.W_enc.T.norm(dim=1, keepdim=True))
    sae.cfg.metadata.hook_name = hook
    sae.save_model(str(folder / DICTIONARIES_DIR / hook))
    return folder


def widest_sae(dirs: dict[str, Path]) -> str:
    """The hook of the widest SAE (the last one among equals: deepest in forward order)."""
    widths = {hook: json.loads((d / "cfg.json").read_text())["d_sae"] for hook, d in dirs.items()}
    top = max(widths.values())
    return [hook for hook in dirs if widths[hook] == top][-1]


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
        "--venv",
        type=Path,
        default=Path.home() / ".cache" / "feature-lens-bench" / "saedashboard-venv",
    )
    args = parser.parse_args()

    import torch
    from safetensors.torch import save_file

    from feature_lens import Lens
    from feature_lens.dashboard import build_dashboards
    from feature_lens.graph.node import feature as feature_node
    from feature_lens.loading import load_sae
    from feature_lens.zoo import corpus_tokens, default_zoo_dir, load_zoo_model, zoo_dictionary_dirs
    from feature_lens.zoo.model import MODEL_WEIGHTS_FILE, TOKENIZER_DIR

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    zoo = args.zoo or default_zoo_dir()
    if not (zoo / "model.json").is_file():
        print(f"no zoo at {zoo}: using a random stand-in of the same shapes")
        zoo = stand_in_zoo(work / "zoo")
    dirs = zoo_dictionary_dirs(zoo)
    hook = widest_sae(dirs)
    model = load_zoo_model(zoo)
    sae = load_sae(dirs[hook])
    lens = Lens(model, [sae])
    n_ctx = int(model.cfg.n_ctx)
    tokens = corpus_tokens(args.prompts, n_ctx=n_ctx)
    d_sae = lens.dictionary(hook).d_sae
    n_features = min(args.features, d_sae)
    print(
        f"zoo {zoo}; SAE {hook} ({type(sae).__name__}, d_sae {d_sae}); {n_features} features; "
        f"{tokens.shape[0]} prompts x {tokens.shape[1]} tokens; {args.threads} thread(s)"
    )

    start = time.perf_counter()
    features = [feature_node(hook, i) for i in range(n_features)]
    ours_dash = build_dashboards(
        lens, work / "feature-lens", tokens, features=features, progress=False
    )
    ours = time.perf_counter() - start
    ours_size = size(work / "feature-lens")
    phases = ", ".join(f"{k} {v:.1f}" for k, v in ours_dash.timings.items())
    print(f"feature-lens:  {ours:8.1f} s  {ours_size / 1e6:8.2f} MB  (cumulative s: {phases})")

    # The same pages without the panels SAEDashboard does not have (neighbours: attribution
    # patching and exact ablation on each feature's top prompts), for a like-for-like time.
    start = time.perf_counter()
    build_dashboards(
        lens,
        work / "feature-lens-same-panels",
        tokens,
        features=features,
        n_neighbour_prompts=0,
        progress=False,
    )
    same = time.perf_counter() - start
    print(f"feature-lens without neighbour panels: {same:8.1f} s")

    save_file({"tokens": tokens}, str(work / "tokens.safetensors"))
    keys = [
        "n_layers",
        "d_model",
        "n_heads",
        "d_head",
        "d_mlp",
        "n_ctx",
        "d_vocab",
        "act_fn",
        "normalization_type",
        "positional_embedding_type",
        "default_prepend_bos",
        "model_name",
    ]
    cfg: dict[str, Any] = {k: getattr(model.cfg, k) for k in keys}
    meta = {
        "model_cfg": cfg,
        "weights": str(zoo / MODEL_WEIGHTS_FILE),
        "tokenizer": str(zoo / TOKENIZER_DIR),
        "sae": str(dirs[hook]),
        "hook": hook,
        "n_features": n_features,
        "threads": args.threads,
    }
    (work / "meta.json").write_text(json.dumps(meta))
    (work / "child.py").write_text(CHILD)
    python = ensure_venv(args.venv)
    proc = subprocess.run(
        [str(python), str(work / "child.py"), str(work)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        print(f"SAEDashboard failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
        sys.exit(1)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    theirs = float(result["seconds"])
    theirs_size = size(work / "saedashboard.html")
    print(f"SAEDashboard:  {theirs:8.1f} s  {theirs_size / 1e6:8.2f} MB  (SAE as {result['sae']})")
    print(f"speed ratio (SAEDashboard / feature-lens): {theirs / ours:.2f}x (target >= 3x)")
    print(f"speed ratio without our neighbour panels: {theirs / same:.2f}x")
    print(f"size ratio (feature-lens / SAEDashboard): {ours_size / theirs_size:.2f}x")
    print(f"panels, feature-lens ({len(PANELS_FEATURE_LENS)}): {'; '.join(PANELS_FEATURE_LENS)}")
    print(f"panels, SAEDashboard ({len(PANELS_SAEDASHBOARD)}): {'; '.join(PANELS_SAEDASHBOARD)}")
    print(f"outputs kept in {work}")


if __name__ == "__main__":
    main()
