"""meshcore's server and client interceptors.

Server order, outermost first (``build_server_chain``): call context, tracing, logging,
metrics, auth, peer binding (with mTLS only), rate limit, error mapping. Every interceptor
handles all four RPC shapes through the one override point of ``ServerInterceptor``;
``ClientInterceptor`` does the same for clients.
"""

from meshcore.interceptors.auth import AuthInterceptor
from meshcore.interceptors.base import RpcMethod, RpcType, ServerInterceptor, wrap_handler
from meshcore.interceptors.call_context import CallContextInterceptor
from meshcore.interceptors.chain import InterceptorChain, build_server_chain
from meshcore.interceptors.client import (
    ClientInterceptor,
    ContextPropagationInterceptor,
    channel_interceptors,
)
from meshcore.interceptors.client_address import client_address
from meshcore.interceptors.client_stack import build_client_interceptors
from meshcore.interceptors.errors import ErrorMappingInterceptor, abort_with, status_trailers
from meshcore.interceptors.hooks import AdmissionInterceptor, CallRecord, ObservingInterceptor
from meshcore.interceptors.logging import LoggingInterceptor
from meshcore.interceptors.metrics import REGISTRY, MetricsInterceptor
from meshcore.interceptors.options import (
    FROM_SETTINGS,
    AuthOptions,
    LoggingOptions,
    RateLimitOptions,
)
from meshcore.interceptors.peer_binding import PeerBindingInterceptor
from meshcore.interceptors.rate_limit import RateLimitInterceptor, key_by_caller
from meshcore.interceptors.tracing import TracingInterceptor

__all__ = [
    "FROM_SETTINGS",
    "REGISTRY",
    "AdmissionInterceptor",
    "AuthInterceptor",
    "AuthOptions",
    "CallContextInterceptor",
    "CallRecord",
    "ClientInterceptor",
    "ContextPropagationInterceptor",
    "ErrorMappingInterceptor",
    "InterceptorChain",
    "LoggingInterceptor",
    "LoggingOptions",
    "MetricsInterceptor",
    "ObservingInterceptor",
    "PeerBindingInterceptor",
    "RateLimitInterceptor",
    "RateLimitOptions",
    "RpcMethod",
    "RpcType",
    "ServerInterceptor",
    "TracingInterceptor",
    "abort_with",
    "build_client_interceptors",
    "build_server_chain",
    "channel_interceptors",
    "client_address",
    "key_by_caller",
    "status_trailers",
    "wrap_handler",
]
