"""Server reflection, both ``grpc.reflection.v1`` and ``v1alpha``, with lookup of methods.

grpcio-reflection serves only ``v1alpha`` (grpc/grpc#38576), while current grpcurl, Postman and
grpcui ask for ``v1`` first. The two protocols are the same messages under another package name
(``v1`` is ``v1alpha`` promoted unchanged), so their wire bytes are identical: ``v1`` is served by
the very same servicer, registered a second time under the ``v1`` method name. No copy of the
reflection proto is needed.

The servicer also answers ``file_containing_symbol`` for a method's full name
(``zoptal.auth.v1.AuthService.Login``): the upb descriptor pool finds services, messages, enums
and fields but not methods, and clients ask by method name to describe one call.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any, cast

import grpc
from google.protobuf import descriptor_pool
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha._async import ReflectionServicer

__all__ = ["REFLECTION_SERVICE_NAMES", "V1ALPHA_SERVICE_NAME", "V1_SERVICE_NAME", "add_reflection"]

V1_SERVICE_NAME = "grpc.reflection.v1.ServerReflection"
V1ALPHA_SERVICE_NAME = "grpc.reflection.v1alpha.ServerReflection"
REFLECTION_SERVICE_NAMES = (V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME)


Request = reflection_pb2.ServerReflectionRequest
Response = reflection_pb2.ServerReflectionResponse


class _Reflection(reflection_pb2_grpc.ServerReflectionServicer):
    """grpcio-reflection's servicer, plus ``Service.Method`` symbols.

    A method's name is asked as its service's name (the file is the same); the reply still
    quotes the request as the client sent it.
    """

    def __init__(self, service_names: Iterable[str]) -> None:
        self._served = ReflectionServicer(tuple(service_names))
        self._descriptors = descriptor_pool.Default()

    async def ServerReflectionInfo(
        self, request_iterator: AsyncIterable[Request], unused_context: Any
    ) -> AsyncIterator[Response]:
        async for request in request_iterator:
            asked = self._as_served_symbol(request)
            # An async generator; the type stubs wrongly declare it a coroutine.
            replies = cast(
                AsyncIterable[Response],
                self._served.ServerReflectionInfo(_one(asked), unused_context),
            )
            async for reply in replies:
                reply.original_request.CopyFrom(request)
                yield reply

    def _as_served_symbol(self, request: Request) -> Request:
        if not request.HasField("file_containing_symbol"):
            return request
        service_name, _, method = request.file_containing_symbol.rpartition(".")
        try:
            service = self._descriptors.FindServiceByName(service_name)
        except KeyError:
            return request
        if method not in service.methods_by_name:
            return request
        return Request(host=request.host, file_containing_symbol=service_name)


async def _one(request: Request) -> AsyncIterator[Request]:
    yield request


def add_reflection(server: grpc.aio.Server, service_names: Iterable[str]) -> None:
    """Serve reflection over ``service_names`` (the reflection services are listed too)."""
    servicer = _Reflection([*service_names, *REFLECTION_SERVICE_NAMES])
    # The stubs leave this generated function untyped; its signature is (servicer, server).
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(  # type: ignore[no-untyped-call]
        servicer, server
    )
    v1 = grpc.method_handlers_generic_handler(
        V1_SERVICE_NAME,
        {
            "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                servicer.ServerReflectionInfo,
                request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((v1,))
