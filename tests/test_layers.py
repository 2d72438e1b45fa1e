"""The layers stay apart: the compute layer knows nothing of gRPC or protobuf, the codec nothing of gRPC,
and the kernels nothing of the service."""

import ast
import subprocess
import sys
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
        if "treecredit._request_errors" in imported_modules(path)
    }
    assert raising == {"server/treecredit_server/compute/watch.py"}


def test_compute_and_kernels_load_no_grpc():
    """Not only no direct import: nothing compute or the kernels import (the SDK's gRPC-free modules they share,
    `treecredit/__init__.py` on the way) loads grpc. Checked in a fresh interpreter, where nothing loaded it yet."""
    modules = ["treecredit_kernels", *(
        "treecredit_server.compute" + ("" if path.stem == "__init__" else f".{path.stem}")
        for path in sorted((ROOT / "server/treecredit_server/compute").glob("*.py")))]
    script = f"import importlib, sys\nfor name in {modules!r}:\n    importlib.import_module(name)\n" \
             "print(sorted(name for name in sys.modules if name == 'grpc' or name.startswith('grpc.')))"
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
