"""Typed meshcore clients for the five Zoptal services (the seed's ``AuthServiceClient`` ...).

Each takes a ``GrpcClientManager`` (or a ``ServiceMesh``) and applies discovery, balancing,
per-endpoint breakers, the retry policy the proto declares safe, deadlines and metadata to
every call::

    manager = create_grpc_client_manager({"authService": {"host": "localhost", "port": 4000}})
    auth = AuthServiceClient(manager)
    result = await auth.validate_token(token)

A failed call raises the typed error for its status code (``zoptal.clients.errors``:
``NotFoundError``, ``ResourceExhaustedError``, ...), with the server's reason, field violations
and retry delay read from its ``google.rpc`` details.
"""

from zoptal.clients.analytics import AnalyticsServiceClient
from zoptal.clients.auth import AuthServiceClient
from zoptal.clients.base import TypedClient, is_retry_safe
from zoptal.clients.billing import BillingServiceClient
from zoptal.clients.notification import NotificationServiceClient
from zoptal.clients.project import ProjectServiceClient

__all__ = [
    "AnalyticsServiceClient",
    "AuthServiceClient",
    "BillingServiceClient",
    "NotificationServiceClient",
    "ProjectServiceClient",
    "TypedClient",
    "is_retry_safe",
]
