"""The README's Configuration section lists every server setting, as a flag and an environment variable."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from treecredit_server.config import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def configuration_section() -> str:
    text = README.read_text()
    match = re.search(r"^## Configuration\n(.*?)(?=^## )", text, re.S | re.M)
    assert match, "README.md has no '## Configuration' section"
    return match.group(1)


@pytest.mark.parametrize("name", [f.name for f in fields(Settings)])
def test_every_setting_is_documented_with_its_default(name):
    rows = [line for line in configuration_section().splitlines()
            if line.startswith(f"| `--{name.replace('_', '-')}` (`{name.upper()}`)")]
    assert len(rows) == 1, f"no row for --{name.replace('_', '-')} in README.md's Configuration section"
    default = getattr(Settings, name)
    shown = rows[0].split("|")[2].strip().strip("`")
    assert shown == (str(default) if default != "" else "empty"), (name, shown, default)
