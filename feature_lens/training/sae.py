"""Train SAE-Lens sparse autoencoders on activations held in memory.

SAE-Lens's `SAETrainer` does the optimisation (its losses, its Adam set-up, its dead-feature
bookkeeping); this module only feeds it minibatches from a tensor, so the same trainer works offline
on activations gathered from any model, toy or transformer. Minibatches are drawn without
replacement: each pass over the data is a fresh permutation from a seeded generator.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, cast

import torch
from jaxtyping import Float
from torch import Tensor

from feature_lens.typed import manual_seed

Architecture = Literal["standard", "topk", "jumprelu", "gated"]
ARCHITECTURES: tuple[Architecture, ...] = ("standard", "topk", "jumprelu", "gated")


def _minibatches(
    activations: Float[Tensor, "n d_in"], batch_size: int, seed: int
) -> Iterator[Float[Tensor, "batch d_in"]]:
    """Yield minibatches forever, each epoch a fresh seeded permutation (no replacement within one)."""
    n = activations.shape[0]
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - batch_size + 1, batch_size):
            yield activations[order[start : start + batch_size]]


def _training_sae(architecture: Architecture, common: dict[str, Any], extra: dict[str, Any]) -> Any:
    import sae_lens

    classes: dict[str, tuple[Any, Any]] = {
        "standard": (sae_lens.StandardTrainingSAEConfig, sae_lens.StandardTrainingSAE),
        "topk": (sae_lens.TopKTrainingSAEConfig, sae_lens.TopKTrainingSAE),
        "jumprelu": (sae_lens.JumpReLUTrainingSAEConfig, sae_lens.JumpReLUTrainingSAE),
        "gated": (sae_lens.GatedTrainingSAEConfig, sae_lens.GatedTrainingSAE),
    }
    if architecture not in classes:
        raise ValueError(
            f"unknown SAE architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}"
        )
    cfg_cls, sae_cls = classes[architecture]
    return sae_cls(cfg_cls(**common, **extra))


def train_sae(
    activations: Float[Tensor, "n d_in"],
    *,
    d_sae: int,
    total_samples: int,
    architecture: Architecture = "standard",
    l1_coefficient: float = 1.0,
    k: int | None = None,
    batch_size: int = 256,
    lr: float = 3e-4,
    seed: int = 0,
    device: str | torch.device = "cpu",
    hook_name: str = "hook",
    model_name: str | None = None,
    progress: bool = False,
) -> Any:
    """Train an SAE-Lens SAE on `activations` and return the inference SAE (`sae_lens.SAE`).

    Args:
        activations: training data, one row per token, shape `[n, d_in]`.
        d_sae: number of features.
        total_samples: rows seen during training (steps = total_samples // batch_size).
        architecture: "standard" (ReLU + L1), "topk", "jumprelu" or "gated".
        l1_coefficient: sparsity coefficient (L1 for standard/gated, L0 for jumprelu).
        k: active features per row, for "topk" (required there).
        seed: seeds the initialisation and the minibatch order.
        hook_name, model_name: recorded in the SAE's metadata, so loaders can check the site.

    The returned SAE went through SAE-Lens's own save/load round trip, so it is exactly what
    `SAE.load_from_disk` gives back for the files `sae.save_model(dir)` writes.
    """
    import sae_lens
    from sae_lens.config import SAETrainerConfig

    if activations.ndim != 2:
        raise ValueError(f"activations must be [n, d_in], got shape {tuple(activations.shape)}")
    if activations.shape[0] < batch_size:
        raise ValueError(
            f"need at least batch_size={batch_size} rows of activations, got {activations.shape[0]}"
        )
    if architecture == "topk" and k is None:
        raise ValueError("architecture='topk' needs k (the number of active features per row)")
    device_str = str(device)
    dtype = str(activations.dtype).removeprefix("torch.")
    common: dict[str, Any] = {
        "d_in": activations.shape[1],
        "d_sae": d_sae,
        "dtype": dtype,
        "device": device_str,
    }
    extra: dict[str, Any] = {}
    if architecture in ("standard", "gated"):
        extra["l1_coefficient"] = l1_coefficient
    elif architecture == "jumprelu":
        extra["l0_coefficient"] = l1_coefficient
    elif architecture == "topk":
        extra["k"] = k
    manual_seed(seed)
    sae = _training_sae(architecture, common, extra)
    sae.cfg.metadata.hook_name = hook_name
    if model_name is not None:
        sae.cfg.metadata.model_name = model_name
    trainer_cfg = SAETrainerConfig(
        total_training_samples=total_samples,
        train_batch_size_samples=batch_size,
        lr=lr,
        lr_end=lr,
        device=device_str,
    )
    data = _minibatches(activations.to(device_str), batch_size, seed)
    trainer = cast(Any, sae_lens.SAETrainer(trainer_cfg, sae, data))
    trained: Any = trainer.fit() if progress else _fit_quietly(trainer)
    with tempfile.TemporaryDirectory() as tmp:
        trained.save_inference_model(tmp)
        return cast(Any, sae_lens.SAE.load_from_disk(Path(tmp), device=device_str))


def _fit_quietly(trainer: Any) -> Any:
    """Run `trainer.fit()` with SAE-Lens's progress bar disabled (it has no switch of its own)."""
    import sae_lens.training.sae_trainer as trainer_module

    real_tqdm = trainer_module.tqdm

    def quiet_tqdm(*args: Any, **kwargs: Any) -> Any:
        return real_tqdm(*args, **{**kwargs, "disable": True})

    trainer_module.tqdm = quiet_tqdm
    try:
        return trainer.fit()
    finally:
        trainer_module.tqdm = real_tqdm
