"""The verl adapter against the real verl 0.9.1 (`make test-verl`): a venv of its own with verl and the
SDK, a real `DataProto`, verl's own `register_adv_est` and advantage functions, a real server.

Slow (about 2 GB installed); `make test` leaves this folder out. Run with `-s` to see the versions.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from venvs import ROOT, TORCH_SPEC, Venv, install_beside

pytestmark = pytest.mark.timeout(3600)

# verl[verl-core]: what verl's current (v1) trainer imports (TransferQueue, the rollout server's packages).
VERL = "verl[verl-core]==0.9.1"
SCRIPT = Path(__file__).with_name("verl_advantage.py")

# uid "p": one tree, root -> s -> {t, u}, root -> v; row 0 runs s(2) t(2), row 1 s(2) u(3), row 2 v(4).
BATCH = {
    "estimator": "value_diff",
    "uid": ["p", "p", "p"],
    "tree_path": [["s", "t"], ["s", "u"], ["v"]],
    "segment_lengths": [[2, 2], [2, 3], [4]],
    "rewards": [1.0, 0.0, 0.0],
    "mask": [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0]],
}
# value_diff by hand: V = mean leaf reward below; V(p) = 1/3, V(s) = 1/2; a(n) = V(n) - V(parent).
S, T, U, V = 1 / 2 - 1 / 3, 1 - 1 / 2, 0 - 1 / 2, 0 - 1 / 3
EXPECTED = np.array([[S, S, T, T, 0, 0], [S, S, U, U, U, 0], [V, V, V, V, 0, 0]])


@pytest.fixture(scope="module")
def verl_venv(tmp_path_factory) -> Venv:
    """verl as its users install it (torch first, the build matters), then the SDK beside it."""
    venv = Venv.create(tmp_path_factory.mktemp("verl") / "venv")
    venv.pip("install", TORCH_SPEC)
    venv.pip("install", VERL)
    before = install_beside(venv, ROOT / "client")  # the README's command
    assert set(venv.packages()) - set(before) == {"treecredit"}
    print("\nbeside " + ", ".join(f"{name} {before[name]}" for name in ("verl", "protobuf", "grpcio", "numpy", "torch"))
          + ": installing the SDK changed no package")
    return venv


@pytest.fixture(scope="module")
def scored(verl_venv, server) -> dict:
    done = subprocess.run([verl_venv.bin("python"), SCRIPT, server.target, json.dumps(BATCH)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-6000:]
    return json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULTS "))[8:])


def test_the_v1_trainers_advantage_step_without_tree_fields_raises_instead_of_scoring_chains(scored):
    assert scored["v1_without_trees"].startswith("tree_path: the treecredit estimator got no tree fields")


@pytest.mark.parametrize("path", ["v1_with_trees", "legacy_with_trees", "dataproto"])
def test_trees_reach_the_estimator_through_verls_advantage_step(scored, path):
    np.testing.assert_allclose(scored[path], EXPECTED, atol=1e-6)


def test_the_v1_trainer_hook_in_the_docstring_names_what_verl_has(scored):
    assert scored["hook_names"] == {"register_trainer": True, "_compute_advantage": ["self", "batch", "metrics"],
                                    "kv_batch_get": ["keys", "partition_id", "select_fields"]}
