"""GetProject and CreateProject through meshcore against a bare grpc.aio baseline, on PostgreSQL.

One run, one machine. Both variants do the same domain work with the same code (Project's and
Billing's services, repositories and servicers, each service on its own PostgreSQL database) and
the same second hop (CreateProject -> Billing.CheckSubscriptionLimits + RecordUsage, Analytics
TrackEvent off the critical path); they differ only in what meshcore adds around it:

* ``bare`` - plain ``grpc.aio`` servers whose only interceptor trusts an ``x-subject`` header and
  turns domain errors into a status; Project calls Billing through a raw generated stub on one
  channel;
* ``mesh`` - the services as deployed: ``build_server_chain`` (call context, tracing off as with
  OTEL_* unset, logging, metrics, JWT verification, rate limit, error mapping) and the typed
  ``zoptal.clients`` (discovery, p2c-ewma, breaker, retries, deadline, service token).

Each server runs in its own process (uvloop when available). This process keeps
``--concurrency`` calls in flight against one variant at a time, in short alternating slices over
``--rounds`` rounds; the reported ratio is the median of per-round ratios, since two slices of
one round see the same background load. Every reply is checked; any failure aborts the run.
Each CreateProject uses a new owner, so no plan limit is ever reached.

``--profile`` then runs CreateProject against the mesh Project server under cProfile and prints
where its CPU time goes, by package.

    uv run python benchmarks/two_hop.py [--seconds 1] [--rounds 5] [--concurrency 16] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from _common import package_of

ADMIN_DSN = os.environ.get("TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
JWT_SECRET = "benchmark-jwt-secret-0123456789abcdef-0123"  # noqa: S105 - a throwaway test key
ROLES = ("analytics", "bare-billing", "bare-project", "mesh-billing", "mesh-project")


def _runner() -> asyncio.Runner:
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


# -- the servers (each in its own process) ----------------------------------------------------


def serve(role: str, database_url: str, peers: dict[str, str], profile_to: str | None) -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)
    with _runner() as runner:
        runner.run(_serve(role, database_url, peers, profile_to))


async def _serve(
    role: str, database_url: str, peers: dict[str, str], profile_to: str | None
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    server, cleanup = await _build(role, database_url, peers)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"READY {port}", flush=True)
    profiler = None
    if profile_to:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    await stop.wait()
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile_to)
    await server.stop(1.0)
    await cleanup()


async def _build(role: str, database_url: str, peers: dict[str, str]) -> tuple[Any, Any]:
    from prometheus_client import CollectorRegistry
    from zoptal.analytics.v1 import analytics_pb2, analytics_pb2_grpc

    if role == "analytics":

        class Sink(analytics_pb2_grpc.AnalyticsServiceServicer):
            async def TrackEvent(self, request: Any, context: Any) -> Any:
                return analytics_pb2.TrackEventResponse(event_id=request.event_id)

        server = grpc.aio.server()
        analytics_pb2_grpc.add_AnalyticsServiceServicer_to_server(Sink(), server)
        return server, _nothing
    if role == "mesh-billing":
        from zoptal_billing.app import BillingApp
        from zoptal_billing.settings import BillingSettings

        settings = _mesh_settings(BillingSettings, database_url, peers)
        billing = BillingApp(settings)
        server = grpc.aio.server(
            interceptors=billing.interceptors(
                metrics_registry=CollectorRegistry(), key_source=_service_issuer().keys
            )
        )
        for registration in billing.registrations:
            registration.add_to_server(registration.servicer, server)
        return server, billing.close
    if role == "mesh-project":
        from meshcore.client_manager import GrpcClientManager
        from zoptal_project.app import ProjectApp
        from zoptal_project.settings import ProjectSettings

        settings = _mesh_settings(ProjectSettings, database_url, peers)
        # No Auth here to trade a credential for Project's service token: one is signed by
        # this run's own key, which Billing trusts (as it would trust Auth's).
        token = _service_issuer().service_token("project", ["billing:read", "billing:write"])
        clients = GrpcClientManager.from_settings(settings, service_token=token)
        project = ProjectApp(settings, clients=clients)
        server = grpc.aio.server(
            interceptors=project.interceptors(metrics_registry=CollectorRegistry())
        )
        for registration in project.registrations:
            registration.add_to_server(registration.servicer, server)
        return server, project.close
    return await _build_bare(role, database_url, peers)


SERVICE_KEY_VARIABLE = "TWO_HOP_SERVICE_KEY_PEM"
"""This run's service-token key: generated by the orchestrator, handed to its server processes."""


