"""The README's client example runs as written, against a real server."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_client_example_runs(server, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    example = next(block for block in blocks if "CreditClient" in block)
    exec(compile(example.replace("127.0.0.1:50051", server.target), "README.md", "exec"), {})
    assert "Preferences(winner=" in capsys.readouterr().out


def test_readme_training_step_runs(server):
    """The "Train on the packed tree" step runs on the client example's forest and gives every parameter a
    finite gradient."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    client_example = next(block for block in blocks if "CreditClient" in block and "client.score" in block)
    training_step = next(block for block in blocks if "client.pack" in block)
    namespace = {}
    for block in (client_example, training_step.replace("optimizer.step()", "")):
        exec(compile(block.replace("127.0.0.1:50051", server.target), "README.md", "exec"), namespace)
    assert len(namespace["microbatches"]) > 1
    for module in ("embed", "block", "head"):
        grads = [p.grad for p in namespace[module].parameters()]
        assert all(g is not None and g.isfinite().all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
