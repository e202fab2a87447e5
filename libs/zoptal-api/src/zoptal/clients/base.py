"""What every typed client shares: RPCs bound from the service descriptor, once.

Each RPC's retry safety comes from the proto itself: ``option idempotency_level`` is
``NO_SIDE_EFFECTS`` for reads and ``IDEMPOTENT`` for mutations made safe to repeat (by nature or
by a required idempotency key). Those may be retried on UNAVAILABLE in standalone mode; every
other method is sent once (retried only when refused locally before sending). Reading the option
from the descriptor keeps one source of truth: a proto change changes the retry policy with it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import grpc.aio
from google.protobuf import descriptor_pb2, message_factory
from google.protobuf.descriptor import FileDescriptor, MethodDescriptor
from google.protobuf.message import Message
from meshcore.client_manager import GrpcClientManager, Metadata, StreamUnaryMethod, UnaryMethod

from zoptal.clients.errors import api_error

if TYPE_CHECKING:
    from meshcore.mesh import ServiceMesh

__all__ = ["RETRY_SAFE_LEVELS", "TypedClient", "is_retry_safe"]

R = TypeVar("R", bound=Message)

RETRY_SAFE_LEVELS = frozenset(
    {descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS, descriptor_pb2.MethodOptions.IDEMPOTENT}
)


def is_retry_safe(method: MethodDescriptor) -> bool:
    """Whether the proto declares ``method`` safe to send twice."""
    return method.GetOptions().idempotency_level in RETRY_SAFE_LEVELS


class TypedClient:
    """Base of the typed clients: ``Client(manager)`` or ``Client(mesh)``.

    Subclasses name their generated file descriptor and service; every method of the service
    is bound once, here, to the manager's ``ServiceCaller`` (discovery, balancing, breakers,
    retries and deadlines), and ``rpc(name)`` returns a bound method for full-request calls.
    """

    file_descriptor: ClassVar[FileDescriptor]
    service: ClassVar[str]
    """Short service name as in ``<SVC>_ADDR`` (``auth``, ``project``, ...)."""
    grpc_service: ClassVar[str]
    """Service name inside the proto file (``AuthService``)."""

    def __init__(self, manager: GrpcClientManager | ServiceMesh) -> None:
        if not isinstance(manager, GrpcClientManager):
            manager = manager.manager
        descriptor = self.file_descriptor.services_by_name[self.grpc_service]
        caller = manager.service(self.service, health_service=descriptor.full_name)
        self.manager = manager
        self._unary: dict[str, UnaryMethod] = {}
        self._client_stream: dict[str, StreamUnaryMethod] = {}
        for method in descriptor.methods:
            path = f"/{descriptor.full_name}/{method.name}"
            request = message_factory.GetMessageClass(method.input_type)
            reply = message_factory.GetMessageClass(method.output_type)
            if method.server_streaming:
                continue  # no Zoptal API streams replies; add a bound shape when one does
            if method.client_streaming:
                self._client_stream[method.name] = caller.stream_unary(
                    path, request.SerializeToString, reply.FromString
                )
            else:
                self._unary[method.name] = caller.unary(
                    path,
                    request.SerializeToString,
                    reply.FromString,
                    idempotent=is_retry_safe(method),
                )

    def rpc(self, name: str) -> UnaryMethod:
        """The bound unary RPC ``name`` (``"GetUser"``), for calls with a full request (its
        failures are plain ``grpc.aio.AioRpcError``; ``api_error`` types them)."""
        return self._unary[name]

    async def _call(
        self,
        name: str,
        request: Message,
        reply_type: type[R],
        timeout_ms: float | None,
        metadata: Metadata | None,
    ) -> R:
        """RPC ``name`` with ``request``; a failure raises the typed ``ApiError`` for its code.
        ``reply_type`` only informs the type checker (the bound deserializer builds exactly
        that message)."""
        try:
            reply: R = await self._unary[name](request, timeout_ms=timeout_ms, metadata=metadata)
        except grpc.aio.AioRpcError as failed:
            raise api_error(failed) from None
        return reply

    async def _stream(
        self,
        name: str,
        requests: AsyncIterator[Any],
        reply_type: type[R],
        timeout_ms: float | None,
        metadata: Metadata | None,
    ) -> R:
        try:
            reply: R = await self._client_stream[name](
                requests, timeout_ms=timeout_ms, metadata=metadata
            )
        except grpc.aio.AioRpcError as failed:
            raise api_error(failed) from None
        return reply
