"""The README stays true: its option table is the generated one, and .ci/run runs the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

from ep_trtpy import options

ROOT = Path(__file__).resolve().parents[1]


def test_readme_option_table_is_generated_from_the_options_module() -> None:
    readme = (ROOT / "README.md").read_text()
    assert options.markdown_table() in readme


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    commands = re.findall(r"^python -m pytest[^\n`]*$", readme, flags=re.M)
    assert commands, "the README names no test command"
    assert any(c.strip() in ci for c in commands)
