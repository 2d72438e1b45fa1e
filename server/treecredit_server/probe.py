"""`python -m treecredit_server.probe`: exit 0 if the server answers SERVING on the gRPC health service.

The container's HEALTHCHECK runs it. By default it asks `127.0.0.1:$TREECREDIT_PORT` (the server may listen
on 0.0.0.0) about CreditService. It loads grpc and the generated stubs only, never torch, so it is quick.
"""

from __future__ import annotations

import argparse
import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from treecredit.v1 import credit_pb2
from treecredit_server.config import Settings

SERVICE_NAME = credit_pb2.DESCRIPTOR.services_by_name["CreditService"].full_name


def check(target: str, service: str = SERVICE_NAME, timeout: float = 3.0) -> str:
    """The serving status `target` reports for `service`, by name ("SERVING", "NOT_SERVING", ...).

    Raises grpc.RpcError when the server cannot be reached within `timeout` seconds.
    """
    with grpc.insecure_channel(target) as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout, wait_for_ready=True
        )
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


def main(argv: list[str] | None = None) -> int:
    port = os.environ.get("TREECREDIT_PORT", str(Settings.port))
    parser = argparse.ArgumentParser(prog="python -m treecredit_server.probe", description=__doc__.splitlines()[0])
    parser.add_argument("--target", default=f"127.0.0.1:{port}", help="server address (default %(default)s)")
    parser.add_argument("--service", default=SERVICE_NAME, help="service to ask about; '' is the whole server")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for an answer")
    args = parser.parse_args(argv)
    try:
        status = check(args.target, args.service, args.timeout)
    except grpc.RpcError as error:
        print(f"{args.target}: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    print(f"{args.target} {args.service or '(server)'}: {status}")
    return 0 if status == "SERVING" else 1


if __name__ == "__main__":
    sys.exit(main())
