"""The calls ``platform_footprint.py`` makes against a running embedded platform.

Every reply is checked (status OK and the expected content); the first failure raises, so an
error is never counted as a served call.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

PASSWORD = "benchmark passphrase 42"  # noqa: S105 - a throwaway account in a temp database
RELAY_METHOD = "/bench.v1.Relay/CheckLimit"
Address = Callable[[int], str]
Call = Callable[[], Awaitable[None]]


async def prepare_user(address: Address, projects: int = 1) -> dict[str, str]:
    """Register and log in one user, and give them ``projects`` projects (real CreateProject
    calls; the free plan's third is its limit, which emails the user a notice)."""
    import grpc
    from zoptal.auth.v1 import auth_pb2, auth_pb2_grpc
    from zoptal.project.v1 import project_pb2, project_pb2_grpc

    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    async with grpc.aio.insecure_channel(address(4000)) as channel:
        auth = auth_pb2_grpc.AuthServiceStub(channel)
        await auth.RegisterUser(
            auth_pb2.RegisterUserRequest(email=email, password=PASSWORD, display_name="Bench"),
            timeout=30,
        )
        login = await auth.Login(auth_pb2.LoginRequest(email=email, password=PASSWORD), timeout=30)
    metadata = (("authorization", f"Bearer {login.access_token}"),)
    async with grpc.aio.insecure_channel(address(4001)) as channel:
        stub = project_pb2_grpc.ProjectServiceStub(channel)
        replies = [
            await stub.CreateProject(
                project_pb2.CreateProjectRequest(name=f"bench-{number}"),
                metadata=metadata,
                timeout=30,
            )
            for number in range(max(projects, 1))
        ]
    created = replies[0]
    return {
        "user_id": login.user.id,
        "token": login.access_token,
        "project_id": created.project.id,
    }


async def _loop(call: Call, stop_at: float, counter: dict[str, int], name: str) -> None:
    while time.monotonic() < stop_at:
        await call()
        counter[name] += 1


async def drive_load(address: Address, user: dict[str, str], seconds: float) -> dict[str, int]:
    """Load all five services at once for ``seconds``; return the checked calls per service."""
    import grpc
    from zoptal.analytics.v1 import analytics_pb2, analytics_pb2_grpc
    from zoptal.auth.v1 import auth_pb2, auth_pb2_grpc
    from zoptal.billing.v1 import billing_pb2, billing_pb2_grpc
    from zoptal.notification.v1 import notification_pb2, notification_pb2_grpc
    from zoptal.project.v1 import project_pb2, project_pb2_grpc

    metadata = (("authorization", f"Bearer {user['token']}"),)
    user_id, project_id = user["user_id"], user["project_id"]
    ports = {"auth": 4000, "project": 4001, "billing": 4003, "notification": 4004,
             "analytics": 4005}  # fmt: skip
    channels = {name: grpc.aio.insecure_channel(address(port)) for name, port in ports.items()}
    auth = auth_pb2_grpc.AuthServiceStub(channels["auth"])
    project = project_pb2_grpc.ProjectServiceStub(channels["project"])
    billing = billing_pb2_grpc.BillingServiceStub(channels["billing"])
    notification = notification_pb2_grpc.NotificationServiceStub(channels["notification"])
    analytics = analytics_pb2_grpc.AnalyticsServiceStub(channels["analytics"])

    async def validate() -> None:
        reply = await auth.ValidateToken(
            auth_pb2.ValidateTokenRequest(token=user["token"]), metadata=metadata, timeout=10
        )
        if not reply.valid:
            raise RuntimeError(f"ValidateToken: valid=false ({reply.reason})")

    async def read_project() -> None:
        reply = await project.GetProject(
            project_pb2.GetProjectRequest(project_id=project_id), metadata=metadata, timeout=10
        )
        if reply.project.id != project_id:
            raise RuntimeError("GetProject returned another project")
        listed = await project.ListUserProjects(
            project_pb2.ListUserProjectsRequest(limit=10), metadata=metadata, timeout=10
        )
        if not listed.projects:
            raise RuntimeError("ListUserProjects lost the user's project")

    async def subscription() -> None:
        reply = await billing.GetUserSubscription(
            billing_pb2.GetUserSubscriptionRequest(user_id=user_id), metadata=metadata, timeout=10
        )
        if not reply.subscription.plan.id:
            raise RuntimeError("GetUserSubscription without a plan")

    async def history() -> None:
        request = notification_pb2.GetNotificationHistoryRequest(user_id=user_id, limit=10)
        await notification.GetNotificationHistory(request, metadata=metadata, timeout=10)

    async def track() -> None:
        request = analytics_pb2.TrackEventRequest(name="bench.load", user_id=user_id)
        reply = await analytics.TrackEvent(request, metadata=metadata, timeout=10)
        if not reply.event_id:
            raise RuntimeError("TrackEvent without an event id")

    calls = {"auth": validate, "project": read_project, "billing": subscription,
             "notification": history, "analytics": track}  # fmt: skip
    counter = dict.fromkeys(calls, 0)
    stop_at = time.monotonic() + seconds
    try:
        await asyncio.gather(
            *(_loop(call, stop_at, counter, name) for name, call in calls.items() for _ in range(4))
        )
    finally:
        for channel in channels.values():
            await channel.close()
    return counter


async def wait_for_sent_email(address: Address, user: dict[str, str], seconds: float) -> None:
    """Wait until one of ``user``'s emails is SENT: the Celery worker has delivered it."""
    import grpc
    from zoptal.notification.v1 import notification_pb2, notification_pb2_grpc

    metadata = (("authorization", f"Bearer {user['token']}"),)
    request = notification_pb2.GetNotificationHistoryRequest(
        user_id=user["user_id"], status=notification_pb2.NOTIFICATION_STATUS_SENT, limit=1
    )
    give_up = time.monotonic() + seconds
    async with grpc.aio.insecure_channel(address(4004)) as channel:
        notification = notification_pb2_grpc.NotificationServiceStub(channel)
        while time.monotonic() < give_up:
            reply = await notification.GetNotificationHistory(
                request, metadata=metadata, timeout=10
            )
            if reply.notifications:
                return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"no email of {user['user_id']} was delivered within {seconds:.0f} s")


