"""The README's client example runs as written, against a real server."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_client_example_runs(server, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    example = next(block for block in blocks if "CreditClient" in block)
    exec(compile(example.replace("127.0.0.1:50051", server.target), "README.md", "exec"), {})
    assert "Preferences(winner=" in capsys.readouterr().out
