"""Text for the terminal: errors as one line, and untrusted strings with control characters escaped.

Names that come from files (hook names in an SAE's `cfg.json`, labels, paths) could hold escape
sequences that move the cursor, recolour or retitle the terminal; `terminal_text` shows them as
`\\x1b`-style escapes instead.
"""

from __future__ import annotations

import unicodedata

from feature_lens.errors import FeatureLensError


def terminal_text(text: object) -> str:
    """`str(text)` with every control and format character (C0, DEL, C1, bidi overrides, line and
    paragraph separators) written as a Python escape, so printing it cannot drive the terminal."""
    out: list[str] = []
    for char in str(text):
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def one_line(error: BaseException) -> str | None:
    """The message for a failure the user can fix, on one line; None for anything else (a bug,
    which should keep its traceback)."""
    if isinstance(error, FeatureLensError):
        text = str(error)
    elif isinstance(error, MemoryError):
        text = "out of memory; use fewer prompts or a smaller --batch-size"
    elif isinstance(error, OSError) and error.strerror:
        where = f" {error.filename!r}" if error.filename is not None else ""
        text = f"cannot use{where}: {error.strerror}"
    else:
        return None
    return " ".join(terminal_text(line).strip() for line in text.split("\n") if line.strip())
