"""Load SAE-Lens dictionaries: a release + id from the hub, a local folder, or an SAE object.

The on-disk format is SAE-Lens's own: a folder with `cfg.json` and `sae_weights.safetensors`
(what `SAE.save_model(folder)` writes). Standard, top-k, JumpReLU and gated SAEs and transcoders
all use it; the architecture is read from `cfg.json`. A folder with a `config.yaml` is a
circuit-tracer transcoder set instead (`feature_lens.loading.transcoder_set`).
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any, cast

import torch

from feature_lens.errors import LoadingError
from feature_lens.loading.hub import ensure_hub_available
from feature_lens.loading.transcoder_set import is_transcoder_set, load_transcoder_set

SAE_CONFIG_FILE = "cfg.json"
SAE_WEIGHTS_FILE = "sae_weights.safetensors"


def load_sae(
    source: Any,
    sae_id: str | None = None,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> Any:
    """Return an SAE-Lens `SAE` (or `Transcoder`).

    Args:
        source: an `sae_lens.SAE` (returned as is, moved to `device`/`dtype`); a folder in SAE-Lens
            format; a circuit-tracer transcoder-set folder (`config.yaml` + `layer_L.safetensors`:
            returns a list, one SAE-Lens transcoder per layer; see `loading.transcoder_set`); or an
            SAE-Lens release name, with `sae_id`.
        sae_id: the SAE's id within the release (only with a release name).
    """
    from sae_lens import SAE

    if isinstance(source, SAE):
        sae_in = cast(Any, source)
        return sae_in.to(device=device, dtype=dtype) if dtype else sae_in.to(device)
    path = Path(str(source)).expanduser()
    if sae_id is None:
        if is_transcoder_set(path):
            return load_transcoder_set(path, device=device, dtype=dtype)
        if path.exists():
            return _load_folder(path, device=device, dtype=dtype)
        raise LoadingError(
            f"{str(source)!r} is not a folder; to load from the hub give a release and an sae_id, "
            "e.g. load_sae('gpt2-small-res-jb', 'blocks.8.hook_resid_pre')."
        )
    return _load_release(str(source), sae_id, device=device, dtype=dtype)


def _load_folder(path: Path, *, device: str | torch.device, dtype: torch.dtype | None) -> Any:
    from sae_lens import SAE

    cfg_file, weights_file = path / SAE_CONFIG_FILE, path / SAE_WEIGHTS_FILE
    missing = [f.name for f in (cfg_file, weights_file) if not f.is_file()]
    if missing:
        raise LoadingError(
            f"{str(path)!r} is not an SAE-Lens SAE folder: missing {', '.join(missing)} "
            f"(expected {SAE_CONFIG_FILE} and {SAE_WEIGHTS_FILE}, as `SAE.save_model` writes)."
        )
    try:
        cfg = json.loads(cfg_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise LoadingError(
            f"{str(cfg_file)!r} is not valid JSON ({error}); the file is corrupt."
        ) from None
    if not isinstance(cfg, dict) or "architecture" not in cfg or "d_in" not in cfg:
        raise LoadingError(
            f"{str(cfg_file)!r} is not an SAE-Lens config: it needs at least 'architecture', "
            "'d_in' and 'd_sae'."
        )
    try:
        sae = cast(Any, SAE.load_from_disk(path, device=str(device)))
    except Exception as error:
        raise LoadingError(
            f"could not load the SAE in {str(path)!r}: {type(error).__name__}: {error}. "
            "The weights file may be corrupt or not match cfg.json."
        ) from None
    return sae.to(dtype=dtype) if dtype is not None else sae


def _load_release(
    release: str, sae_id: str, *, device: str | torch.device, dtype: torch.dtype | None
) -> Any:
    from sae_lens import SAE
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    directory = get_pretrained_saes_directory()
    if release not in directory:
        close = difflib.get_close_matches(release, list(directory), n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise LoadingError(f"unknown SAE-Lens release {release!r}.{hint}")
    lookup = directory[release]
    if sae_id not in lookup.saes_map:
        close = difflib.get_close_matches(sae_id, list(lookup.saes_map), n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise LoadingError(f"release {release!r} has no SAE {sae_id!r}.{hint}")
    ensure_hub_available(
        lookup.repo_id,
        f"{lookup.saes_map[sae_id]}/{SAE_CONFIG_FILE}",
        what=f"SAE {release}/{sae_id}",
        local_hint=(
            "On a machine with network, run `SAE.from_pretrained(release, sae_id).save_model(folder)`"
            ", copy the folder here and call load_sae(folder)."
        ),
    )
    sae = cast(Any, SAE.from_pretrained(release, sae_id, device=str(device)))
    return sae.to(dtype=dtype) if dtype is not None else sae
