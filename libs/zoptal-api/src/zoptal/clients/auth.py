"""AuthServiceClient: the seed's ``authClient.validateToken(token)`` and the rest of Auth."""

from __future__ import annotations

from collections.abc import Iterable

from meshcore.client_manager import Metadata

from zoptal.auth.v1 import auth_pb2
from zoptal.clients.base import TypedClient

__all__ = ["AuthServiceClient"]


class AuthServiceClient(TypedClient):
    """Typed calls to ``zoptal.auth.v1.AuthService``; ``timeout_ms`` overrides the default."""

    file_descriptor = auth_pb2.DESCRIPTOR
    service = "auth"
    grpc_service = "AuthService"

    async def validate_token(
        self, token: str, *, timeout_ms: float | None = None, metadata: Metadata | None = None
    ) -> auth_pb2.ValidateTokenResponse:
        """Check a user or service token; an invalid token is ``valid=False``, not an error.

        The call needs a caller: inside a service the manager sends its service token (which
        must hold ``user:validate`` to check others' tokens); a user checks their own token
        with ``metadata=(("authorization", f"Bearer {token}"),)``."""
        request = auth_pb2.ValidateTokenRequest(token=token)
        return await self._call(
            "ValidateToken", request, auth_pb2.ValidateTokenResponse, timeout_ms, metadata
        )

    async def get_user(
        self, user_id: str, *, timeout_ms: float | None = None, metadata: Metadata | None = None
    ) -> auth_pb2.GetUserResponse:
        request = auth_pb2.GetUserRequest(user_id=user_id)
        return await self._call("GetUser", request, auth_pb2.GetUserResponse, timeout_ms, metadata)

    async def get_user_permissions(
        self, user_id: str, *, timeout_ms: float | None = None, metadata: Metadata | None = None
    ) -> auth_pb2.GetUserPermissionsResponse:
        request = auth_pb2.GetUserPermissionsRequest(user_id=user_id)
        return await self._call(
            "GetUserPermissions", request, auth_pb2.GetUserPermissionsResponse, timeout_ms, metadata
        )

    async def create_service_account(
        self,
        name: str,
        permissions: Iterable[str] = (),
        description: str = "",
        *,
        timeout_ms: float | None = None,
        metadata: Metadata | None = None,
    ) -> auth_pb2.CreateServiceAccountResponse:
        request = auth_pb2.CreateServiceAccountRequest(
            name=name, description=description, permissions=list(permissions)
        )
        return await self._call(
            "CreateServiceAccount",
            request,
            auth_pb2.CreateServiceAccountResponse,
            timeout_ms,
            metadata,
        )

    async def health_check(
        self, *, timeout_ms: float | None = None, metadata: Metadata | None = None
    ) -> auth_pb2.HealthCheckResponse:
        """Auth's dependency report (the seed's ``HealthCheck`` RPC, not grpc.health.v1)."""
        request = auth_pb2.HealthCheckRequest()
        return await self._call(
            "HealthCheck", request, auth_pb2.HealthCheckResponse, timeout_ms, metadata
        )

    async def register_user(
        self,
        email: str,
        password: str,
        display_name: str = "",
        *,
        timeout_ms: float | None = None,
        metadata: Metadata | None = None,
    ) -> auth_pb2.RegisterUserResponse:
        request = auth_pb2.RegisterUserRequest(
            email=email, password=password, display_name=display_name
        )
        return await self._call(
            "RegisterUser", request, auth_pb2.RegisterUserResponse, timeout_ms, metadata
        )

    async def login(
        self,
        email: str,
        password: str,
        *,
        timeout_ms: float | None = None,
        metadata: Metadata | None = None,
    ) -> auth_pb2.LoginResponse:
        request = auth_pb2.LoginRequest(email=email, password=password)
        return await self._call("Login", request, auth_pb2.LoginResponse, timeout_ms, metadata)

    async def refresh_token(
        self,
        refresh_token: str,
        *,
        timeout_ms: float | None = None,
        metadata: Metadata | None = None,
    ) -> auth_pb2.RefreshTokenResponse:
        request = auth_pb2.RefreshTokenRequest(refresh_token=refresh_token)
        return await self._call(
            "RefreshToken", request, auth_pb2.RefreshTokenResponse, timeout_ms, metadata
        )

    async def revoke_token(
        self, token: str, *, timeout_ms: float | None = None, metadata: Metadata | None = None
    ) -> auth_pb2.RevokeTokenResponse:
        request = auth_pb2.RevokeTokenRequest(token=token)
        return await self._call(
            "RevokeToken", request, auth_pb2.RevokeTokenResponse, timeout_ms, metadata
        )

    async def issue_service_token(
        self,
        client_id: str,
        client_secret: str,
        permissions: Iterable[str] = (),
        *,
        timeout_ms: float | None = None,
        metadata: Metadata | None = None,
    ) -> auth_pb2.IssueServiceTokenResponse:
        """Client-credentials grant: a service token for ``x-service-token``."""
        request = auth_pb2.IssueServiceTokenRequest(
            client_id=client_id, client_secret=client_secret, permissions=list(permissions)
        )
        return await self._call(
            "IssueServiceToken", request, auth_pb2.IssueServiceTokenResponse, timeout_ms, metadata
        )

    async def get_jwks(
        self, *, timeout_ms: float | None = None, metadata: Metadata | None = None
    ) -> auth_pb2.GetJwksResponse:
        request = auth_pb2.GetJwksRequest()
        return await self._call("GetJwks", request, auth_pb2.GetJwksResponse, timeout_ms, metadata)

    async def list_revocations(
        self,
        cursor: str = "",
        *,
        timeout_ms: float | None = None,
        metadata: Metadata | None = None,
    ) -> auth_pb2.ListRevocationsResponse:
        """Revocations since ``cursor`` (empty: all live ones); needs ``revocation:read``."""
        request = auth_pb2.ListRevocationsRequest(cursor=cursor)
        return await self._call(
            "ListRevocations", request, auth_pb2.ListRevocationsResponse, timeout_ms, metadata
        )
