"""``zoptal health``: ``grpc.health.v1.Health/Check`` on every replica of every service.

Each replica is asked about its own service name (``zoptal.auth.v1.AuthService``), as the
Kubernetes probes and compose health checks ask, concurrently, with the command's deadline. A
replica that does not answer shows the gRPC status of the failed call instead of a health state.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2
from meshcore.discovery.health import CHECK_METHOD

from zoptal_cli.endpoints import health_service_name

__all__ = ["check_all", "check_one"]


async def check_one(service: str, address: str, deadline_seconds: float) -> dict[str, Any]:
    started = time.perf_counter()
    async with grpc.aio.insecure_channel(address) as channel:
        check = channel.unary_unary(
            CHECK_METHOD,
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        request = health_pb2.HealthCheckRequest(service=health_service_name(service))
        try:
            reply = await check(request, timeout=deadline_seconds)
        except grpc.aio.AioRpcError as error:
            status, detail = error.code().name, error.details() or ""
        else:
            status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            detail = ""
    latency_ms = round((time.perf_counter() - started) * 1000.0, 1)
    return {
        "service": service,
        "address": address,
        "status": status,
        "latency_ms": latency_ms,
        "detail": detail,
    }


async def check_all(
    addresses: Mapping[str, tuple[str, ...]], deadline_seconds: float
) -> list[dict[str, Any]]:
    return list(
        await asyncio.gather(
            *(
                check_one(service, address, deadline_seconds)
                for service, replicas in addresses.items()
                for address in replicas
            )
        )
    )