def _service_issuer() -> Any:
    """A TokenMint on this run's key (``SERVICE_KEY_VARIABLE``)."""
    from meshcore.jwt import SigningKey, StaticKeys
    from meshcore.testing import TokenMint

    mint = TokenMint()
    mint.signing_key = SigningKey.from_pem(os.environ[SERVICE_KEY_VARIABLE].encode())
    mint.keys = StaticKeys([mint.signing_key.public_jwk()])
    return mint


def _mesh_settings(cls: Any, database_url: str, peers: dict[str, str]) -> Any:
    from meshcore.settings import Secret

    return cls(
        database_url=database_url,
        jwt_secret=Secret(JWT_SECRET),
        auth_jwks_url="",
        metrics_port=0,
        log_level="INFO",
        rate_limit_max_requests=10_000_000,
        # No Auth in this topology to poll revocations from: the check still runs on every
        # call, answering from its (empty) list instead of refusing as unsynced.
        revocation_fail_mode="open",
        peers={name: (address,) for name, address in peers.items()},
    )


async def _build_bare(role: str, database_url: str, peers: dict[str, str]) -> tuple[Any, Any]:
    from meshcore.db import Database
    from zoptal.analytics.v1 import analytics_pb2, analytics_pb2_grpc
    from zoptal.billing.v1 import billing_pb2, billing_pb2_grpc
    from zoptal.project.v1 import project_pb2_grpc

    database = Database(database_url)
    server = grpc.aio.server(interceptors=[_TrustedHeader()])
    channels: list[Any] = []
    if role == "bare-billing":
        from zoptal_billing.service import BillingService
        from zoptal_billing.servicer import BillingServicer

        billing_pb2_grpc.add_BillingServiceServicer_to_server(
            BillingServicer(BillingService(database)), server
        )
    else:
        from zoptal_project.gateways import GrpcAnalyticsGateway, GrpcBillingGateway
        from zoptal_project.members import MembershipService
        from zoptal_project.service import ProjectService
        from zoptal_project.servicer import ProjectServicer

        billing_channel = grpc.aio.insecure_channel(peers["billing"])
        analytics_channel = grpc.aio.insecure_channel(peers["analytics"])
        channels += [billing_channel, analytics_channel]
        billing_stub = billing_pb2_grpc.BillingServiceStub(billing_channel)
        analytics_stub = analytics_pb2_grpc.AnalyticsServiceStub(analytics_channel)
        as_service = (("x-subject", "project"), ("x-kind", "service"))

        class RawBilling:
            """The two calls CreateProject makes, on a raw stub (same shape as the client)."""

            async def check_subscription_limits(
                self, user_id: str, metric: Any, quantity: int, **kw: Any
            ) -> Any:
                request = billing_pb2.CheckSubscriptionLimitsRequest(
                    user_id=user_id, metric=metric, quantity=quantity, scope_id=kw["scope_id"]
                )
                return await billing_stub.CheckSubscriptionLimits(
                    request, timeout=3.0, metadata=as_service
                )

            async def record_usage(
                self, user_id: str, metric: Any, quantity: int, key: str, **kw: Any
            ) -> Any:
                request = billing_pb2.RecordUsageRequest(
                    user_id=user_id,
                    metric=metric,
                    quantity=quantity,
                    idempotency_key=key,
                    scope_id=kw["scope_id"],
                    enforce_limit=kw["enforce_limit"],
                )
                return await billing_stub.RecordUsage(request, timeout=3.0, metadata=as_service)

        class RawAnalytics:
            async def track_event(self, name: str, **kw: Any) -> Any:
                request = analytics_pb2.TrackEventRequest(
                    name=name,
                    user_id=kw["user_id"],
                    properties=dict(kw["properties"]),
                    event_id=kw["event_id"],
                )
                return await analytics_stub.TrackEvent(request, timeout=2.0, metadata=as_service)

        billing = GrpcBillingGateway(RawBilling())  # type: ignore[arg-type]
        projects = ProjectService(database, billing, GrpcAnalyticsGateway(RawAnalytics()))  # type: ignore[arg-type]
        members = MembershipService(database, billing, _NoDirectory())
        project_pb2_grpc.add_ProjectServiceServicer_to_server(
            ProjectServicer(projects, members), server
        )

    async def cleanup() -> None:
        for channel in channels:
            await channel.close()
        await database.dispose()

    return server, cleanup


class _NoDirectory:
    async def user_exists(self, user_id: str) -> bool:
        return True


