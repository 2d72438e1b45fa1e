"""The container's HEALTHCHECK probe, against the real server and against a port nobody listens on."""

import socket

from treecredit_server import probe


def test_probe_passes_on_a_serving_server(server, capsys):
    assert probe.main(["--target", server.target]) == 0
    assert "treecredit.v1.CreditService: SERVING" in capsys.readouterr().out


def test_probe_fails_on_an_unknown_service(server, capsys):
    assert probe.main(["--target", server.target, "--service", "no.such.Service"]) == 1
    assert "NOT_FOUND" in capsys.readouterr().err


def test_probe_fails_when_nothing_listens(capsys):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    assert probe.main(["--target", f"127.0.0.1:{port}", "--timeout", "0.5"]) == 1
    assert "DEADLINE_EXCEEDED" in capsys.readouterr().err
