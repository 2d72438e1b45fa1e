"""Every runnable example in examples/ works against a live server; each asserts its own results (worked out by
hand or from the definitions), so a wrong value fails it."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("*.py"))


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.stem for e in EXAMPLES])
def test_example_runs_against_a_live_server(server, example):
    run = subprocess.run([sys.executable, str(example), "--target", server.target],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
