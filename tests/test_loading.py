"""Loading models and SAEs: round trips through the real on-disk formats, and every error path."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from feature_lens import Lens, load_model, load_sae
from feature_lens.errors import IncompatibleDictionaryError, LoadingError, OfflineError
from tests.conftest import WORDS, make_model, make_sae, make_tokenizer

ARCHITECTURES = ["standard", "topk", "jumprelu", "gated", "transcoder"]


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_sae_round_trip_through_sae_lens_folder(architecture: str, tmp_path: Path) -> None:
    sae = make_sae(architecture, 16, "blocks.0.hook_resid_post", seed=3)
    sae.save_model(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cfg.json", "sae_weights.safetensors"]
    loaded = load_sae(tmp_path)
    assert type(loaded) is type(sae)
    x = torch.randn(5, 16)
    assert torch.equal(loaded.encode(x), sae.encode(x))
    assert torch.equal(loaded.decode(sae.encode(x)), sae.decode(sae.encode(x)))
    assert loaded.cfg.metadata.hook_name == "blocks.0.hook_resid_post"


def test_sae_object_passes_through_and_moves_dtype() -> None:
    sae = make_sae("standard", 16, "blocks.0.hook_resid_post")
    same = load_sae(sae)
    assert same is sae
    assert load_sae(make_sae("standard", 16, "h"), dtype=torch.float64).W_dec.dtype == torch.float64


def _save_gpt2_folder(folder: Path, tokenizer_folder: Path) -> Any:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(
        n_layer=2, n_embd=32, n_head=4, n_positions=16, vocab_size=len(WORDS) + 2, bos_token_id=0
    )
    hf_model = GPT2LMHeadModel(config).eval()
    hf_model.save_pretrained(folder)
    make_tokenizer(tokenizer_folder).save_pretrained(folder)
    return hf_model


def test_local_hugging_face_folder_loads_through_transformer_lens(tmp_path: Path) -> None:
    hf_model = _save_gpt2_folder(tmp_path / "gpt2-tiny", tmp_path / "tok")
    model = load_model(tmp_path / "gpt2-tiny")
    assert model.cfg.n_layers == 2
    assert model.cfg.d_model == 32
    tokens = model.to_tokens("w1 w2 w3 w4")
    assert tokens[0, 0].item() == 0  # BOS from the folder's own tokenizer
    with torch.no_grad():
        ours = torch.log_softmax(model(tokens), -1)
        theirs = torch.log_softmax(hf_model(tokens).logits, -1)
    # TransformerLens's weight processing (LN folding, centring) keeps log-probs exactly.
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    raw = load_model(
        tmp_path / "gpt2-tiny",
        fold_ln=False,
        center_writing_weights=False,
        center_unembed=False,
        fold_value_biases=False,
    )
    with torch.no_grad():
        torch.testing.assert_close(raw(tokens), hf_model(tokens).logits, atol=1e-5, rtol=0)


def test_missing_or_corrupt_model_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(LoadingError, match="not a Hugging Face model folder"):
        load_model(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{not json")
    with pytest.raises(LoadingError, match="not valid JSON"):
        load_model(tmp_path / "bad")


def test_unknown_model_name_says_what_to_do() -> None:
    with pytest.raises(LoadingError, match="neither a folder nor a model name"):
        load_model("definitely-not-a-model-name")


def test_offline_hub_name_fails_fast_with_local_folder_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(OfflineError, match=r"offline.*load_model\(folder\)"):
        load_model("gpt2")
    with pytest.raises(OfflineError, match=r"offline.*load_sae\(folder\)"):
        load_sae("gpt2-small-res-jb", "blocks.8.hook_resid_pre")
    assert time.perf_counter() - start < 5


def test_offline_without_the_flag_still_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    from feature_lens.loading import hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "HUB_HOST", "hub.invalid")  # never resolves, as on a closed network
    start = time.perf_counter()
    with pytest.raises(OfflineError, match="cannot be reached"):
        load_model("gpt2")
    assert time.perf_counter() - start < 5
    assert os.environ.get("HF_HUB_OFFLINE") is None


def test_unknown_release_and_sae_id_suggest_names() -> None:
    with pytest.raises(LoadingError, match=r"unknown SAE-Lens release.*gpt2-small-res-jb"):
        load_sae("gpt2-small-res-jbb", "blocks.8.hook_resid_pre")
    with pytest.raises(LoadingError, match=r"has no SAE.*blocks\.8\.hook_resid_pre"):
        load_sae("gpt2-small-res-jb", "blocks.8.hook_resid_pree")


def test_sae_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(LoadingError, match="not a folder"):
        load_sae(tmp_path / "nowhere")
    folder = tmp_path / "sae"
    make_sae("standard", 16, "blocks.0.hook_resid_post").save_model(folder)
    (folder / "sae_weights.safetensors").write_bytes(b"garbage")
    with pytest.raises(LoadingError, match="corrupt"):
        load_sae(folder)
    (folder / "cfg.json").write_text("{")
    with pytest.raises(LoadingError, match="not valid JSON"):
        load_sae(folder)
    (folder / "cfg.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(LoadingError, match="not an SAE-Lens config"):
        load_sae(folder)
    (folder / "cfg.json").unlink()
    with pytest.raises(LoadingError, match=r"missing cfg\.json"):
        load_sae(folder)


def test_compatibility_errors(model: Any) -> None:
    with pytest.raises(
        IncompatibleDictionaryError, match=r"does not have.*blocks\.0\.hook_resid_post"
    ):
        Lens(model, [make_sae("standard", 16, "blocks.0.hook_resid_postt")])
    with pytest.raises(IncompatibleDictionaryError, match="expects width 24"):
        Lens(model, [make_sae("standard", 24, "blocks.0.hook_resid_post")])
    other = make_sae("standard", 16, "blocks.0.hook_resid_post", model_name="gpt2")
    with pytest.raises(IncompatibleDictionaryError, match="trained on 'gpt2'"):
        Lens(model, [other])
    assert Lens(model, [other], check_model_name=False).sites == ["blocks.0.hook_resid_post"]
    with pytest.raises(IncompatibleDictionaryError, match="two dictionaries are named"):
        Lens(model, [make_sae("standard", 16, "blocks.0.hook_resid_post")] * 2)
    nameless = make_sae("standard", 16, "")
    with pytest.raises(IncompatibleDictionaryError, match="names no hook"):
        Lens(model, [nameless])


def test_model_dtype_parameter(tokenizer: Any) -> None:
    model = make_model(tokenizer, dtype=torch.float64)
    lens = Lens(model, [make_sae("standard", 16, "blocks.0.hook_resid_post", dtype=torch.float64)])
    assert lens.run("w1 w2").logits.dtype == torch.float64
