"""Server TLS and mTLS credentials from the PEM files named in `Settings`."""

from __future__ import annotations

from pathlib import Path

import grpc

from treecredit_server.config import Settings


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS credentials, requiring client certificates signed by `tls_client_ca` when it is set; None for plaintext."""
    if not (settings.tls_cert or settings.tls_key):
        if settings.tls_client_ca:
            raise ValueError("--tls-client-ca needs --tls-cert and --tls-key")
        return None
    if not (settings.tls_cert and settings.tls_key):
        raise ValueError("--tls-cert and --tls-key go together")
    client_ca = Path(settings.tls_client_ca).read_bytes() if settings.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(Path(settings.tls_key).read_bytes(), Path(settings.tls_cert).read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )
