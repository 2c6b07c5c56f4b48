"""Atomic outputs (`feature_lens.outputs`): what --overwrite may replace, the swap, signals, modes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from feature_lens import outputs
from feature_lens.errors import InputError, OutputExistsError
from feature_lens.outputs import MARKER, atomic_folder, check_folder_target, write_file

ROOT = Path(__file__).resolve().parents[1]


def build(out: Path, text: str = "new", **kwargs: bool) -> None:
    with atomic_folder(out, **kwargs) as tmp:
        (tmp / "index.html").write_text(text)


def build_and(out: Path, during: Callable[[Path], object], **kwargs: bool) -> None:
    """Build `out`, calling `during(tmp)` before the block ends."""
    with atomic_folder(out, **kwargs) as tmp:
        (tmp / "index.html").write_text("new")
        during(tmp)


def siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_overwrite_replaces_only_a_marked_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        build(out)
    with pytest.raises(OutputExistsError, match="not written by feature-lens"):
        build(out, overwrite=True)
    assert siblings(out) == ["thesis.tex"]
    assert siblings(tmp_path) == ["out"]
    (out / "thesis.tex").unlink()
    out.rmdir()
    build(out, "first")
    assert (out / MARKER).is_file()
    build(out, "second", overwrite=True)
    assert (out / "index.html").read_text() == "second"
    assert siblings(tmp_path) == ["out"]


def test_current_directory_parents_and_files_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    (work / MARKER).write_text("{}")  # even a marked cwd is never replaced
    monkeypatch.chdir(work)
    for target in (".", "..", str(tmp_path), str(work)):
        with pytest.raises(InputError, match="current directory or a parent"):
            build(Path(target), overwrite=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        build(tmp_path / "file", overwrite=True)
    assert siblings(tmp_path) == ["a", "file"]
    assert siblings(tmp_path / "a") == ["b"]
    assert siblings(work) == [MARKER]


def test_a_folder_that_appears_during_the_build_is_not_replaced(tmp_path: Path) -> None:
    out = tmp_path / "out"

    def intruder(_: Path) -> None:
        out.mkdir()
        (out / "someone-elses.txt").write_text("keep")

    with pytest.raises(OutputExistsError, match="--overwrite"):
        build_and(out, intruder)
    assert siblings(out) == ["someone-elses.txt"]
    assert siblings(tmp_path) == ["out"]
    # ... nor with --overwrite when it is not a feature-lens output.
    with pytest.raises(OutputExistsError, match="not written"):
        build(out, overwrite=True)
    assert siblings(out) == ["someone-elses.txt"]


def test_an_empty_folder_that_appears_is_not_replaced_either(tmp_path: Path) -> None:
    """rename(2) silently replaces an empty folder; the swap must not."""
    out = tmp_path / "out"
    with pytest.raises(OutputExistsError):
        build_and(out, lambda _: out.mkdir())
    assert siblings(out) == []


def test_the_swap_is_one_exchange_on_linux(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    (b / "x").write_text("b")
    if not outputs._rename2(a, b, exchange=True):  # pyright: ignore[reportPrivateUsage]
        pytest.skip("no renameat2/renamex_np on this system")
    assert (a / "x").read_text() == "b"
    assert (b / "x").read_text() == "a"
    with pytest.raises(FileExistsError):
        outputs._rename2(a, b, exchange=False)  # pyright: ignore[reportPrivateUsage]


def test_failure_and_ctrl_c_leave_the_old_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    build(out, "old")
    for error in (RuntimeError("disk full"), KeyboardInterrupt()):

        def fail(_: Path, error: BaseException = error) -> None:
            raise error

        with pytest.raises(type(error)):
            build_and(out, fail, overwrite=True)
        assert (out / "index.html").read_text() == "old"
        assert siblings(tmp_path) == ["out"]


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    return int(proc.stdout)


def test_leftovers_of_killed_builds_are_cleaned_and_a_lost_folder_restored(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    dead = _dead_pid()
    (tmp_path / f".out.partial-{dead}-abc").mkdir()  # a build killed mid-way
    (tmp_path / f".out.partial-{os.getpid()}-live").mkdir()  # ours, still running: kept
    old = tmp_path / f".out.old-{dead}-abc"  # killed between the two fallback renames
    old.mkdir()
    (old / "index.html").write_text("old")
    (old / MARKER).write_text("{}")
    with atomic_folder(out, overwrite=True) as tmp:
        assert (out / "index.html").read_text() == "old"  # restored before the build
        (tmp / "index.html").write_text("new")
    assert (out / "index.html").read_text() == "new"
    assert siblings(tmp_path) == [f".out.partial-{os.getpid()}-live", "out"]


def test_fallback_without_exchange_still_swaps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outputs, "_rename2", lambda *a, **k: False)
    out = tmp_path / "out"
    build(out, "old")
    build(out, "new", overwrite=True)
    assert (out / "index.html").read_text() == "new"
    assert siblings(tmp_path) == ["out"]


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_modes_follow_the_umask(tmp_path: Path, umask: int) -> None:
    previous = os.umask(umask)
    try:
        build(tmp_path / "site")
        write_file(tmp_path / "graph.json", "{}")
    finally:
        os.umask(previous)
    assert (tmp_path / "site").stat().st_mode & 0o777 == 0o777 & ~umask
    assert (tmp_path / "graph.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_write_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "graph.json"
    write_file(path, "one")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        write_file(path, "two")
    write_file(path, b"three", overwrite=True)
    assert path.read_text() == "three"
    with pytest.raises(InputError, match="is a folder"):
        write_file(tmp_path, "x", overwrite=True)
    assert siblings(path.parent) == ["graph.json"]


SCRIPT = """
import sys, time
from pathlib import Path
from feature_lens.outputs import atomic_folder
with atomic_folder(Path(sys.argv[1])) as tmp:
    (tmp / "index.html").write_text("half")
    print("building", flush=True)
    time.sleep(60)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_signals_leave_no_partial_folder(tmp_path: Path, signum: int) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "building\n"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    if signum == signal.SIGKILL:  # nothing can clean up after SIGKILL: the next run does
        assert len(siblings(tmp_path)) == 1
        build(out)
        assert siblings(tmp_path) == ["out"]
    else:
        assert siblings(tmp_path) == [], err
        if signum == signal.SIGTERM:
            assert proc.returncode == 128 + signal.SIGTERM, err


def test_check_folder_target_names_the_remedy(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    with pytest.raises(OutputExistsError, match="remove it yourself or name a new folder"):
        check_folder_target(tmp_path / "x", overwrite=True)
