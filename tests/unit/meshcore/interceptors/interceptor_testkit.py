"""Test kit: a real in-process grpc.aio server with one method of each RPC shape, over bytes.

Requests steer the handler: ``b"invalid"`` raises InvalidArgument, ``b"invalid-twice"`` one for
two fields, ``b"missing"`` NotFound, ``b"quota"`` ResourceExhausted with a reason and metadata,
``b"boom"`` a RuntimeError, ``b"limit"`` ResourceExhausted(retry_after=2.5), ``b"abort"`` calls
``context.abort`` itself.
Streaming handlers send two replies first and then fail the same way, so errors raised *while*
a stream is iterated are exercised.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any, ClassVar

import grpc
import grpc.aio
from meshcore.context import current_principal, current_request_id
from meshcore.errors import FieldViolation, InvalidArgument, NotFound, ResourceExhausted
from meshcore.interceptors import AuthOptions, RpcMethod, ServerInterceptor

SERVICE = "test.v1.Echo"
UNARY = f"/{SERVICE}/Unary"
SERVER_STREAM = f"/{SERVICE}/ServerStream"
CLIENT_STREAM = f"/{SERVICE}/ClientStream"
BIDI = f"/{SERVICE}/Bidi"


async def _fail_if_asked(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    if request == b"invalid":
        raise InvalidArgument("payload", "must not be 'invalid'")
    if request == b"invalid-twice":
        raise InvalidArgument.of(
            [FieldViolation("name", "must not be empty"), FieldViolation("size", "too large")]
        )
    if request == b"missing":
        raise NotFound("project", "p-1")
    if request == b"quota":
        raise ResourceExhausted(
            "plan limit", reason="PLAN_LIMIT_REACHED", metadata={"metric": "projects"}
        )
    if request == b"boom":
        raise RuntimeError("secret internals: password=hunter2")
    if request == b"limit":
        raise ResourceExhausted("slow down", retry_after=2.5)
    if request == b"abort":
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "handler aborted")


def _describe(request: bytes) -> bytes:
    principal = current_principal()
    who = principal.subject if principal else "-"
    return b"|".join([request, who.encode(), (current_request_id() or "-").encode()])


async def unary(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    await _fail_if_asked(request, context)
    return _describe(request)


async def server_stream(
    request: bytes, context: grpc.aio.ServicerContext[Any, Any]
) -> AsyncIterator[bytes]:
    yield _describe(request)
    yield b"second"
    await _fail_if_asked(request, context)


async def client_stream(
    requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
) -> bytes:
    received = [request async for request in requests]
    for request in received:
        await _fail_if_asked(request, context)
    return b",".join(received)


async def bidi(
    requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
) -> AsyncIterator[bytes]:
    async for request in requests:
        await _fail_if_asked(request, context)
        yield _describe(request)


def _identity(value: bytes) -> bytes:
    return value


def echo_handler() -> grpc.GenericRpcHandler:
    codec = {"request_deserializer": _identity, "response_serializer": _identity}
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary, **codec),
            "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream, **codec),
            "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream, **codec),
            "Bidi": grpc.stream_stream_rpc_method_handler(bidi, **codec),
        },
    )


class EchoClient:
    """Thin bytes client for the four echo methods."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        codec = {"request_serializer": _identity, "response_deserializer": _identity}
        self.unary = channel.unary_unary(UNARY, **codec)
        self.server_stream = channel.unary_stream(SERVER_STREAM, **codec)
        self.client_stream = channel.stream_unary(CLIENT_STREAM, **codec)
        self.bidi = channel.stream_stream(BIDI, **codec)


async def start_echo_server(
    stack: AsyncExitStack,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    client_interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
) -> EchoClient:
    server = grpc.aio.server(interceptors=[_InFlight(), *interceptors])
    server.add_generic_rpc_handlers((echo_handler(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    stack.push_async_callback(server.stop, None)
    channel = grpc.aio.insecure_channel(
        f"127.0.0.1:{port}", interceptors=list(client_interceptors) or None
    )
    stack.push_async_callback(channel.close)
    return EchoClient(channel)


EchoFactory = Callable[..., Awaitable[EchoClient]]


class _InFlight(ServerInterceptor):
    """Outermost on every echo server: counts calls whose server side has not finished yet."""

    active = 0
    idle_waiters: ClassVar[list[asyncio.Event]] = []

    @classmethod
    def _done(cls) -> None:
        cls.active -= 1
        if cls.active == 0:
            for waiter in cls.idle_waiters:
                waiter.set()

    async def intercept(
        self, method: Any, request_or_iterator: Any, context: Any, rpc: RpcMethod
    ) -> Any:
        _InFlight.active += 1
        try:
            result = await method(request_or_iterator, context)
        except BaseException:
            self._done()
            raise
        if not rpc.response_streaming:
            self._done()
            return result
        return self._watch(result)

    async def _watch(self, responses: AsyncIterator[Any]) -> AsyncIterator[Any]:
        try:
            async for response in responses:
                yield response
        finally:
            self._done()


async def settle() -> None:
    """Wait until every echo server has finished its side of the calls made so far.

    A client may receive a status before the server-side interceptors have run their code after
    ``abort``; this waits for that event (at most 5 s), not for time to pass.
    """
    if _InFlight.active == 0:
        return
    idle = asyncio.Event()
    _InFlight.idle_waiters.append(idle)
    try:
        async with asyncio.timeout(5):
            await idle.wait()
    finally:
        _InFlight.idle_waiters.remove(idle)


async def stream_of(*items: bytes) -> AsyncIterator[bytes]:
    """A client stream of ``items``."""
    for item in items:
        yield item


async def recorded(predicate: Callable[[], bool], attempts: int = 500) -> None:
    """Wait until ``predicate`` holds: client-side results are recorded from the call's done
    callback, a task after the status reached the caller."""
    for _ in range(attempts):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("never recorded")


USER_SECRET = "user-secret-for-tests-0123456789abcdef"
SERVICE_SECRET = "service-secret-for-tests-0123456789abcdef"

HS256_AUTH = AuthOptions(
    jwt_secret=USER_SECRET,
    service_token_secret=None,
    issuer="zoptal-auth",
    audience="zoptal",
    key_source=None,
)
"""The auth layer of a chain built for these tests: the tokens below, nothing fetched."""


def hs256_token(secret: str, claims: dict[str, Any], *, now: float, ttl: float = 300) -> str:
    """An HS256 token made with PyJWT, the way the seed's services sign them."""
    import jwt

    body = {"iat": int(now), "nbf": int(now), "exp": int(now + ttl), **claims}
    return jwt.encode(body, secret, algorithm="HS256")


def user_token(now: float, permissions: list[str] = (), ttl: float = 300, **extra: Any) -> str:  # type: ignore[assignment]
    claims = {
        "sub": "user-1",
        "typ": "access",
        "iss": "zoptal-auth",
        "aud": "zoptal",
        "permissions": list(permissions),
        "roles": ["user"],
        **extra,
    }
    return hs256_token(USER_SECRET, claims, now=now, ttl=ttl)


def service_token(now: float, permissions: list[str] = (), ttl: float = 300) -> str:  # type: ignore[assignment]
    claims = {
        "sub": "billing",
        "serviceId": "billing",
        "serviceName": "Billing Service",
        "typ": "service",
        "permissions": list(permissions),
    }
    return hs256_token(SERVICE_SECRET, claims, now=now, ttl=ttl)
