"""A ``grpc.reflection.v1`` client that knows nothing of ``v1alpha``, for the reflection tests.

Its message classes come from a descriptor of package ``grpc.reflection.v1`` in a pool of its
own (the published v1 proto: the v1alpha file with the package renamed), so the test speaks v1
the way grpcurl or Postman do, rather than reusing the server's v1alpha classes.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_reflection.v1alpha import reflection_pb2 as v1alpha

__all__ = ["V1_METHOD", "V1Request", "V1Response"]

V1_METHOD = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"


def _v1_classes() -> tuple[Any, Any]:
    proto = descriptor_pb2.FileDescriptorProto()
    v1alpha.DESCRIPTOR.CopyToProto(proto)
    proto.name = "grpc/reflection/v1/reflection.proto"
    proto.package = "grpc.reflection.v1"
    for message in proto.message_type:
        for field in message.field:
            if field.HasField("type_name"):
                field.type_name = field.type_name.replace(".v1alpha.", ".v1.")
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(".v1alpha.", ".v1.")
            method.output_type = method.output_type.replace(".v1alpha.", ".v1.")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return (
        message_factory.GetMessageClass(
            pool.FindMessageTypeByName("grpc.reflection.v1.ServerReflectionRequest")
        ),
        message_factory.GetMessageClass(
            pool.FindMessageTypeByName("grpc.reflection.v1.ServerReflectionResponse")
        ),
    )


V1Request, V1Response = _v1_classes()
