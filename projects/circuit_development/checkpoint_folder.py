"""A folder of training checkpoints of any TransformerLens model: find the steps, load one.

Two layouts are understood (the step is the integer after `step_` in the name):

1. **Zoo folders**, as `checkpoints.train_checkpoints` (and the zoo's own `save_model`) write them:
   `root/step_00054/` holding `model.json`, `model.safetensors` and `tokenizer/`.
2. **Any HookedTransformer**: one state-dict file per step next to one `config.json`::

       root/config.json               # HookedTransformerConfig fields (json of cfg.to_dict())
       root/step_0.safetensors        # or .pt / .pth: model.state_dict() after 0 updates
       root/step_1000.safetensors
       root/tokenizer/                # optional: a Hugging Face tokenizer folder

   `export_checkpoint` writes one such file (and `config.json` if missing) from a live model, so
   any training loop can produce the folder. Parameters must all be present in a state dict;
   buffers TransformerLens rebuilds itself (attention masks, rotary tables) may be left out.

Nothing is downloaded: a folder is read from disk or rejected with a `LoadingError` that names
the path and the remedy.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from feature_lens.errors import LoadingError

STEP_PATTERN = re.compile(r"^step_(\d+)(\.safetensors|\.pt|\.pth)?$")
CONFIG_FILE = "config.json"
TOKENIZER_DIR = "tokenizer"
ZOO_CONFIG_FILE = "model.json"


@dataclass(frozen=True)
class CheckpointFolder:
    """The checkpoints found under `root`: step -> path (a zoo folder or a state-dict file)."""

    root: Path
    paths: dict[int, Path]

    @classmethod
    def open(cls, root: str | Path) -> CheckpointFolder:
        """Scan `root` for `step_<N>` entries; raise `LoadingError` if there are none."""
        folder = Path(root)
        if not folder.is_dir():
            raise LoadingError(
                f"checkpoint folder {folder} does not exist; pass a folder of step_<N> checkpoints"
            )
        paths: dict[int, Path] = {}
        for entry in sorted(folder.iterdir()):
            match = STEP_PATTERN.match(entry.name)
            if match is None:
                continue
            is_zoo = (
                entry.is_dir() and match.group(2) is None and (entry / ZOO_CONFIG_FILE).is_file()
            )
            is_file = entry.is_file() and match.group(2) is not None
            if not (is_zoo or is_file):
                continue
            step = int(match.group(1))
            if step in paths:
                raise LoadingError(
                    f"two checkpoints for step {step} in {folder}: {paths[step].name} and "
                    f"{entry.name}; keep one"
                )
            paths[step] = entry
        if not paths:
            raise LoadingError(
                f"no checkpoints in {folder}: expected step_<N>/ zoo folders or step_<N>.safetensors "
                f"files next to {CONFIG_FILE} (see projects/circuit_development/README.md)"
            )
        if any(p.is_file() for p in paths.values()) and not (folder / CONFIG_FILE).is_file():
            raise LoadingError(
                f"{folder / CONFIG_FILE} not found: state-dict checkpoints need the model's "
                "HookedTransformerConfig as JSON (export_checkpoint writes it)"
            )
        return cls(folder, dict(sorted(paths.items())))

    @property
    def steps(self) -> list[int]:
        """The training steps present, ascending."""
        return list(self.paths)

    def load(self, step: int, *, device: str | torch.device = "cpu") -> Any:
        """The `HookedTransformer` after `step` updates, in eval mode (tokenizer attached if any)."""
        if step not in self.paths:
            raise LoadingError(
                f"no checkpoint for step {step} in {self.root}; present: {self.steps}"
            )
        path = self.paths[step]
        if path.is_dir():
            from feature_lens.zoo.loading import load_zoo_model

            return load_zoo_model(path, device=device)
        return _load_state_dict_checkpoint(self.root, path, device)


def _read_config(root: Path) -> Any:
    from transformer_lens import HookedTransformerConfig

    fields = json.loads((root / CONFIG_FILE).read_text())
    dtype = fields.pop("dtype", "float32")
    fields = {k: v for k, v in fields.items() if k in HookedTransformerConfig.__dataclass_fields__}
    fields["dtype"] = getattr(torch, str(dtype).removeprefix("torch."))
    return HookedTransformerConfig(**fields)


def _load_state_dict_checkpoint(root: Path, path: Path, device: str | torch.device) -> Any:
    from transformer_lens import HookedTransformer

    cfg = _read_config(root)
    cfg.device = str(device)
    tokenizer = None
    if (root / TOKENIZER_DIR).is_dir():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(root / TOKENIZER_DIR))
    model = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=True)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        first = str(exc).strip().splitlines()[-1].strip()
        raise LoadingError(
            f"{path} does not match {root / CONFIG_FILE}: {first}; save the config of the model "
            "that wrote the checkpoint"
        ) from None
    params = dict(model.named_parameters())
    missing_params = [k for k in missing if k in params]
    if missing_params or unexpected:
        raise LoadingError(
            f"{path} does not match {root / CONFIG_FILE}: missing {missing_params[:5]}, "
            f"unexpected {list(unexpected)[:5]}"
        )
    model.eval()
    return model


def export_checkpoint(model: Any, root: str | Path, step: int) -> Path:
    """Write `model`'s parameters as `root/step_<step>.safetensors` (and `config.json` once)."""
    from safetensors.torch import save_file

    folder = Path(root)
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / CONFIG_FILE
    if not config.is_file():
        fields = {k: v for k, v in model.cfg.to_dict().items() if _jsonable(v)}
        fields["dtype"] = str(model.cfg.dtype).removeprefix("torch.")
        tmp = config.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(fields, indent=2) + "\n")
        tmp.replace(config)
    tensors = {
        name: p.detach().to("cpu").contiguous().clone() for name, p in model.named_parameters()
    }
    path = folder / f"step_{step}.safetensors"
    tmp = folder / f".step_{step}.safetensors.tmp"
    save_file(tensors, str(tmp))
    tmp.replace(path)
    return path


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except TypeError:
        return False
    return True
