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

from collections.abc import Iterable
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha._async import ReflectionServicer

__all__ = ["REFLECTION_SERVICE_NAMES", "V1ALPHA_SERVICE_NAME", "V1_SERVICE_NAME", "add_reflection"]

V1_SERVICE_NAME = "grpc.reflection.v1.ServerReflection"
V1ALPHA_SERVICE_NAME = "grpc.reflection.v1alpha.ServerReflection"
REFLECTION_SERVICE_NAMES = (V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME)


class _Reflection(ReflectionServicer):  # type: ignore[misc]  # grpcio-reflection is untyped
    """grpcio-reflection's servicer, plus ``Service.Method`` symbols."""

    def __init__(self, service_names: Iterable[str]) -> None:
        super().__init__(tuple(service_names))
        self._descriptors = descriptor_pool.Default()

    def _file_containing_symbol(self, request: Any, fully_qualified_name: str) -> Any:
        service_name, _, method = fully_qualified_name.rpartition(".")
        try:
            service = self._descriptors.FindServiceByName(service_name)
        except KeyError:
            return super()._file_containing_symbol(request, fully_qualified_name)
        if method not in service.methods_by_name:
            return super()._file_containing_symbol(request, fully_qualified_name)
        return super()._file_containing_symbol(request, service_name)


def add_reflection(server: grpc.aio.Server, service_names: Iterable[str]) -> None:
    """Serve reflection over ``service_names`` (the reflection services are listed too)."""
    servicer = _Reflection([*service_names, *REFLECTION_SERVICE_NAMES])
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
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