async def _slice(call: Call, seconds: float, concurrency: int) -> tuple[float, float]:
    """(calls per second, median latency in ms) of ``concurrency`` loops for ``seconds``."""
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < stop_at:
            began = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(latencies) / (time.perf_counter() - began), 1000 * statistics.median(latencies)


async def drive_hops(
    address: Address, relay: str, user: dict[str, str], rounds: int, seconds: float
) -> dict[str, Any]:
    """Billing's limit check directly (one hop) and through Project's relay (two hops)."""
    import grpc
    from zoptal.billing.v1 import billing_pb2, billing_pb2_grpc

    metadata = (("authorization", f"Bearer {user['token']}"),)
    request = billing_pb2.CheckSubscriptionLimitsRequest(
        user_id=user["user_id"], metric=billing_pb2.METRIC_PROJECTS, quantity=1
    )
    billing_channel = grpc.aio.insecure_channel(address(4003))
    relay_channel = grpc.aio.insecure_channel(relay)
    billing = billing_pb2_grpc.BillingServiceStub(billing_channel)
    relay_call = relay_channel.unary_unary(RELAY_METHOD)

    async def one_hop() -> None:
        reply = await billing.CheckSubscriptionLimits(request, metadata=metadata, timeout=10)
        if not reply.allowed:
            raise RuntimeError("CheckSubscriptionLimits: not allowed")

    async def two_hops() -> None:
        reply = await relay_call(b"", metadata=metadata, timeout=10)
        if reply != b"allowed":
            raise RuntimeError(f"relay answered {reply!r}")

    # Latency with one call at a time is the pure cost of the extra hop; throughput with 16 in
    # flight shows whether the hop or Billing itself is the bottleneck.
    calls = {"one_hop": one_hop, "two_hops": two_hops}
    shapes = {"latency": 1, "throughput": 16}
    results: dict[str, list[tuple[float, float]]] = {
        f"{shape}/{name}": [] for shape in shapes for name in calls
    }
    try:
        for call in calls.values():  # warm up: connections, JWKS, token caches
            await _slice(call, 0.3, 4)
        for number in range(rounds):
            order = list(calls) if number % 2 == 0 else list(reversed(calls))
            for shape, concurrency in shapes.items():
                for name in order:
                    result = await _slice(calls[name], seconds, concurrency)
                    results[f"{shape}/{name}"].append(result)
    finally:
        await billing_channel.close()
        await relay_channel.close()
    latency = list(zip(results["latency/two_hops"], results["latency/one_hop"], strict=True))
    load = list(zip(results["throughput/two_hops"], results["throughput/one_hop"], strict=True))
    return {
        "latency_ratio": statistics.median(two[1] / one[1] for two, one in latency),
        "latency_round_ratios": [two[1] / one[1] for two, one in latency],
        "throughput_ratio": statistics.median(two[0] / one[0] for two, one in load),
        "throughput_round_ratios": [two[0] / one[0] for two, one in load],
        "one_hop_p50_ms": statistics.median(ms for _, ms in results["latency/one_hop"]),
        "two_hops_p50_ms": statistics.median(ms for _, ms in results["latency/two_hops"]),
        "one_hop_rps": statistics.median(rps for rps, _ in results["throughput/one_hop"]),
        "two_hops_rps": statistics.median(rps for rps, _ in results["throughput/two_hops"]),
    }
