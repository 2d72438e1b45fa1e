"""Shared fixtures: a real server process on loopback, and clients connected to it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

import treecredit


@dataclass
class ServerProcess:
    process: subprocess.Popen
    target: str

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        self.process.send_signal(sig)
        return self.process.wait(timeout)


def start_server(*args: str, env: dict[str, str] | None = None) -> ServerProcess:
    """Start `python -m treecredit_server --port 0 ...` and wait for its `serving` log line."""
    process = subprocess.Popen(
        [sys.executable, "-m", "treecredit_server", "--host", "127.0.0.1", "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    for line in process.stdout:
        event = json.loads(line)
        if event.get("event") == "serving":
            return ServerProcess(process, f"127.0.0.1:{event['port']}")
    raise RuntimeError(f"server exited with {process.wait()} before serving")


@pytest.fixture(scope="session")
def server() -> Iterator[ServerProcess]:
    started = start_server()
    # Drain its log so the pipe never fills.
    threading.Thread(target=lambda: [None for _ in started.process.stdout], daemon=True).start()
    yield started
    assert started.stop() == 0


@pytest.fixture()
def client(server: ServerProcess) -> Iterator[treecredit.CreditClient]:
    with treecredit.CreditClient(server.target, timeout=60) as connected:
        yield connected