class _TrustedHeader(grpc.aio.ServerInterceptor):
    """The baseline's only plumbing: trust ``x-subject``, map domain errors to a status."""

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        from meshcore.context import Principal, call_state
        from meshcore.errors import MeshError

        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary
        everything = frozenset({"project:create", "billing:read", "billing:write"})

        async def unary(request: Any, context: Any) -> Any:
            metadata = dict(context.invocation_metadata() or ())
            kind = "service" if metadata.get("x-kind") == "service" else "user"
            call_state().principal = Principal(str(metadata["x-subject"]), kind, everything)
            try:
                return await inner(request, context)
            except MeshError as error:
                await context.abort(error.code, error.message)

        return grpc.unary_unary_rpc_method_handler(
            unary, handler.request_deserializer, handler.response_serializer
        )


async def _nothing() -> None:
    return None


# -- the load generator -----------------------------------------------------------------------


def _user_token(subject: str) -> str:
    import jwt

    now = int(time.time())
    claims = {
        "sub": subject, "typ": "access", "iss": "zoptal-auth", "aud": "zoptal",
        "permissions": ["project:create"], "roles": ["user"], "iat": now, "exp": now + 3600,
    }  # fmt: skip
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


def _metadata(subject: str) -> tuple[tuple[str, str], ...]:
    # Both variants get both headers, so the client does the same work for each.
    return (("authorization", f"Bearer {_user_token(subject)}"), ("x-subject", subject))


async def _measure(call: Callable[[], Awaitable[None]], seconds: float, concurrency: int) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await call()
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - start)


async def drive(ports: dict[str, int], args: argparse.Namespace) -> dict[str, Any]:
    from zoptal.project.v1 import project_pb2 as pb, project_pb2_grpc

    channels = {v: grpc.aio.insecure_channel(f"127.0.0.1:{ports[f'{v}-project']}") for v in
                ("bare", "mesh")}  # fmt: skip
    stubs = {v: project_pb2_grpc.ProjectServiceStub(c) for v, c in channels.items()}
    reader = _metadata("bench-reader")
    seeded = {}
    for variant, stub in stubs.items():
        reply = await stub.CreateProject(pb.CreateProjectRequest(name="read me"), metadata=reader)
        seeded[variant] = reply.project.id
    counter = itertools.count()
    run_id = uuid.uuid4().hex[:6]

    def get_call(variant: str) -> Callable[[], Awaitable[None]]:
        request = pb.GetProjectRequest(project_id=seeded[variant])

        async def call() -> None:
            reply = await stubs[variant].GetProject(request, metadata=reader, timeout=10)
            assert reply.project.id == seeded[variant]

        return call

    def create_call(variant: str) -> Callable[[], Awaitable[None]]:
        async def call() -> None:
            owner = f"owner-{run_id}-{next(counter)}"
            reply = await stubs[variant].CreateProject(
                pb.CreateProjectRequest(name="bench"), metadata=_metadata(owner), timeout=10
            )
            assert reply.project.owner_id == owner

        return call

    results: dict[str, dict[str, list[float]]] = {
        rpc: {"bare": [], "mesh": []} for rpc in ("GetProject", "CreateProject")
    }
    for round_index in range(args.rounds):
        order = ("bare", "mesh") if round_index % 2 == 0 else ("mesh", "bare")
        for rpc, factory in (("GetProject", get_call), ("CreateProject", create_call)):
            for variant in order:
                rate = await _measure(factory(variant), args.seconds, args.concurrency)
                results[rpc][variant].append(rate)
    for channel in channels.values():
        await channel.close()
    report: dict[str, Any] = {}
    for rpc, by_variant in results.items():
        ratios = [m / b for m, b in zip(by_variant["mesh"], by_variant["bare"], strict=True)]
        report[rpc] = {
            "bare_rps": round(statistics.median(by_variant["bare"]), 1),
            "mesh_rps": round(statistics.median(by_variant["mesh"]), 1),
            "ratio_median": round(statistics.median(ratios), 3),
            "ratios": [round(r, 3) for r in ratios],
        }
    return report


async def drive_profile(port: int, seconds: float, concurrency: int) -> None:
    from zoptal.project.v1 import project_pb2 as pb, project_pb2_grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = project_pb2_grpc.ProjectServiceStub(channel)
        counter = itertools.count()

        async def call() -> None:
            owner = f"profiled-{uuid.uuid4().hex[:6]}-{next(counter)}"
            await stub.CreateProject(
                pb.CreateProjectRequest(name="bench"), metadata=_metadata(owner), timeout=10
            )

        await _measure(call, seconds, concurrency)


