"""Loading models and SAEs: round trips through the real on-disk formats, and every error path."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from feature_lens import Lens, load_model, load_sae
from feature_lens.errors import IncompatibleDictionaryError, InputError, LoadingError, OfflineError
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
    """Fast means no network attempt at all (the slow path is retrying connections), so any socket
    connection fails the test instead of a wall-clock bound that a loaded machine would break."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    attempts: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError("network access attempted in an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    with pytest.raises(OfflineError, match=r"offline.*load_model\(folder\)"):
        load_model("gpt2")
    with pytest.raises(OfflineError, match=r"offline.*load_sae\(folder\)"):
        load_sae("gpt2-small-res-jb", "blocks.8.hook_resid_pre")
    assert attempts == []


def test_offline_without_the_flag_still_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    from feature_lens.loading import hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "HUB_HOST", "hub.invalid")  # never resolves, as on a closed network
    start = time.perf_counter()
    with pytest.raises(OfflineError, match="cannot be reached"):
        load_model("gpt2")
    # The slow path retries for 23-46 s; the probe gives up after 2 s. 20 s separates the two even
    # on a loaded 2-core machine (5 s did not).
    assert time.perf_counter() - start < 20
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


# ------------------------------------------------------------- local folders as users bring them
def _gpt2_sae(folder: Path, model_name: str) -> Path:
    make_sae("standard", 32, "blocks.0.hook_resid_post", model_name=model_name).save_model(folder)
    return folder


def test_model_is_named_after_its_folder_and_the_name_check_is_an_option(tmp_path: Path) -> None:
    from feature_lens.lens import Directions

    _save_gpt2_folder(tmp_path / "gpt2", tmp_path / "tok")
    sae = _gpt2_sae(tmp_path / "sae", "gpt2-small")
    # The documented route: a folder named like the model, an SAE trained on "gpt2-small".
    assert Lens.load(tmp_path / "gpt2", [sae]).model.cfg.model_name == "gpt2"
    (tmp_path / "gpt2").rename(tmp_path / "my-copy")
    with pytest.raises(
        IncompatibleDictionaryError, match=r"model_name='gpt2-small'.*check_model_name=False"
    ):
        Lens.load(tmp_path / "my-copy", [sae])
    named = Lens.load(tmp_path / "my-copy", [sae], model_name="gpt2")
    assert named.model.cfg.model_name == "gpt2"
    unchecked = Lens.load(tmp_path / "my-copy", [sae], check_model_name=False)
    other = make_sae("standard", 32, "blocks.1.hook_resid_post", model_name="pythia-70m")
    # attach keeps the choice (it used to switch the check back on)
    attached = unchecked.attach(other, Directions(torch.randn(2, 32), "blocks.0.hook_attn_out"))
    assert len(attached.sites) == 3
    with pytest.raises(IncompatibleDictionaryError, match="pythia-70m"):
        named.attach(other)


def test_folder_without_tokenizer_takes_token_ids_and_says_so_for_text(tmp_path: Path) -> None:
    hf_model = _save_gpt2_folder(tmp_path / "m", tmp_path / "tok")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (tmp_path / "m" / name).unlink()
    model = load_model(tmp_path / "m")
    assert model.tokenizer is None
    tokens = torch.tensor([[0, 5, 6, 7]])
    with torch.no_grad():
        torch.testing.assert_close(
            torch.log_softmax(model(tokens), -1),
            torch.log_softmax(hf_model(tokens).logits, -1),
            atol=1e-5,
            rtol=0,
        )
    lens = Lens(model, [make_sae("standard", 32, "blocks.0.hook_resid_post", model_name="")])
    assert lens.run(tokens).logits.shape == (1, 4, len(WORDS) + 2)
    with pytest.raises(InputError, match=r"no tokenizer.*token ids"):
        lens.run("w1 w2")


def test_processing_flags_are_options(tmp_path: Path) -> None:
    hf_model = _save_gpt2_folder(tmp_path / "m", tmp_path / "tok")
    tokens = torch.tensor([[0, 5, 6, 7, 8]])
    refactored = load_model(tmp_path / "m", processing={"refactor_factored_attn_matrices": True})
    unfolded = Lens.load(tmp_path / "m", [], processing={"fold_ln": False}).model
    assert unfolded.cfg.normalization_type == "LN"
    assert refactored.cfg.normalization_type == "LNPre"
    with torch.no_grad():
        reference = torch.log_softmax(hf_model(tokens).logits, -1)
        for model in (refactored, unfolded):
            torch.testing.assert_close(
                torch.log_softmax(model(tokens), -1), reference, atol=1e-5, rtol=0
            )
    with pytest.raises(InputError, match="unknown processing flag 'fold_layer_norm'"):
        load_model(tmp_path / "m", processing={"fold_layer_norm": False})
    with pytest.raises(InputError, match="must be True or False"):
        load_model(tmp_path / "m", processing={"fold_ln": "no"})  # type: ignore[dict-item]
    with pytest.raises(InputError, match="embedded model"):
        load_model("zoo", processing={"fold_ln": False})


def test_refactoring_rotary_models_is_refused(tmp_path: Path) -> None:
    from tests.attribution.test_architectures import save_folder

    save_folder("llama", tmp_path / "m", tokenizer=False)
    with pytest.raises(InputError, match="rotary"):
        load_model(tmp_path / "m", processing={"refactor_factored_attn_matrices": True})


def test_bad_model_folders_are_clear_errors(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    _save_gpt2_folder(folder, tmp_path / "tok")
    config = json.loads((folder / "config.json").read_text())
    weights = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    with pytest.raises(LoadingError, match=r"could not read the weights.*corrupt"):
        load_model(folder)
    # A pickle (which could run code when loaded) is refused before anything reads it.
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04cos\nsystem\n.")
    with pytest.raises(LoadingError, match=r"pickle \(pytorch_model\.bin\)") as refused:
        load_model(folder)
    assert "weights_only" not in str(refused.value)
    (folder / "pytorch_model.bin").unlink()
    (folder / "model.safetensors").write_bytes(weights)
    for field, value in (("n_layer", "two"), ("n_embd", 0), ("vocab_size", 4.5), ("n_head", True)):
        (folder / "config.json").write_text(json.dumps({**config, field: value}))
        with pytest.raises(LoadingError, match=f"'{field}' must be a positive integer"):
            load_model(folder)
    (folder / "config.json").write_text(json.dumps({**config, "layer_norm_epsilon": "small"}))
    with pytest.raises(LoadingError, match="'layer_norm_epsilon' must be a number"):
        load_model(folder)
    (folder / "config.json").write_text(json.dumps({**config, "architectures": []}))
    with pytest.raises(LoadingError, match="names no architecture"):
        load_model(folder)
    (folder / "config.json").write_text(json.dumps({**config, "architectures": ["NoSuchLM"]}))
    with pytest.raises(LoadingError, match="cannot convert the architecture 'NoSuchLM'"):
        load_model(folder)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "tokenizer.json").write_text('{"model": {"type": "WordLevel", "vocab": ')
    with pytest.raises(LoadingError, match="could not read the tokenizer"):
        load_model(folder)
