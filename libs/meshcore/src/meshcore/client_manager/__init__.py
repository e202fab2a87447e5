"""The client manager: channels, breakers, discovery and call policy for outgoing calls."""

from meshcore.client_manager.calls import Metadata, ServiceCaller, StreamUnaryMethod, UnaryMethod
from meshcore.client_manager.channels import DEFAULT_CHANNEL_OPTIONS, ChannelPool
from meshcore.client_manager.config import ServiceConfig, ServiceSpec, parse_service_configs
from meshcore.client_manager.manager import (
    BreakerSettings,
    GrpcClientManager,
    MeshMode,
    create_grpc_client_manager,
    default_client_interceptors,
)

__all__ = [
    "DEFAULT_CHANNEL_OPTIONS",
    "BreakerSettings",
    "ChannelPool",
    "GrpcClientManager",
    "MeshMode",
    "Metadata",
    "ServiceCaller",
    "ServiceConfig",
    "ServiceSpec",
    "StreamUnaryMethod",
    "UnaryMethod",
    "create_grpc_client_manager",
    "default_client_interceptors",
    "parse_service_configs",
]
