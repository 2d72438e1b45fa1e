"""TLS, mTLS and bearer-token auth over real gRPC, with certificates this test makes itself."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
from pathlib import Path

import grpc
import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

import treecredit
from forests import random_forest
from scrape import sample
from treecredit.v1 import credit_pb2, credit_pb2_grpc
from treecredit_server import tls
from treecredit_server.config import Settings
from treecredit_server.process import start_server

TOKEN = "s3cret-token"


def make_certificate(path: Path, name: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
                     ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """Write `<path>/<name>.pem` and `<name>.key`: a CA when `issuer` is None, else a leaf for 127.0.0.1 it signs."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    certificate = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    (path / f"{name}.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (path / f"{name}.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return certificate, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    """ca, server and client (signed by ca), and stranger (signed by another CA, `rogue`)."""
    path = tmp_path_factory.mktemp("pki")
    ca = make_certificate(path, "ca")
    make_certificate(path, "server", ca)
    make_certificate(path, "client", ca)
    make_certificate(path, "stranger", make_certificate(path, "rogue"))
    (path / "tokens").write_text(f"# accepted tokens\n\n{TOKEN}\nanother-token\n")
    return path


def serve(*args: str):
    started = start_server(*args)
    started.drain_log()
    return started


@pytest.fixture(scope="module")
def tls_server(pki):
    started = serve("--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"))
    yield started
    assert started.stop() == 0


@pytest.fixture(scope="module")
def mtls_server(pki):
    started = serve("--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"),
                    "--tls-client-ca", str(pki / "ca.pem"), "--auth-tokens-file", str(pki / "tokens"))
    yield started
    assert started.stop() == 0


@pytest.fixture(scope="module")
def auth_server(pki):
    started = serve("--auth-tokens-file", str(pki / "tokens"))
    yield started
    assert started.stop() == 0


def score(target: str, **client_options) -> np.ndarray:
    with treecredit.CreditClient(target, timeout=30, **client_options) as client:
        return client.score(random_forest(np.random.default_rng(1)), "tree_grpo").node_advantages


def refusal(target: str, **client_options) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as refused:
        score(target, **client_options)
    return refused.value


def test_tls_server_answers_a_client_that_trusts_its_ca(tls_server, pki):
    assert np.isfinite(score(tls_server.target, credentials=treecredit.tls_credentials(ca=pki / "ca.pem"))).all()
    # PEM contents work as well as paths.
    credentials = treecredit.tls_credentials(ca=(pki / "ca.pem").read_bytes())
    assert np.isfinite(score(tls_server.target, credentials=credentials)).all()


def test_tls_server_refuses_plaintext_and_untrusted_certificates(tls_server, pki):
    assert refusal(tls_server.target).code() == grpc.StatusCode.UNAVAILABLE
    assert refusal(tls_server.target, credentials=treecredit.tls_credentials(ca=pki / "rogue.pem")).code() \
        == grpc.StatusCode.UNAVAILABLE


def test_mtls_needs_a_client_certificate_signed_by_the_client_ca(mtls_server, pki):
    ca = pki / "ca.pem"
    assert refusal(mtls_server.target, credentials=treecredit.tls_credentials(ca=ca), token=TOKEN).code() \
        == grpc.StatusCode.UNAVAILABLE
    stranger = treecredit.tls_credentials(ca=ca, cert=pki / "stranger.pem", key=pki / "stranger.key")
    assert refusal(mtls_server.target, credentials=stranger, token=TOKEN).code() == grpc.StatusCode.UNAVAILABLE
    client = treecredit.tls_credentials(ca=ca, cert=pki / "client.pem", key=pki / "client.key")
    assert refusal(mtls_server.target, credentials=client).code() == grpc.StatusCode.UNAUTHENTICATED
    assert np.isfinite(score(mtls_server.target, credentials=client, token=TOKEN)).all()


def test_auth_refuses_missing_and_wrong_tokens(auth_server):
    for options in ({}, {"token": "wrong"}, {"token": TOKEN + "x"}, {"token": ""}):
        error = refusal(auth_server.target, **options)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED, options
        assert "bearer token" in error.details()
    with grpc.insecure_channel(auth_server.target) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            credit_pb2_grpc.CreditServiceStub(channel).Score(
                credit_pb2.ScoreRequest(), metadata=(("authorization", TOKEN),), timeout=30)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED  # the scheme must be Bearer


def test_auth_refuses_streaming_calls_without_a_token(auth_server):
    with grpc.insecure_channel(auth_server.target) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            list(credit_pb2_grpc.CreditServiceStub(channel).Watch(iter(()), timeout=30))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_auth_accepts_every_listed_token_sync_and_async(auth_server):
    assert np.isfinite(score(auth_server.target, token=TOKEN)).all()
    assert np.isfinite(score(auth_server.target, token="another-token")).all()

    async def score_async(token: str | None) -> np.ndarray:
        async with treecredit.AsyncCreditClient(auth_server.target, timeout=30, token=token) as client:
            return (await client.score(random_forest(np.random.default_rng(2)), "tree_grpo")).node_advantages

    assert np.isfinite(asyncio.run(score_async(TOKEN))).all()
    with pytest.raises(treecredit.Unauthenticated) as refused:
        asyncio.run(score_async(None))
    assert isinstance(refused.value, grpc.RpcError) and refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_health_and_reflection_stay_open_without_a_token(auth_server):
    with grpc.insecure_channel(auth_server.target) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=30)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        replies = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=30)
        services = {s.name for reply in replies for s in reply.list_services_response.service}
    assert "treecredit.v1.CreditService" in services


def test_refused_calls_count_as_unauthenticated(auth_server):
    before = unauthenticated(auth_server.metrics_port)
    refusal(auth_server.target, token="wrong")
    assert unauthenticated(auth_server.metrics_port) == before + 1


def unauthenticated(metrics_port: int) -> float:
    return sample(metrics_port, "treecredit_rpc_requests_total", method="Score", status="UNAUTHENTICATED")


@pytest.mark.parametrize("files, problem", [
    ({"tls_cert": "server.pem"}, "go together"),
    ({"tls_client_ca": "ca.pem"}, "needs --tls-cert"),
])
def test_incomplete_tls_settings_are_refused(pki, files, problem):
    with pytest.raises(ValueError, match=problem):
        tls.server_credentials(Settings(**{field: str(pki / name) for field, name in files.items()}))
