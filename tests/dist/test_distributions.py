"""Each distribution in a clean venv, and the SDK beside the protobuf and grpcio trainers pin (`make test-dist`).

Slow (fresh venvs, packages from the index); `make test` leaves this folder out. Run with `-s` to see the
versions each test checked.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from readme_example import REPORT, client_example, results
from treecredit_server.process import start_server
from venvs import ROOT, TORCH_SPEC, Venv, install_beside, wheel

pytestmark = pytest.mark.timeout(1800)

# protobuf, grpcio and numpy as trainers' environments hold them; the SDK must install beside each unchanged.
TRAINER_PINS = {
    # The SDK's floors (client/pyproject.toml), as older trainer images pin them.
    "sdk-floor": ("protobuf==4.25.0", "grpcio==1.62.0", "numpy==1.26.4"),
    # vLLM 0.24 (verl's rollout engine) needs protobuf>=5.29.6; OpenRLHF 0.11 grpcio>=1.74.
    "vllm-openrlhf-floor": ("protobuf==5.29.6", "grpcio==1.74.0", "numpy==2.2.6"),
    # tensorboard 2.21 (a verl dependency) needs protobuf>=6.31.1, grpcio>=1.74.
    "tensorboard-floor": ("protobuf==6.31.1", "grpcio==1.74.0", "numpy==2.3.5"),
    # What `pip install verl==0.9.1` (and TRL, unpinned) resolved to on 2026-12-02; `make test-verl`
    # installs verl itself and checks the same.
    "verl-0.9.1-resolved": ("protobuf==7.36.2", "grpcio==1.85.3", "numpy==2.4.6"),
}
SDK_ONLY = {"treecredit", "grpcio", "protobuf", "numpy", "typing-extensions", "pip", "setuptools"}


def versions(packages: dict[str, str], *names: str) -> str:
    return ", ".join(f"{name} {packages.get(name, '-')}" for name in names)


@pytest.fixture(scope="module")
def dist_server(tmp_path_factory):
    """A server started by the `treecredit-server` command of the two wheels in a clean venv."""
    venv = Venv.create(tmp_path_factory.mktemp("server") / "venv")
    venv.pip("install", TORCH_SPEC)
    venv.pip("install", wheel("treecredit"), wheel("treecredit_server"))
    print(f"\nserver venv: {versions(venv.packages(), 'treecredit-server', 'treecredit', 'torch', 'protobuf', 'grpcio')}")
    server = start_server(program=[venv.bin("treecredit-server")])
    server.drain_log()
    yield server
    assert server.stop() == 0


@pytest.fixture(scope="module")
def expected(dist_server) -> dict:
    """The README example's results from this checkout's SDK (whose numbers the other tests check)."""
    done = subprocess.run([sys.executable, "-c", client_example(dist_server.target) + REPORT],
                          capture_output=True, text=True, check=True)
    return results(done.stdout)


def test_sdk_alone_runs_the_readme_example_against_the_server_distribution(tmp_path, dist_server, expected):
    venv = Venv.create(tmp_path / "venv")
    venv.pip("install", wheel("treecredit"))
    packages = venv.packages()
    assert set(packages) <= SDK_ONLY, f"the SDK brought more than grpcio, protobuf, numpy: {sorted(packages)}"
    print(f"\nSDK alone: {versions(packages, 'treecredit', 'protobuf', 'grpcio', 'numpy')}")
    assert results(venv.python(client_example(dist_server.target) + REPORT)) == expected
    table = subprocess.run([venv.bin("treecredit"), "score", "examples/forest.json", "--target", dist_server.target],
                           capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert "prompt: who wrote it?" in table


@pytest.mark.parametrize("pins", TRAINER_PINS.values(), ids=TRAINER_PINS.keys())
def test_sdk_installs_beside_a_trainers_pins_and_changes_none(tmp_path, pins, dist_server, expected):
    venv = Venv.create(tmp_path / "venv")
    venv.pip("install", *pins)
    before = install_beside(venv, ROOT / "client")  # the README's command
    assert set(venv.packages()) - set(before) == {"treecredit"}
    print(f"\nbeside {' '.join(pins)}: pip changed nothing, the README example runs")
    assert results(venv.python(client_example(dist_server.target) + REPORT)) == expected
