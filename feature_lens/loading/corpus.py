"""Read prompt corpora from local files, and cut them into pieces that fit a model's context.

Formats, chosen by the path:
- a folder: a Hugging Face `datasets` folder (what `Dataset.save_to_disk` writes);
- `.parquet`: a Parquet table;
- `.jsonl`: one JSON value a line, a string or an object with the text field;
- `.json`: a JSON list of strings (or of objects with the text field);
- anything else: UTF-8 text, one prompt a line.

Text is split on "\\n" only (a trailing "\\r" is dropped), never on the other characters Python's
`splitlines` treats as line ends (U+2028, U+0085, form feed, ...): they belong to the prompt. Blank
lines of text files are skipped; an empty prompt anywhere else is an error naming where it is. Every
error names the file and the line, item or row, so the corpus is checked before any model loads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from feature_lens.errors import InputError

DEFAULT_TEXT_FIELD = "text"


@dataclass(frozen=True)
class Document:
    """One prompt of a corpus and where it came from (e.g. "line 12 of corpus.jsonl")."""

    text: str
    where: str


def read_corpus(
    path: str | Path,
    *,
    text_field: str = DEFAULT_TEXT_FIELD,
    split: str | None = None,
    limit: int | None = None,
) -> list[Document]:
    """The documents of the corpus at `path` (at most `limit`), checked (see the module docstring).

    `text_field` names the text column/key of JSONL objects, Parquet tables and `datasets` folders;
    `split` picks a split of a saved `DatasetDict` (needed when it has several).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"no prompts file or folder at {str(path)!r}")
    if path.is_dir():
        documents = _read_datasets_folder(path, text_field, split, limit)
    elif path.suffix == ".parquet":
        documents = _read_parquet(path, text_field, limit)
    else:
        raw = _read_text(path)
        if path.suffix == ".jsonl":
            documents = _read_jsonl(path, raw, text_field, limit)
        elif path.suffix == ".json":
            documents = _read_json(path, raw, text_field, limit)
        else:
            documents = [
                Document(line.removesuffix("\r"), f"line {i} of {path.name}")
                for i, line in enumerate(raw.split("\n"), 1)
                if line.strip()
            ][:limit]
    for document in documents:
        _check_text(document)
    if not documents:
        raise InputError(f"no prompts in {str(path)!r}; give at least one non-empty prompt")
    return documents


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read prompts file {str(path)!r}: {error.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise InputError(
            f"line {line} of {str(path)!r} is not valid UTF-8 (byte {data[error.start]:#04x} at "
            f"offset {error.start}); save the file as UTF-8"
        ) from None


def _text_of(value: Any, text_field: str, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and text_field in value:
        text: Any = cast("dict[str, Any]", value)[text_field]
        if isinstance(text, str):
            return text
        raise InputError(f"{where}: field {text_field!r} is {type(text).__name__}, not text")
    if isinstance(value, dict):
        keys = ", ".join(map(repr, list(cast("dict[str, Any]", value))[:8]))
        raise InputError(
            f"{where}: no {text_field!r} field (fields: {keys}); name the text field with "
            "--text-field"
        )
    raise InputError(f"{where}: expected a string or an object, got {type(value).__name__}")


def _read_jsonl(path: Path, raw: str, text_field: str, limit: int | None) -> list[Document]:
    documents: list[Document] = []
    for i, line in enumerate(raw.split("\n"), 1):
        if not line.strip():
            continue
        where = f"line {i} of {path.name}"
        try:
            value = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as error:
            raise InputError(
                f"{where} is not valid JSON ({getattr(error, 'msg', 'too deeply nested')})"
            ) from None
        documents.append(Document(_text_of(value, text_field, where), where))
        if limit is not None and len(documents) >= limit:
            break
    return documents


def _read_json(path: Path, raw: str, text_field: str, limit: int | None) -> list[Document]:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        raise InputError(
            f"{str(path)!r} is not valid JSON: {error.msg} at line {error.lineno}"
        ) from None
    except RecursionError:
        raise InputError(f"{str(path)!r} is nested too deeply to be a list of prompts") from None
    if not isinstance(data, list):
        raise InputError(f"{str(path)!r} must hold a JSON list of strings")
    items = cast("list[Any]", data)[:limit]
    return [
        Document(_text_of(item, text_field, f"item {i} of {path.name}"), f"item {i} of {path.name}")
        for i, item in enumerate(items)
    ]


def _read_parquet(path: Path, text_field: str, limit: int | None) -> list[Document]:
    import pyarrow.parquet

    pq: Any = pyarrow.parquet  # pyarrow's stubs leave most types unknown
    try:
        schema = pq.read_schema(path)
    except Exception as error:  # pyarrow raises ArrowInvalid and OSError subclasses
        raise InputError(f"{str(path)!r} is not a readable Parquet file ({error})") from None
    if text_field not in schema.names:
        raise InputError(
            f"{str(path)!r} has no column {text_field!r} (columns: {', '.join(schema.names)}); "
            "name the text column with --text-field"
        )
    try:
        column = pq.read_table(path, columns=[text_field]).column(0).to_pylist()
    except Exception as error:
        raise InputError(f"{str(path)!r} could not be read ({error})") from None
    return _rows(column[:limit], text_field, path.name)


def _rows(values: Iterable[Any], text_field: str, name: str) -> list[Document]:
    documents: list[Document] = []
    for i, value in enumerate(values):
        where = f"row {i} of {name}"
        if not isinstance(value, str):
            raise InputError(
                f"{where}: column {text_field!r} holds {type(value).__name__}, not text"
            )
        documents.append(Document(value, where))
    return documents


def _read_datasets_folder(
    path: Path, text_field: str, split: str | None, limit: int | None
) -> list[Document]:
    if not (path / "dataset_info.json").is_file() and not (path / "dataset_dict.json").is_file():
        raise InputError(
            f"{str(path)!r} is a folder but not a Hugging Face datasets folder (no "
            "dataset_info.json or dataset_dict.json, as `save_to_disk` writes)"
        )
    import datasets as datasets_module

    datasets: Any = datasets_module  # its stubs leave argument types unknown
    try:
        loaded: Any = datasets.load_from_disk(str(path))
    except Exception as error:  # datasets raises FileNotFoundError and its own types
        raise InputError(f"could not read the datasets folder {str(path)!r} ({error})") from None
    if isinstance(loaded, datasets.DatasetDict):
        splits = [str(name) for name in loaded]
        if split is None and len(splits) == 1:
            split = splits[0]
        if split not in splits:
            raise InputError(
                f"{str(path)!r} holds the splits {', '.join(splits)}; choose one with --split"
            )
        loaded = loaded[split]
    if text_field not in loaded.column_names:
        raise InputError(
            f"{str(path)!r} has no column {text_field!r} (columns: "
            f"{', '.join(loaded.column_names)}); name the text column with --text-field"
        )
    n = len(loaded) if limit is None else min(limit, len(loaded))
    return _rows(loaded.select(range(n))[text_field], text_field, path.name)


def _check_text(document: Document) -> None:
    if not document.text.strip():
        raise InputError(f"{document.where} is an empty prompt; remove it or give it text")
    try:
        document.text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InputError(
            f"{document.where} contains a lone surrogate "
            f"({document.text[error.start]!r} at character {error.start}), which is not text; "
            "fix the file's escapes"
        ) from None


def tokenize_corpus(
    model: Any, documents: Sequence[Document], *, chunk: bool = True, n_ctx: int | None = None
) -> list[Any]:
    """Token ids (1-D tensors, BOS first when the model prepends one) of each document.

    A document longer than the context (`n_ctx`, default the model's) is cut into consecutive
    windows that each fit, every window starting with BOS again, when `chunk` is true; otherwise it
    is an `InputError` naming the document.
    """
    import torch

    if model.tokenizer is None:
        raise InputError(
            "the model has no tokenizer (its folder has no tokenizer files), so text prompts "
            "cannot be tokenized; add the tokenizer files to the model folder"
        )
    context = int(n_ctx or model.cfg.n_ctx)
    bos_id = getattr(model.tokenizer, "bos_token_id", None)
    rows: list[Any] = []
    for document in documents:
        tokens = model.to_tokens(document.text, truncate=False)[0].cpu()
        if len(tokens) <= context:
            rows.append(tokens)
            continue
        if not chunk:
            raise InputError(
                f"{document.where} is {len(tokens)} tokens, longer than the model's context of "
                f"{context}; shorten it, or let long prompts be cut into windows (--chunk)"
            )
        has_bos = (
            bool(model.cfg.default_prepend_bos) and bos_id is not None and int(tokens[0]) == bos_id
        )
        body = tokens[1:] if has_bos else tokens
        step = context - 1 if has_bos else context
        for start in range(0, len(body), step):
            piece = body[start : start + step]
            rows.append(torch.cat([tokens[:1], piece]) if has_bos else piece)
    return rows
