"""scripts/test.sh installs Chromium for the browser tests, or stops with the command that does:
a green run of the README's test command never silently skips them. Run with stub commands on PATH
(`id`, `apt-get`, `sudo`), so nothing is installed here."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "chromium.sh"


def stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def run(tmp_path: Path, uid: int, *, sudo: bool = False) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "log"
    stub(bin_dir, "id", f"echo {uid}")
    # apt-get records its arguments and, on install, provides a chromium command.
    stub(bin_dir, "apt-get", f'echo "apt-get $*" >> {log}\n'
         f'case "$*" in *install*) printf "#!/bin/sh\\n" > {bin_dir}/chromium; '
         f"chmod +x {bin_dir}/chromium;; esac")  # fmt: skip
    if sudo:
        stub(bin_dir, "sudo", f'[ "$1" = -n ] && [ "$2" = true ] && exit 0\necho "sudo $*" >> {log}\n'
             'while [ "$#" -gt 0 ] && [ "$1" != apt-get ]; do shift; done\n"$@"')  # fmt: skip
    for tool in ("bash", "sh", "cat", "chmod", "printf"):
        found = shutil.which(tool)
        if found and not (bin_dir / tool).exists():
            (bin_dir / tool).symlink_to(found)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    return subprocess.run(
        [str(bin_dir / "bash"), str(SCRIPT)], capture_output=True, text=True, env=env, check=False
    )


def test_without_root_it_stops_with_the_install_command(tmp_path: Path) -> None:
    result = run(tmp_path, uid=1000)
    assert result.returncode == 1
    assert "sudo apt-get install -y chromium" in result.stderr
    assert not (tmp_path / "log").exists()


def test_as_root_it_installs_chromium(tmp_path: Path) -> None:
    result = run(tmp_path, uid=0)
    assert result.returncode == 0, result.stderr
    log = (tmp_path / "log").read_text().splitlines()
    assert log == ["apt-get update -qq", "apt-get install -y -qq chromium"]


def test_with_passwordless_sudo_it_installs_chromium(tmp_path: Path) -> None:
    result = run(tmp_path, uid=1000, sudo=True)
    assert result.returncode == 0, result.stderr
    assert "apt-get install -y -qq chromium" in (tmp_path / "log").read_text()


def test_test_sh_runs_it_before_pytest() -> None:
    lines = (ROOT / "scripts" / "test.sh").read_text().splitlines()
    check = next(i for i, line in enumerate(lines) if line.startswith("bash scripts/chromium.sh"))
    tests = next(i for i, line in enumerate(lines) if "-m pytest" in line)
    assert check < tests
    assert os.access(SCRIPT, os.R_OK)
