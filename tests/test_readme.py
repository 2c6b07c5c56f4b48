"""The README's two commands are what the scripts and CI run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return [
        line.split("#")[0].strip() for line in re.findall(r"```bash\n(.*?)\n```", section, re.S)
    ]


def test_readme_has_exactly_two_commands_and_ci_runs_the_test_command() -> None:
    commands = _commands()
    assert commands == ["bash scripts/demo.sh", "bash scripts/test.sh"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "\nbash scripts/test.sh\n" in ci
    for script in ("demo.sh", "test.sh"):
        text = (ROOT / "scripts" / script).read_text()
        assert "python3 -m venv" in text
        assert '/bin/pip" install' in text
