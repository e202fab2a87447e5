"""Auth's ValidateToken against a bare grpc.aio server, under the same load, in one run.

Two servers, each in its own process, on the same event loop implementation (uvloop):

* ``bare`` - a plain ``grpc.aio`` server (no interceptors) whose ValidateToken returns a fixed,
  pre-built ``valid = true`` reply;
* ``auth`` - the real Auth service (``python -m zoptal_auth``: production interceptor chain,
  SQLite, ES256 keys), validating real access tokens obtained by Login.

Every call carries a caller credential, as ValidateToken requires: the user's own access token
(``authorization: Bearer``), which is also the token validated, so the Auth side pays for
authenticating the caller as a real client makes it. The bare server gets the same metadata.
Auth runs with a rate-limit budget no run reaches (``RATE_LIMIT_MAX_REQUESTS``): the limiter
still counts every call, it just never refuses one.

Load comes from ``--clients`` separate client processes, each keeping ``--concurrency`` calls
in flight over ``--channels`` channels. Every reply is checked: status OK *and* ``valid = true``
(load tools such as h2load count gRPC errors as successes, so we do not use them). Only replies
completed inside the measurement window count; any failed reply aborts the run. The variants
alternate over ``--rounds`` rounds so background noise hits both alike; the median of the
per-round ratios is the figure.

``--tokens N`` spreads the calls over N distinct access tokens (N logins). Auth caches verified
tokens (expiry and revocation are still checked on every call); ``--no-cache`` turns that cache
off (``VALIDATION_CACHE_SIZE=0``), so every call verifies an ES256 signature.

    uv run python benchmarks/validate_token.py [--seconds 5] [--rounds 3] [--tokens 1]

It also reads each server's CPU time (Linux ``/proc``) over the window and prints CPU per call:
when the client processes, not the servers, are the bottleneck (a small or busy machine), the
capacity ratio bare-CPU-per-call / auth-CPU-per-call is the figure that carries over.

Goal (issue 2): auth/bare throughput >= 0.7.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import cpu_seconds

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "benchmark passphrase 42"  # noqa: S105 - a throwaway account in a temp database


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _loop_runner() -> asyncio.Runner:
    try:
        import uvloop

        return asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        return asyncio.Runner()


# ------------------------------------------------------------------------ the bare server


def bare_server(port: int) -> None:
    import grpc
    from zoptal.auth.v1 import auth_pb2, auth_pb2_grpc

    reply = auth_pb2.ValidateTokenResponse(
        valid=True,
        token_type=auth_pb2.TOKEN_TYPE_USER,
        user_id="00000000-0000-0000-0000-000000000000",
        email="bench@example.com",
        roles=["user"],
        permissions=["billing:read", "project:create", "project:read"],
    )

    class Fixed(auth_pb2_grpc.AuthServiceServicer):
        async def ValidateToken(self, request: Any, context: Any) -> Any:
            return reply

    async def main() -> None:
        server = grpc.aio.server()
        auth_pb2_grpc.add_AuthServiceServicer_to_server(Fixed(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        print("ready", flush=True)
        await server.wait_for_termination()

    with _loop_runner() as runner:
        runner.run(main())


# ------------------------------------------------------------------------ a client process


def client(target: str, seconds: float, concurrency: int, channels: int) -> None:
    """Connect, say "ready", read the window's start time from stdin, load ``target`` until the
    window ends; print counts of checked replies as JSON."""
    import grpc
    from zoptal.auth.v1 import auth_pb2, auth_pb2_grpc

    tokens = json.loads(os.environ["BENCH_TOKENS"])
    # Each user validates their own token: the caller's credential is the token itself.
    requests = [
        (auth_pb2.ValidateTokenRequest(token=token), (("authorization", f"Bearer {token}"),))
        for token in tokens
    ]
    start_at = end_at = 0.0
    counted = {"ok": 0, "latencies": []}
    failures: list[str] = []

    async def worker(stub: Any, offset: int) -> None:
        index = offset
        while True:
            began = time.perf_counter()
            now = time.time()
            if now >= end_at or failures:
                return
            try:
                request, metadata = requests[index % len(requests)]
                reply = await stub.ValidateToken(request, metadata=metadata, timeout=10)
            except grpc.aio.AioRpcError as error:
                failures.append(f"{error.code().name}: {error.details()}")
                return
            index += 1
            if not reply.valid:
                failures.append(f"valid=false reason={reply.reason} {reply.reason_detail}")
                return
            finished = time.time()
            if start_at <= finished < end_at:
                counted["ok"] += 1
                counted["latencies"].append(time.perf_counter() - began)

    async def main() -> None:
        nonlocal start_at, end_at
        opened = [grpc.aio.insecure_channel(target) for _ in range(channels)]
        stubs = [auth_pb2_grpc.AuthServiceStub(channel) for channel in opened]
        try:
            # Starting Python and connecting can take seconds on a busy machine: the window
            # opens only once every client process is connected and ready.
            for stub in stubs:
                await stub.ValidateToken(requests[0][0], metadata=requests[0][1], timeout=30)
            print("ready", flush=True)
            start_at = float(await asyncio.to_thread(sys.stdin.readline))
            end_at = start_at + seconds
            await asyncio.gather(*(worker(stubs[i % channels], i) for i in range(concurrency)))
        finally:
            for channel in opened:
                await channel.close()

    with _loop_runner() as runner:
        runner.run(main())
    latencies = sorted(counted["latencies"]) or [0.0]
    print(
        json.dumps(
            {
                "ok": counted["ok"],
                "failures": failures[:3],
                "p50": latencies[len(latencies) // 2],
                "p99": latencies[int(len(latencies) * 0.99)],
            }
        ),
        flush=True,
    )


# ------------------------------------------------------------------------ orchestration


def _spawn(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def _wait_serving(address: str, deadline: float = 60.0) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    started = time.monotonic()
    async with grpc.aio.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() - started < deadline:
            with contextlib.suppress(grpc.aio.AioRpcError):
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{address} did not become SERVING")


async def _login_tokens(address: str, count: int) -> list[str]:
    import grpc
    from zoptal.auth.v1 import auth_pb2, auth_pb2_grpc

    async with grpc.aio.insecure_channel(address) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        email = "loadtest@example.com"
        await stub.RegisterUser(auth_pb2.RegisterUserRequest(email=email, password=PASSWORD))
        # One after the other: concurrent logins of one client would meet the hashing pool's
        # per-client share (ARGON2_MAX_PER_CLIENT) and get RESOURCE_EXHAUSTED.
        login = auth_pb2.LoginRequest(email=email, password=PASSWORD)
        return [(await stub.Login(login)).access_token for _ in range(count)]


def _start_auth(data_dir: Path, *, cache: bool) -> tuple[subprocess.Popen[str], str]:
    port = _free_port()
    env = {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "GRPC_PORT": str(port),
        "AUTH_HTTP_PORT": str(_free_port()),
        "METRICS_PORT": "0",
        "ZOPTAL_ENV": "development",
        # Cheap hashing only speeds up the setup logins; ValidateToken never hashes.
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_KIB": "8192",
        "ARGON2_PARALLELISM": "1",
        # Access tokens that outlive the run, so none expires mid-measurement.
        "ACCESS_TOKEN_TTL_SECONDS": "3600",
        "VALIDATION_CACHE_SIZE": "10000" if cache else "0",
        # ValidateToken is rate limited per caller: a budget the run never reaches.
        "RATE_LIMIT_MAX_REQUESTS": "1000000000",
    }
    for name in ("DATABASE_URL", "REDIS_URL", "JWT_SECRET", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        env.pop(name, None)
    migrate = subprocess.run(
        [sys.executable, "-m", "zoptal_auth", "migrate"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if migrate.returncode != 0:
        raise RuntimeError(f"auth migrate failed: {migrate.stderr}")
    return _spawn(["-m", "zoptal_auth"], env), f"127.0.0.1:{port}"


def _measure(
    address: str, server_pid: int, tokens: list[str], options: argparse.Namespace
) -> dict[str, Any]:
    env = {**os.environ, "BENCH_TOKENS": json.dumps(tokens)}
    arguments = [
        str(Path(__file__).resolve()),
        "_client",
        address,
        str(options.seconds),
        str(options.concurrency),
        str(options.channels),
    ]
    clients = [_spawn(arguments, env) for _ in range(options.clients)]
    for process in clients:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"a client could not connect to {address}")
    start_at = time.time() + options.warmup
    for process in clients:
        assert process.stdin is not None
        process.stdin.write(f"{start_at}\n")
        process.stdin.flush()
    time.sleep(max(start_at - time.time(), 0))
    cpu_before = cpu_seconds(server_pid)
    time.sleep(max(start_at + options.seconds - time.time(), 0))
    cpu_used = cpu_seconds(server_pid) - cpu_before
    results = []
    for process in clients:
        out, err = process.communicate(timeout=options.seconds + options.warmup + 60)
        if process.returncode != 0:
            raise RuntimeError(f"client failed: {err[-2000:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    failures = [failure for result in results for failure in result["failures"]]
    if failures:
        raise RuntimeError(f"unchecked replies against {address}: {failures}")
    ok = sum(result["ok"] for result in results)
    if ok == 0:
        raise RuntimeError(f"no reply from {address} inside the measurement window")
    return {
        "rps": ok / options.seconds,
        "cpu_us_per_call": cpu_used / max(ok, 1) * 1e6,
        "p50_ms": statistics.median(r["p50"] for r in results) * 1000,
        "p99_ms": max(r["p99"] for r in results) * 1000,
    }


async def _ready(bare: subprocess.Popen[str], auth_address: str, token_count: int) -> list[str]:
    if bare.stdout is None or bare.stdout.readline().strip() != "ready":
        raise RuntimeError("bare server did not start")
    await _wait_serving(auth_address)
    return await _login_tokens(auth_address, token_count)


def orchestrate(options: argparse.Namespace) -> None:
    rounds: dict[str, list[dict[str, Any]]] = {"bare": [], "auth": []}
    started: list[subprocess.Popen[str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-auth-") as folder:
        try:
            bare_port = _free_port()
            bare = _spawn([str(Path(__file__).resolve()), "_bare", str(bare_port)])
            started.append(bare)
            auth, auth_address = _start_auth(Path(folder), cache=not options.no_cache)
            started.append(auth)
            bare_address = f"127.0.0.1:{bare_port}"
            tokens = asyncio.run(_ready(bare, auth_address, options.tokens))
            for number in range(1, options.rounds + 1):
                for name, address, pid in (
                    ("bare", bare_address, bare.pid),
                    ("auth", auth_address, auth.pid),
                ):
                    result = _measure(address, pid, tokens, options)
                    rounds[name].append(result)
                    print(
                        f"round {number} {name:>4}: {result['rps']:8.0f} calls/s  "
                        f"p50 {result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:6.2f} ms  "
                        f"server CPU {result['cpu_us_per_call']:5.0f} us/call",
                        flush=True,
                    )
        finally:
            for process in started:
                process.terminate()
            for process in started:
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
    bare_rps = statistics.median(r["rps"] for r in rounds["bare"])
    auth_rps = statistics.median(r["rps"] for r in rounds["auth"])
    ratios = [a["rps"] / b["rps"] for a, b in zip(rounds["auth"], rounds["bare"], strict=True)]
    print(
        f"\n{options.clients} client processes x {options.concurrency} in flight, "
        f"{options.tokens} distinct token(s), verified-token cache "
        f"{'off' if options.no_cache else 'on'}, {options.seconds:g} s x {options.rounds} rounds"
    )
    print(f"bare grpc.aio : {bare_rps:8.0f} calls/s (median)")
    print(f"auth Validate : {auth_rps:8.0f} calls/s (median)")
    print(f"per-round ratios: {', '.join(f'{r:.2f}' for r in ratios)}")
    bare_cpu = statistics.median(r["cpu_us_per_call"] for r in rounds["bare"])
    auth_cpu = statistics.median(r["cpu_us_per_call"] for r in rounds["auth"])
    print(f"server CPU per call: bare {bare_cpu:.0f} us, auth {auth_cpu:.0f} us")
    # Each round pairs adjacent bare and auth runs, so the median of the per-round ratios
    # cancels slow drifts in background load better than a ratio of medians.
    ratio = statistics.median(ratios)
    verdict = "meets" if ratio >= 0.7 else "misses"
    print(f"throughput ratio auth/bare = {ratio:.2f} (median of rounds; {verdict} the 0.7 goal)")
    # When the clients, not the servers, are the bottleneck (a small or busy machine), achieved
    # throughput says little; a saturated single-loop server's capacity is 1 / CPU per call.
    print(f"capacity ratio (bare CPU per call / auth CPU per call) = {bare_cpu / auth_cpu:.2f}")
    if options.json:  # for benchmarks/run_all.py
        result = {
            "throughput_ratio": ratio,
            "capacity_ratio": bare_cpu / auth_cpu,
            "bare_rps": bare_rps,
            "auth_rps": auth_rps,
            "round_ratios": ratios,
        }
        Path(options.json).write_text(json.dumps(result))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_bare":
        bare_server(int(sys.argv[2]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_client":
        target, seconds, concurrency, channels = sys.argv[2:6]
        client(target, float(seconds), int(concurrency), int(channels))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per round")
    parser.add_argument("--warmup", type=float, default=1.5, help="unmeasured seconds first")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--concurrency", type=int, default=32, help="calls in flight per client")
    parser.add_argument("--channels", type=int, default=2, help="channels per client")
    parser.add_argument("--tokens", type=int, default=1, help="distinct access tokens")
    parser.add_argument(
        "--no-cache", action="store_true", help="turn Auth's verified-token cache off"
    )
    parser.add_argument("--json", help="also write the result as JSON to this file")
    orchestrate(parser.parse_args())


if __name__ == "__main__":
    main()
