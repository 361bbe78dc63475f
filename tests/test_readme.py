"""The README's two set-up commands are what CI runs: a green CI proves the README."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def setup_commands() -> list[str]:
    section = (ROOT / "README.md").read_text().split("## Set up", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)]


def test_readme_has_exactly_two_setup_commands() -> None:
    commands = setup_commands()
    assert len(commands) == 2
    assert all("\n" not in c for c in commands)
    assert "unisal simulate" in commands[0] and "pytest" in commands[1]


def test_ci_installs_as_the_readme_says_and_runs_its_test_command() -> None:
    install_and_run, test = setup_commands()
    install = install_and_run.split(" && .venv/bin/unisal simulate")[0]
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert install in ci_lines
    assert test in ci_lines
    assert ci_lines.index(install) < ci_lines.index(test)
