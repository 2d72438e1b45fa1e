"""Server settings: command-line flags, each also read from a `TREECREDIT_*` environment variable."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, fields

MiB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; over a limit the client gets RESOURCE_EXHAUSTED."""

    max_nodes: int = 4_000_000
    max_tokens: int = 64_000_000
    max_sibling_pairs: int = 16_000_000
    max_logits_mb: int = 8192


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 50051
    max_message_mb: int = 512
    grace_seconds: float = 10.0
    compute_threads: int = 4
    session_threads: int = 2
    log_level: str = "info"
    max_nodes: int = Limits.max_nodes
    max_tokens: int = Limits.max_tokens
    max_sibling_pairs: int = Limits.max_sibling_pairs
    metrics_port: int = 9464
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    auth_tokens_file: str = ""
    watch_max_sessions: int = 64
    watch_max_trajectories: int = 4096
    watch_session_mb: int = 256
    watch_idle_seconds: float = 300.0
    max_logits_mb: int = Limits.max_logits_mb
    device: str = "auto"
    max_shared_memory_regions: int = 16
    max_shared_memory_mb: int = 65536

    @property
    def limits(self) -> Limits:
        return Limits(**{f.name: getattr(self, f.name) for f in fields(Limits)})

    @property
    def max_message_bytes(self) -> int:
        return self.max_message_mb * MiB


HELP = {
    "host": "address to listen on",
    "port": "port to listen on (0 picks a free one and prints it)",
    "max_message_mb": "largest gRPC message accepted or sent, MiB",
    "grace_seconds": "on SIGTERM/SIGINT, how long in-flight calls may take to finish",
    "compute_threads": "threads that run computations off the event loop",
    "session_threads": "threads that apply Watch requests over 1 MiB (smaller ones run on the event loop), apart from "
                       "the computations so stop decisions never queue behind them",
    "log_level": "debug, info, warning or error",
    "max_nodes": "most nodes in one forest",
    "max_tokens": "most tokens in one forest",
    "max_sibling_pairs": "most sibling pairs one forest's branch points may give",
    "metrics_port": "port of the Prometheus /metrics endpoint on --host (0 picks a free one and prints it, -1 is off)",
    "tls_cert": "PEM certificate chain file; with --tls-key the server speaks TLS only",
    "tls_key": "PEM private key file of --tls-cert",
    "tls_client_ca": "PEM CA bundle file; with TLS on, clients must present a certificate it signed (mTLS)",
    "auth_tokens_file": "file of accepted bearer tokens, one a line; when set, calls without one get "
    "UNAUTHENTICATED (health and reflection stay open)",
    "watch_max_sessions": "most Watch streams open at once; beyond it a new stream gets RESOURCE_EXHAUSTED",
    "watch_max_trajectories": "most trajectories one Watch session may start",
    "watch_session_mb": "most MiB of window state one Watch session may hold (16 bytes per trajectory per "
    "window + fork_history token)",
    "watch_idle_seconds": "a Watch stream with no request for this long gets its summary (idle_closed) and ends",
    "max_logits_mb": "most MiB of logits one TokenStats call may read (inline, streamed or in shared memory)",
    "device": "where TokenStats computes: auto (cuda when available, else cpu), cpu or cuda",
    "max_shared_memory_regions": "most shared-memory regions registered at once (0 turns registration off)",
    "max_shared_memory_mb": "most MiB registered over all shared-memory regions",
}


def parse(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Settings from flags, falling back to `TREECREDIT_<FLAG>` variables, then to the defaults."""
    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(prog="treecredit-server", description="Serve step-level credit over gRPC.")
    for f in fields(Settings):
        variable = f"TREECREDIT_{f.name.upper()}"
        default = type(f.default)(environ.get(variable, f.default))
        parser.add_argument(
            "--" + f.name.replace("_", "-"), type=type(f.default), default=default,
            help=f"{HELP[f.name]} (env {variable}, default {f.default})",
        )
    return Settings(**vars(parser.parse_args(argv)))
