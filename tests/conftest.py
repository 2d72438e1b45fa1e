"""Shared fixtures: a real server process on loopback, and clients connected to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import treecredit
from treecredit_server.process import ServerProcess, start_server


@pytest.fixture(scope="session")
def server() -> Iterator[ServerProcess]:
    started = start_server()
    started.drain_log()
    yield started
    assert started.stop() == 0


@pytest.fixture(scope="session")
def client(server: ServerProcess) -> Iterator[treecredit.CreditClient]:
    with treecredit.CreditClient(server.target, timeout=60) as connected:
        yield connected
