"""Writing outputs atomically: the one place files and folders of results are put in place.

A file is written to a temporary sibling, flushed to disk (`fsync`) and renamed over the target:
readers see the old file or the new one, never half of one. Without `overwrite` the last step is
a hard link, which fails if the target appeared meanwhile, so an existing file is never replaced.

A folder is built in a temporary sibling (`.NAME.partial-PID-*`) and put in place in one step:
`renameat2(RENAME_NOREPLACE)` for a new folder, `renameat2(RENAME_EXCHANGE)` to swap with the old
one under `overwrite` (Linux; `renamex_np` on macOS), after which the old folder, now at the
temporary name, is removed. `overwrite` is checked again at the swap, so a folder that appeared
during the build is not replaced without it. Where neither call exists the swap falls back to two
renames, and a folder lost between them is restored on the next run. Every finished folder carries
`MARKER`; `overwrite` only ever replaces a folder that carries it (never the current directory, a
parent of it, a file, or a folder of someone else's). A build interrupted by SIGTERM or Ctrl-C
removes its temporary folder; one killed outright leaves it, and the next build of the same output
removes it.

Files and folders get the modes the umask gives (0644 / 0755 under the usual umask 022), not the
0600 / 0700 of `tempfile`.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import json
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Generator
from pathlib import Path
from types import FrameType
from typing import Any

from feature_lens.errors import InputError, OutputExistsError

MARKER = ".feature-lens-output"
"""File in every folder feature-lens writes; `overwrite` replaces only folders that have it."""

_PARTIAL = ".partial-"
_OLD = ".old-"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _refuse_special(path: Path) -> None:
    """The current directory and its parents are never an output."""
    resolved = path.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise InputError(
            f"refusing to write to {str(path)!r}: it is the current directory or a parent of it; "
            "name a new folder, e.g. --out feature-lens-out"
        )


def check_file_target(path: str | Path, *, overwrite: bool = False) -> Path:
    """Raise unless a file may be written at `path` (call it before long work, to fail fast).

    Refuses a folder, and an existing file without `overwrite`."""
    path = Path(path)
    if path.is_dir():
        raise InputError(
            f"{str(path)!r} is a folder; give a file name, e.g. {str(path / 'graph.json')!r}"
        )
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{str(path)!r} exists; pass --overwrite to replace it")
    return path


def check_folder_target(path: str | Path, *, overwrite: bool = False) -> Path:
    """Raise unless a folder of results may be written at `path` (call it before long work).

    Refuses the current directory and its parents, a file, an existing folder without
    `overwrite`, and with `overwrite` any folder that does not carry `MARKER`."""
    path = Path(path)
    _refuse_special(path)
    if path.exists() or path.is_symlink():
        if not path.is_dir():
            raise InputError(f"{str(path)!r} is a file, not a folder; name a new folder")
        if not overwrite:
            raise OutputExistsError(f"{str(path)!r} exists; pass --overwrite to replace it")
        if not (path / MARKER).is_file():
            raise OutputExistsError(
                f"{str(path)!r} exists and was not written by feature-lens (it has no {MARKER} "
                "file), so --overwrite will not replace it; remove it yourself or name a new folder"
            )
    return path


def write_file(path: str | Path, data: bytes | str, *, overwrite: bool = False) -> Path:
    """Write `data` (text as UTF-8) to `path` atomically; refuse to replace a file unless
    `overwrite` (checked again at the final step). Returns `path`."""
    path = check_file_target(path, overwrite=overwrite)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        tmp.chmod(0o666 & ~_umask())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise OutputExistsError(
                    f"{str(path)!r} appeared while writing; pass --overwrite to replace it"
                ) from None
            except OSError:  # no hard links here (some network/FAT file systems)
                check_file_target(path)
                os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ------------------------------------------------------------------------------------- folders
_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2  # linux/fs.h
_MAC_RENAME_SWAP, _MAC_RENAME_EXCL = 2, 4  # sys/stdio.h


def _libc() -> Any:
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name, use_errno=True) if name else None


_LIBC = _libc() if sys.platform in ("linux", "darwin") else None


def _rename2(src: Path, dst: Path, *, exchange: bool) -> bool:
    """Rename `src` to `dst` atomically without replacing (or, with `exchange`, swap the two).
    Returns False when the system has no such call; raises OSError when the call fails."""
    if _LIBC is None:
        return False
    if sys.platform == "linux" and hasattr(_LIBC, "renameat2"):
        at_fdcwd = -100
        flag = _RENAME_EXCHANGE if exchange else _RENAME_NOREPLACE
        result = _LIBC.renameat2(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), flag)
    elif sys.platform == "darwin" and hasattr(_LIBC, "renamex_np"):
        flag = _MAC_RENAME_SWAP if exchange else _MAC_RENAME_EXCL
        result = _LIBC.renamex_np(os.fsencode(src), os.fsencode(dst), flag)
    else:
        return False
    if result != 0:
        code = ctypes.get_errno()
        if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
            return False  # the file system does not support it
        raise OSError(code, os.strerror(code), str(dst))
    return True


def _swap_into_place(tmp: Path, out: Path, *, overwrite: bool) -> None:
    """Put the finished folder `tmp` at `out` (re-checking `overwrite` now); the old folder, if
    any, ends up at `tmp`'s name and is removed."""
    check_folder_target(out, overwrite=overwrite)
    exists = out.exists()
    try:
        done = _rename2(tmp, out, exchange=exists)
    except FileExistsError:
        raise OutputExistsError(
            f"{str(out)!r} appeared while building; pass --overwrite to replace it"
        ) from None
    if not done:  # two renames; _recover puts the old folder back if we die between them
        old = tmp.with_name(tmp.name.replace(_PARTIAL, _OLD, 1))
        if exists:
            out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
        return
    if exists:
        shutil.rmtree(tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _recover(out: Path) -> None:
    """Remove temporary folders that dead builds of `out` left, and restore a folder that a build
    killed between its two fallback renames had moved aside."""
    if not out.parent.is_dir():
        return
    for sibling in out.parent.glob(f".{out.name}.*-*"):
        rest = sibling.name[len(out.name) + 1 :]
        for tag in (_PARTIAL, _OLD):
            if rest.startswith(tag):
                pid = rest[len(tag) :].split("-", 1)[0]
                if pid.isdigit() and not _alive(int(pid)):
                    if tag == _OLD and not out.exists():
                        sibling.rename(out)
                    else:
                        shutil.rmtree(sibling, ignore_errors=True)


class _Terminated(BaseException):
    """Raised in the main thread on SIGTERM while a folder is being built."""


@contextlib.contextmanager
def _sigterm_raises() -> Generator[None]:
    """Turn SIGTERM into an exception (so `finally` blocks clean up), in the main thread only."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    except _Terminated:
        raise SystemExit(128 + signal.SIGTERM) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def atomic_folder(
    out: str | Path, *, overwrite: bool = False, kind: str = "output"
) -> Generator[Path]:
    """Yield an empty temporary folder beside `out`; when the block ends normally it becomes `out`
    (with `MARKER`, naming `kind`), in one atomic step. On any error, Ctrl-C or SIGTERM it is
    removed and `out` is left as it was. See the module docstring for the rules on `overwrite`."""
    out = Path(out).absolute()
    check_folder_target(out, overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    _recover(out)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}{_PARTIAL}{os.getpid()}-"))
    try:
        with _sigterm_raises():
            tmp.chmod(0o777 & ~_umask())
            yield tmp
            marker = {"written_by": "feature-lens", "kind": kind}
            (tmp / MARKER).write_text(json.dumps(marker) + "\n", encoding="utf-8")
            _swap_into_place(tmp, out, overwrite=overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
