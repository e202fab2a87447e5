"""What every example shares: where the services are, and a demo user to act as.

Addresses come from ``<SVC>_ADDR`` (comma-separated replicas), defaulting to the embedded
platform's ports (``make run``), exactly as the services themselves read them.
"""

from __future__ import annotations

import os
import uuid

from zoptal.clients import AuthServiceClient

DEFAULT_ADDRESSES = {
    "auth": "127.0.0.1:4000",
    "project": "127.0.0.1:4001",
    "billing": "127.0.0.1:4003",
    "notification": "127.0.0.1:4004",
    "analytics": "127.0.0.1:4005",
}


def address(service: str) -> str:
    return os.environ.get(f"{service.upper()}_ADDR") or DEFAULT_ADDRESSES[service]


def host_port(service: str) -> dict[str, object]:
    """The seed's ``{host, port}`` shape for the first replica of ``service``."""
    host, _, port = address(service).split(",")[0].rpartition(":")
    return {"host": host, "port": int(port)}


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    """Call metadata that makes a call on behalf of the user who owns ``token``."""
    return (("authorization", f"Bearer {token}"),)


async def demo_user(auth: AuthServiceClient) -> tuple[str, str]:
    """Register a fresh user and log in: (user id, access token)."""
    email = f"demo-{uuid.uuid4().hex[:12]}@example.com"
    password = "correct horse battery staple 42"  # noqa: S105 - a demo account's password
    registered = await auth.register_user(email, password, "Demo User")
    login = await auth.login(email, password)
    return registered.user.id, login.access_token
