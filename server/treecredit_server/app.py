"""Assemble and run the server: the credit service, health, reflection, graceful shutdown."""

from __future__ import annotations

import asyncio
import signal

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from treecredit.v1 import credit_pb2, credit_pb2_grpc
from treecredit_server import auth, log, metrics, tls
from treecredit_server.parsing import TolerantParsing
from treecredit_server.config import Settings
from treecredit_server.service import CreditService

SERVICE_NAME = credit_pb2.DESCRIPTOR.services_by_name["CreditService"].full_name
_log = log.get("treecredit.server")


async def serve(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then drain: NOT_SERVING, refuse new calls, finish in-flight ones."""
    server = grpc.aio.server(
        interceptors=[*auth.interceptors(settings), TolerantParsing()],
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
        ]
    )
    credit_service = CreditService(settings)
    credit_pb2_grpc.add_CreditServiceServicer_to_server(credit_service, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server
    )
    credentials, address = tls.server_credentials(settings), f"{settings.host}:{settings.port}"
    port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    await server.start()
    for service in ("", SERVICE_NAME):
        await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    metrics_port = metrics.serve(settings.host, settings.metrics_port)

    # Signal handlers go in before the `serving` line: whoever reads it may signal at once.
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    _log.info("serving", host=settings.host, port=port, metrics_port=metrics_port,
              tls=credentials is not None, auth=bool(settings.auth_tokens_file))
    await stopping.wait()

    _log.info("draining", grace_seconds=settings.grace_seconds)
    await health_servicer.enter_graceful_shutdown()
    await server.stop(settings.grace_seconds)
    credit_service.shutdown()
    _log.info("stopped")