def _profile_by_package(path: str, top: int = 14) -> list[tuple[str, float]]:
    """Own time (cProfile tottime) of the profiled server, summed per top-level package."""
    import pstats

    stats = pstats.Stats(path)
    totals: dict[str, float] = {}
    for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        totals[package_of(filename)] = totals.get(package_of(filename), 0.0) + tottime
    grand = sum(totals.values()) or 1.0
    ranked = sorted(totals.items(), key=lambda item: item[1], reverse=True)[:top]
    return [(name, round(100 * value / grand, 1)) for name, value in ranked]


# -- orchestration ------------------------------------------------------------------------------


async def _admin(statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(ADMIN_DSN)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _start(role: str, url: str, peers: dict[str, str], profile_to: str | None = None) -> Any:
    argv = [sys.executable, __file__, "--serve", role, "--database-url", url,
            "--peers", json.dumps(peers)]  # fmt: skip
    if profile_to:
        argv += ["--profile-to", profile_to]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("READY "):
        process.kill()
        raise RuntimeError(f"{role} did not start: {line!r}")
    return process, int(line.split()[1])


def _stop(process: Any) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--json", help="also write the results as JSON to this file")
    parser.add_argument("--serve", choices=ROLES, help=argparse.SUPPRESS)
    parser.add_argument("--database-url", default="", help=argparse.SUPPRESS)
    parser.add_argument("--peers", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--profile-to", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.database_url, json.loads(args.peers), args.profile_to)
        return 0
    return _orchestrate(args)


def _orchestrate(args: argparse.Namespace) -> int:
    from meshcore.jwt import SigningKey
    from meshcore.migrations import run_migrations

    os.environ[SERVICE_KEY_VARIABLE] = SigningKey.generate().private_pem().decode()
    from zoptal_billing import MIGRATIONS_DIR as BILLING
    from zoptal_project import MIGRATIONS_DIR as PROJECT

    suffix = uuid.uuid4().hex[:8]
    keys = ("bare-billing", "bare-project", "mesh-billing", "mesh-project")
    names = {key: f"zoptal_bench_{key.replace('-', '_')}_{suffix}" for key in keys}
    urls = {key: f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}" for key, name in
            names.items()}  # fmt: skip
    processes: list[Any] = []
    try:
        for key, name in names.items():
            asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
            run_migrations(urls[key], BILLING if key.endswith("billing") else PROJECT)
        analytics, analytics_port = _start("analytics", "", {})
        processes.append(analytics)
        ports: dict[str, int] = {}
        sink = f"127.0.0.1:{analytics_port}"
        for variant in ("bare", "mesh"):
            billing, ports[f"{variant}-billing"] = _start(
                f"{variant}-billing", urls[f"{variant}-billing"],
                {"auth": sink, "notification": sink},
            )  # fmt: skip
            processes.append(billing)
            project, ports[f"{variant}-project"] = _start(
                f"{variant}-project", urls[f"{variant}-project"],
                {"billing": f"127.0.0.1:{ports[f'{variant}-billing']}", "analytics": sink,
                 "auth": sink},
            )  # fmt: skip
            processes.append(project)
        with _runner() as runner:
            report = runner.run(drive(ports, args))
        print(json.dumps({"concurrency": args.concurrency, "seconds": args.seconds,
                          "rounds": args.rounds, "results": report}, indent=2))  # fmt: skip
        if args.json:  # for benchmarks/run_all.py
            with open(args.json, "w") as out:
                json.dump(report, out)
        if args.profile:
            handle, profile_path = tempfile.mkstemp(prefix="two_hop_create_", suffix=".prof")
            os.close(handle)
            profiled, port = _start(
                "mesh-project", urls["mesh-project"],
                {"billing": f"127.0.0.1:{ports['mesh-billing']}", "analytics": sink,
                 "auth": sink},
                profile_to=profile_path,
            )  # fmt: skip
            with _runner() as runner:
                runner.run(drive_profile(port, args.seconds * args.rounds, args.concurrency))
            _stop(profiled)
            print("CreateProject, mesh Project server: own time in Python frames by package (%):")
            for package, share in _profile_by_package(profile_path):
                print(f"  {package:<28} {share:5.1f}")
            print(f"(full profile: {profile_path}; inspect with python -m pstats)")
    finally:
        for process in processes:
            _stop(process)
        for name in names.values():
            with contextlib.suppress(Exception):
                asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
