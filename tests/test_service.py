"""The server as an operator sees it: health, reflection, configuration, shutdown, and a lean SDK."""

from __future__ import annotations

import filecmp
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from treecredit_server.process import start_server
from treecredit_server import config

ROOT = Path(__file__).resolve().parents[1]


def test_health_reports_serving(server):
    with grpc.insecure_channel(server.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "treecredit.v1.CreditService"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_services(server):
    with grpc.insecure_channel(server.target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        reply = next(stub.ServerReflectionInfo(iter([request]), timeout=5))
        names = {service.name for service in reply.list_services_response.service}
        assert {"treecredit.v1.CreditService", "grpc.health.v1.Health"} <= names


def test_every_flag_is_also_an_environment_variable():
    settings = config.parse([], {"TREECREDIT_PORT": "6000", "TREECREDIT_MAX_NODES": "17", "TREECREDIT_HOST": "0.0.0.0"})
    assert (settings.port, settings.max_nodes, settings.host) == (6000, 17, "0.0.0.0")
    assert config.parse(["--port", "7000"], {"TREECREDIT_PORT": "6000"}).port == 7000
    assert config.parse([], {}) == config.Settings()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_drains_and_exits_zero(sig):
    server = start_server("--grace-seconds", "2")
    server.process.send_signal(sig)
    assert server.process.wait(30) == 0
    events = [json.loads(line)["event"] for line in server.process.stdout]
    assert events[-2:] == ["draining", "stopped"]


def test_sdk_imports_without_torch_triton_or_structlog():
    code = "import sys, treecredit; print(sorted({'torch', 'triton', 'structlog'} & set(sys.modules)))"
    assert subprocess.check_output([sys.executable, "-c", code], text=True).strip() == "[]"


def test_committed_stubs_match_the_proto(tmp_path):
    """`make proto`'s generator (grpcio-tools 1.62.3, in a venv of its own) reproduces the committed stubs."""
    protoc_python = Path(os.environ.get("TREECREDIT_PROTOC_PYTHON", ROOT / ".venv-protoc" / "bin" / "python"))
    if not protoc_python.exists():
        pytest.fail(f"no stub generator at {protoc_python}: run `make .venv-protoc/.installed` (or `make test`)")
    protos = sorted(str(p.relative_to(ROOT / "proto")) for p in (ROOT / "proto").rglob("*.proto"))
    subprocess.run(
        [protoc_python, "-m", "grpc_tools.protoc", "-Iproto", f"--python_out={tmp_path}",
         f"--pyi_out={tmp_path}", f"--grpc_python_out={tmp_path}", *protos],
        cwd=ROOT, check=True,
    )
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.py*"))
    assert generated, "protoc generated nothing"
    stale = [str(p) for p in generated if not filecmp.cmp(tmp_path / p, ROOT / "client" / p, shallow=False)]
    assert not stale, f"stale stubs, run `make proto`: {stale}"
