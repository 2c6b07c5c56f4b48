"""Prompt corpora: every file format, split on "\\n" only, and every bad input named by location."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from feature_lens.errors import InputError
from feature_lens.loading.corpus import read_corpus, tokenize_corpus


def _texts(path: Path, **kwargs: Any) -> list[str]:
    return [d.text for d in read_corpus(path, **kwargs)]


def test_text_is_split_on_newlines_only(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    # U+2028, U+0085, form feed, vertical tab and U+001E are inside prompts, not line ends.
    path.write_bytes("a\u2028b\r\n\nc\x0cd\x85e\x0bf\x1eg\n  \nlast".encode())
    assert _texts(path) == ["a\u2028b", "c\x0cd\x85e\x0bf\x1eg", "last"]
    assert [d.where for d in read_corpus(path)] == [
        "line 1 of p.txt",
        "line 3 of p.txt",
        "line 5 of p.txt",
    ]
    assert _texts(path, limit=2) == ["a\u2028b", "c\x0cd\x85e\x0bf\x1eg"]


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_bytes(b"fine\nalso fine\nbad \xff here\n")
    with pytest.raises(InputError, match=r"line 3 of .* is not valid UTF-8 \(byte 0xff"):
        read_corpus(path)


def test_json_and_jsonl(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text(json.dumps(["one", {"text": "two"}]))
    assert _texts(tmp_path / "p.json") == ["one", "two"]
    lines = [json.dumps("one"), "", json.dumps({"text": "two\u2028still two", "id": 3})]
    (tmp_path / "p.jsonl").write_text("\n".join(lines) + "\n")
    assert _texts(tmp_path / "p.jsonl") == ["one", "two\u2028still two"]
    (tmp_path / "q.jsonl").write_text(json.dumps({"body": "x"}))
    assert _texts(tmp_path / "q.jsonl", text_field="body") == ["x"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("p.json", '["a", ', r"not valid JSON: Expecting value at line 1"),
        ("p.json", json.dumps({"a": 1}), "must hold a JSON list of strings"),
        ("p.json", json.dumps(["a", "b", " "]), r"item 2 of p\.json is an empty prompt"),
        ("p.json", '["ok", "\\ud800"]', r"item 1 of p\.json contains a lone surrogate"),
        ("p.json", "[" * 100000 + "]" * 100000, "nested too deeply"),
        ("p.jsonl", '"a"\n"b"\n{"text": \n', r"line 3 of p\.jsonl is not valid JSON"),
        ("p.jsonl", '"a"\n{"body": "x"}\n', r"line 2 of p\.jsonl: no 'text' field .*--text-field"),
        ("p.jsonl", '"a"\n""\n', r"line 2 of p\.jsonl is an empty prompt"),
        ("p.jsonl", '"a"\n17\n', r"line 2 of p\.jsonl: expected a string or an object, got int"),
        ("p.jsonl", '{"text": "\\udfff x"}', r"line 1 of p\.jsonl contains a lone surrogate"),
        ("p.txt", "\n \n", "no prompts in"),
    ],
)
def test_bad_files_name_the_place(tmp_path: Path, name: str, content: str, message: str) -> None:
    (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        read_corpus(tmp_path / name)


def test_parquet(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["a b", "c"], "n": [1, 2]}), tmp_path / "p.parquet")
    assert _texts(tmp_path / "p.parquet") == ["a b", "c"]
    with pytest.raises(InputError, match=r"no column 'body' \(columns: text, n\)"):
        read_corpus(tmp_path / "p.parquet", text_field="body")
    with pytest.raises(InputError, match=r"row 0 of p\.parquet: column 'n' holds int"):
        read_corpus(tmp_path / "p.parquet", text_field="n")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(InputError, match="not a readable Parquet file"):
        read_corpus(tmp_path / "bad.parquet")


def test_datasets_folders(tmp_path: Path) -> None:
    import datasets

    data = datasets.Dataset.from_dict({"text": ["a", "b", "c"], "label": [0, 1, 0]})
    data.save_to_disk(str(tmp_path / "one"))
    assert _texts(tmp_path / "one", limit=2) == ["a", "b"]
    datasets.DatasetDict({"train": data, "test": data.select([2])}).save_to_disk(
        str(tmp_path / "two")
    )
    with pytest.raises(InputError, match="splits train, test; choose one with --split"):
        read_corpus(tmp_path / "two")
    assert _texts(tmp_path / "two", split="test") == ["c"]
    (tmp_path / "plain").mkdir()
    with pytest.raises(InputError, match="not a Hugging Face datasets folder"):
        read_corpus(tmp_path / "plain")
    with pytest.raises(InputError, match="no prompts file or folder"):
        read_corpus(tmp_path / "missing.txt")


def test_long_documents_are_cut_into_windows_that_fit(model: Any, tmp_path: Path) -> None:
    n_ctx = int(model.cfg.n_ctx)  # 12
    words = " ".join(f"w{i % 40}" for i in range(30))
    (tmp_path / "p.txt").write_text(f"w1 w2\n{words}\n")
    documents = read_corpus(tmp_path / "p.txt")
    rows = tokenize_corpus(model, documents)
    full = model.to_tokens(words, truncate=False)[0]
    assert torch.equal(rows[0], model.to_tokens("w1 w2")[0])
    assert all(len(r) <= n_ctx and int(r[0]) == 0 for r in rows)  # each window starts with BOS
    assert torch.equal(torch.cat([r[1:] for r in rows[1:]]), full[1:])  # nothing lost or repeated
    assert len(rows) == 1 + -(-30 // (n_ctx - 1))
    with pytest.raises(InputError, match=r"line 2 of p\.txt is 31 tokens, longer than .* 12"):
        tokenize_corpus(model, documents, chunk=False)


def test_tokens_only_model_says_text_needs_a_tokenizer(tmp_path: Path) -> None:
    from tests.conftest import make_model

    (tmp_path / "p.txt").write_text("w1 w2\n")
    with pytest.raises(InputError, match="no tokenizer"):
        tokenize_corpus(make_model(None), read_corpus(tmp_path / "p.txt"))


def test_empty_prompt_is_reported_with_its_index(model: Any) -> None:
    from feature_lens import Lens
    from feature_lens.dashboard.data import prepare_dataset

    with pytest.raises(InputError, match="prompt 2 is empty"):
        prepare_dataset(Lens(model), ["w1 w2", "w3", " \n"])
