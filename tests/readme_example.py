"""The README's client example, aimed at a server, and what it computes: for the README and install tests."""

from __future__ import annotations

import json
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
# Appended to the example: its results as one JSON line, comparable across environments.
REPORT = """
import json as _json
_advantages, _mask, _leaf_ids = result.padded()
print("RESULTS " + _json.dumps({"node_advantages": result.node_advantages.tolist(),
                                "padded": _advantages.tolist(), "mask": _mask.tolist()}))
"""


def client_example(target: str) -> str:
    """The README's first Python block that makes a `CreditClient`, connecting to `target`."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    example = next(block for block in blocks if "CreditClient" in block)
    return example.replace("127.0.0.1:50051", target)


def results(stdout: str) -> dict:
    """The RESULTS line that `client_example(...) + REPORT` printed."""
    return json.loads(next(line for line in stdout.splitlines() if line.startswith("RESULTS "))[8:])
