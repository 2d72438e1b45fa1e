"""The layers stay apart: the compute layer knows nothing of gRPC or protobuf, the codec nothing of gRPC,
and the kernels nothing of the service."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {
    "server/treecredit_server/compute": ("grpc", "google.protobuf", "treecredit.v1", "treecredit_server.codec",
                                         "treecredit_server.service"),
    "server/treecredit_server/codec": ("grpc", "treecredit_server.service"),
    "kernels/treecredit_kernels": ("grpc", "google.protobuf", "treecredit", "treecredit_server"),
}


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


@pytest.mark.parametrize("layer", LAYERS)
def test_layer_imports_nothing_above_it(layer):
    forbidden = LAYERS[layer]
    crossings = {
        f"{path.relative_to(ROOT)} imports {module}"
        for path in (ROOT / layer).rglob("*.py")
        for module in imported_modules(path)
        if any(module == name or module.startswith(name + ".") for name in forbidden)
    }
    assert not crossings, sorted(crossings)


def test_request_errors_are_raised_by_decoding():
    """Compute receives arrays decoding has checked: no compute module raises a request error, except the Watch
    sessions, whose errors depend on the state earlier requests left (a trajectory started twice, say)."""
    raising = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "server/treecredit_server/compute").rglob("*.py")
        if "treecredit.errors" in imported_modules(path)
    }
    assert raising == {"server/treecredit_server/compute/watch.py"}
