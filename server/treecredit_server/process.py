"""Start a server in a child process on loopback and wait until it serves: for tests, benchmarks and checks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class ServerProcess:
    process: subprocess.Popen
    target: str
    metrics_port: int | None = None  # None when started with --metrics-port -1

    def drain_log(self) -> None:
        """Read the server's log in the background so its pipe never fills."""
        threading.Thread(target=lambda: [None for _ in self.process.stdout], daemon=True).start()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        self.process.send_signal(sig)
        return self.process.wait(timeout)


def start_server(*args: str, env: dict[str, str] | None = None,
                 program: Sequence[str] = (sys.executable, "-m", "treecredit_server")) -> ServerProcess:
    """Start `program --port 0 --metrics-port 0 ...` (this Python's server unless told, e.g. another venv's
    `treecredit-server` command) and wait for its `serving` log line."""
    process = subprocess.Popen(
        [*program, "--host", "127.0.0.1", "--port", "0", "--metrics-port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    for line in process.stdout:
        event = json.loads(line)
        if event.get("event") == "serving":
            return ServerProcess(process, f"127.0.0.1:{event['port']}", event.get("metrics_port"))
    raise RuntimeError(f"server exited with {process.wait()} before serving")
