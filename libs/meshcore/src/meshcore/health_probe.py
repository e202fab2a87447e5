"""A tiny grpc.health.v1 checker for container health checks.

The runtime image ships no grpcurl, so Docker's HEALTHCHECK and docker compose run::

    python -m meshcore.health_probe --addr 127.0.0.1:4000 [--service NAME] [--timeout 2]

It sends one ``grpc.health.v1.Health/Check`` and exits 0 when the answer is SERVING, 1 for any
other answer, an error or a timeout. Kubernetes does not need it: its probes speak gRPC natively.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2

CHECK_METHOD = "/grpc.health.v1.Health/Check"

EXIT_SERVING = 0
EXIT_NOT_SERVING = 1


def check(addr: str, service: str = "", timeout: float = 2.0) -> bool:
    """Return True when the server at ``addr`` reports ``service`` as SERVING."""
    with grpc.insecure_channel(addr) as channel:
        # Called by path: the health stubs' typing has no Check method on HealthStub.
        check_rpc = channel.unary_unary(
            CHECK_METHOD,
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        try:
            reply = check_rpc(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError:
            return False
    return isinstance(reply, health_pb2.HealthCheckResponse) and (
        reply.status == health_pb2.HealthCheckResponse.SERVING
    )


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m meshcore.health_probe",
        description="grpc.health.v1 Check: exit 0 when SERVING, 1 otherwise.",
    )
    parser.add_argument("--addr", default="127.0.0.1:4000", help="host:port of the gRPC server")
    parser.add_argument("--service", default="", help='health service name ("" = whole server)')
    parser.add_argument("--timeout", type=float, default=2.0, help="deadline in seconds")
    parser.add_argument("--quiet", action="store_true", help="print nothing")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    serving = check(args.addr, args.service, args.timeout)
    if not args.quiet:
        state = "SERVING" if serving else "NOT SERVING"
        target = args.service or "<server>"
        print(f"{args.addr} {target}: {state}", file=sys.stderr if not serving else sys.stdout)
    return EXIT_SERVING if serving else EXIT_NOT_SERVING


if __name__ == "__main__":
    raise SystemExit(main())
