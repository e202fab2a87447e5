"""meshcore's server and client interceptors.

Server order, outermost first (``build_server_chain``): call context, tracing, logging,
metrics, auth, rate limit, error mapping. Every interceptor handles all four RPC shapes through
the one override point of ``ServerInterceptor``.
"""

from meshcore.interceptors.base import RpcMethod, RpcType, ServerInterceptor, wrap_handler
from meshcore.interceptors.errors import ErrorMappingInterceptor, status_trailers

__all__ = [
    "ErrorMappingInterceptor",
    "RpcMethod",
    "RpcType",
    "ServerInterceptor",
    "status_trailers",
    "wrap_handler",
]
