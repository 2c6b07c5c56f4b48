"""Shared fixtures: tiny random TransformerLens models and SAE-Lens dictionaries of every kind.

Everything is built from configs with fixed seeds, offline, in well under a second.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The CLI's corpus-pass cache goes to a fresh folder, never the user's ~/.cache.
os.environ.setdefault("FEATURE_LENS_CACHE_DIR", tempfile.mkdtemp(prefix="feature-lens-test-cache-"))

WORDS = [f"w{i}" for i in range(40)]


def make_tokenizer(folder: Path, words: list[str] | None = None) -> Any:
    """A word-level tokenizer over `words` (default `WORDS`) with a BOS token, saved in Hugging
    Face format and loaded back."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    vocab = {"<bos>": 0, "<unk>": 1, **{w: i + 2 for i, w in enumerate(words or WORDS)}}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<bos>", unk_token="<unk>", pad_token="<unk>"
    )
    fast.save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)


def make_model(
    tokenizer: Any = None,
    *,
    n_layers: int = 2,
    d_model: int = 16,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    act_fn: str = "gelu",
) -> Any:
    """A random HookedTransformer with attention and MLPs (vocab 42, context 12)."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(
        n_layers=n_layers,
        d_model=d_model,
        n_ctx=12,
        d_head=4,
        n_heads=d_model // 4,
        d_mlp=4 * d_model,
        d_vocab=len(WORDS) + 2,
        act_fn=act_fn,
        normalization_type="LN",
        seed=seed,
        dtype=dtype,
        model_name="tiny-test-model",
    )
    model = HookedTransformer(cfg, tokenizer=tokenizer)
    # Random LayerNorm gains and biases so that no frozen quantity is trivially 1 or 0.
    with torch.no_grad():
        generator = torch.Generator().manual_seed(seed + 1)
        for name, param in model.named_parameters():
            if name.endswith(("ln1.w", "ln2.w", "ln_final.w")):
                param.copy_(1 + 0.2 * torch.randn(param.shape, generator=generator, dtype=dtype))
            elif name.endswith(("b_in", "b_out", "b_O", "b_Q", "b_K", "b_V")) or ".ln" in name:
                param.copy_(0.1 * torch.randn(param.shape, generator=generator, dtype=dtype))
    return model.eval()


def make_sae(
    architecture: str,
    d_in: int,
    hook_name: str,
    *,
    d_sae: int = 48,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    d_out: int | None = None,
    hook_name_out: str | None = None,
    model_name: str = "tiny-test-model",
) -> Any:
    """An SAE-Lens SAE of `architecture` ("standard", "topk", "jumprelu", "gated", "transcoder")
    with random weights and biases chosen so that roughly a third of features fire."""
    import sae_lens

    torch.manual_seed(seed)
    common: dict[str, Any] = {"d_in": d_in, "d_sae": d_sae, "dtype": str(dtype).split(".")[-1]}
    if architecture == "standard":
        sae: Any = sae_lens.StandardSAE(sae_lens.StandardSAEConfig(**common))
    elif architecture == "topk":
        sae = sae_lens.TopKSAE(sae_lens.TopKSAEConfig(**common, k=6))
    elif architecture == "jumprelu":
        sae = sae_lens.JumpReLUSAE(sae_lens.JumpReLUSAEConfig(**common))
    elif architecture == "gated":
        sae = sae_lens.GatedSAE(sae_lens.GatedSAEConfig(**common))
    elif architecture == "transcoder":
        sae = sae_lens.Transcoder(
            sae_lens.TranscoderConfig(**common, d_out=d_out or d_in, apply_b_dec_to_input=False)
        )
    else:
        raise ValueError(architecture)
    generator = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for name, param in sae.named_parameters():
            scale = 0.3 if name.startswith("W") else 0.05
            param.copy_(scale * torch.randn(param.shape, generator=generator, dtype=dtype))
        if architecture == "jumprelu":
            sae.threshold.copy_(
                0.05 * torch.rand(sae.threshold.shape, generator=generator, dtype=dtype)
            )
    sae.cfg.metadata.hook_name = hook_name
    sae.cfg.metadata.model_name = model_name
    if hook_name_out is not None:
        sae.cfg.metadata.hook_name_out = hook_name_out
    return sae


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return make_tokenizer(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture(scope="session")
def model(tokenizer: Any) -> Any:
    return make_model(tokenizer)


def full_dictionaries(model: Any, *, dtype: torch.dtype = torch.float32) -> list[Any]:
    """One dictionary of every kind: top-k attention-output SAE, MLP transcoder, standard, JumpReLU
    and gated residual SAEs, and a standard attention-output SAE."""
    d = model.cfg.d_model
    return [
        make_sae("topk", d, "blocks.0.hook_attn_out", seed=1, dtype=dtype),
        make_sae(
            "transcoder",
            d,
            "blocks.0.ln2.hook_normalized",
            seed=2,
            dtype=dtype,
            hook_name_out="blocks.0.hook_mlp_out",
        ),
        make_sae("standard", d, "blocks.0.hook_resid_post", seed=3, dtype=dtype),
        make_sae("jumprelu", d, "blocks.1.hook_resid_mid", seed=4, dtype=dtype),
        make_sae("standard", d, "blocks.1.hook_attn_out", seed=5, dtype=dtype),
        make_sae("gated", d, "blocks.1.hook_resid_post", seed=6, dtype=dtype),
    ]
