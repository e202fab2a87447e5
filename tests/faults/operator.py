"""An operator's tool on the fault cluster: a service account the admin created, and its token.

The admin is the one Auth bootstraps (``AUTH_BOOTSTRAP_ADMIN_*``, a password made for the run);
it creates a service account holding what the tests read and send as an operator (analytics,
notifications), whose client credentials Auth exchanges for short-lived tokens. Tokens live
300 s, so the suite renews before each test while the cluster is whole (``renew``): during an
outage Auth may be unable to issue one, and a test must not depend on that.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
from zoptal.auth.v1 import auth_pb2, auth_pb2_grpc

__all__ = ["OPERATOR_PERMISSIONS", "Operator"]

OPERATOR_PERMISSIONS = (
    "analytics:read",
    "analytics:write",
    "billing:read",
    "notification:read",
    "notification:send",
    "project:read",
)
CALL_TIMEOUT = 15.0
Metadata = Sequence[tuple[str, str]]


@dataclass
class Operator:
    auth_address: str
    client_id: str
    client_secret: str = field(repr=False)
    _token: str = field(default="", repr=False)
    _expires_at: float = 0.0

    @classmethod
    def created_by_admin(cls, auth_address: str, email: str, password: str) -> Operator:
        """Log in as the admin and create the operator's service account."""
        with grpc.insecure_channel(auth_address) as channel:
            auth = auth_pb2_grpc.AuthServiceStub(channel)
            login = auth.Login(
                auth_pb2.LoginRequest(email=email, password=password), timeout=CALL_TIMEOUT
            )
            created = auth.CreateServiceAccount(
                auth_pb2.CreateServiceAccountRequest(
                    name=f"fault-operator-{uuid.uuid4().hex[:8]}",
                    description="the fault tests' operator tool",
                    permissions=list(OPERATOR_PERMISSIONS),
                ),
                metadata=(("authorization", f"Bearer {login.access_token}"),),
                timeout=CALL_TIMEOUT,
            )
        operator = cls(auth_address, created.service_account.client_id, created.client_secret)
        operator.renew()
        return operator

    def renew(self, min_remaining: float = 0.0) -> None:
        """IssueServiceToken now, unless the current token has ``min_remaining`` seconds left."""
        if self._expires_at - time.time() > min_remaining and self._token:
            return
        with grpc.insecure_channel(self.auth_address) as channel:
            reply = auth_pb2_grpc.AuthServiceStub(channel).IssueServiceToken(
                auth_pb2.IssueServiceTokenRequest(
                    client_id=self.client_id, client_secret=self.client_secret
                ),
                timeout=CALL_TIMEOUT,
            )
        self._token = reply.access_token
        self._expires_at = float(reply.expires_at.seconds)

    @property
    def metadata(self) -> Metadata:
        """The current token as call metadata."""
        assert self._token, "renew() first"
        return (("x-service-token", self._token),)
