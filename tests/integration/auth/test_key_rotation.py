"""Signing-key rotation with no refusal window, end to end over real HTTP and gRPC.

The operator's command (``python -m zoptal_auth generate-key``, run as a process) adds a key that
Auth publishes at once and signs with only later; a verifier that fetched the keys before the
rotation (meshcore's RemoteJwks over HTTP, what every service's AuthInterceptor uses) accepts
every token issued across the rotation, and forged kids cost a bounded number of fetches.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from meshcore.jwks import RemoteJwks, fetch_jwks_over_http
from meshcore.jwt import InvalidToken, SigningKey, TokenVerifier
from meshcore.testing import FakeClock
from zoptal.auth.v1 import auth_pb2
from zoptal_auth.keys import generate_key_file, signs_from

from tests.integration.auth.conftest import running_auth
from tests.mesh import PASSWORD, auth_settings
from tests.support import free_port


def _generate_key(folder: Path, publish_seconds: float) -> Path:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "zoptal_auth", "generate-key", str(folder)),
            *("--publish-seconds", str(publish_seconds)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return Path(done.stdout.strip())


def _kid_of(path: Path) -> str:
    return SigningKey.from_pem(path.read_bytes()).kid


def _with_kid(token: str, kid: str) -> str:
    """The token with another kid in its header (its signature no longer matters)."""
    header, payload, signature = token.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    forged = base64.urlsafe_b64encode(json.dumps({**decoded, "kid": kid}).encode()).rstrip(b"=")
    return f"{forged.decode()}.{payload}.{signature}"


class _FirstFetchWithout:
    """Real HTTP fetches, the first of them as it was before ``kid`` was published."""

    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.fetches = 0

    def __call__(self, url: str, timeout: float) -> Sequence[Mapping[str, Any]]:
        self.fetches += 1
        keys = fetch_jwks_over_http(url, timeout)
        return [k for k in keys if k.get("kid") != self.kid] if self.fetches == 1 else keys


async def _login(auth: Any, email: str) -> str:
    reply = await auth.stub.Login(auth_pb2.LoginRequest(email=email, password=PASSWORD))
    return str(reply.access_token)


async def test_rotation_never_refuses_a_new_login(
    tmp_path: Path, sqlite_or_postgres_url: str
) -> None:
    keys = tmp_path / "keys"
    old = generate_key_file(keys)
    # One JWKS port across the restart, as a Service gives: the verifier keeps its URL.
    settings = replace(
        auth_settings(tmp_path, sqlite_or_postgres_url, jwt_signing_key_dir=keys),
        auth_http_port=free_port(),
    )
    # The verifier's cache clock is fake, so "the refresh interval passed" needs no sleeping;
    # the fetches themselves are real HTTP requests to Auth.
    clock = FakeClock()
    async with running_auth(settings) as auth:
        jwks = RemoteJwks(auth.jwks_url, clock=clock, refresh_interval=300.0)
        verifier = TokenVerifier(
            jwks, issuer=settings.jwt_issuer, audience=settings.jwt_audience, algorithms=["ES256"]
        )
        await auth.register_and_login("rotating@example.com")
        token = await _login(auth, "rotating@example.com")
        assert (await verifier.verify(token, expected_type="user")).key_id
        assert jwks.fetch_count == 1

    # The rotation: a new key published now, signing in 2 s; Auth restarts to load it.
    new = _generate_key(keys, publish_seconds=2)
    async with running_auth(settings) as auth:
        # Right after the restart, new logins still carry the old key, which every verifier has.
        token = await _login(auth, "rotating@example.com")
        assert (await verifier.verify(token)).key_id == _kid_of(old)
        published = await asyncio.to_thread(fetch_jwks_over_http, auth.jwks_url, 5.0)
        assert [key["kid"] for key in published] == [_kid_of(old), _kid_of(new)]
        assert jwks.fetch_count == 1, "no fetch was needed"

        # Verifiers refresh within their interval, which the publish delay outlasts in production
        # (1800 s against 300 s); here the fake clock moves past it and the key's time comes.
        clock.advance(301)
        await asyncio.sleep(max(0.0, signs_from(new) - time.time()) + 0.1)
        token = await _login(auth, "rotating@example.com")
        verified = await verifier.verify(token, expected_type="user")
        assert verified.key_id == _kid_of(new)
        assert jwks.fetch_count == 2, "one scheduled refresh, no refusal"

        # The fallback: a verifier still holding the pre-rotation keys (its first fetch, from
        # before the publish, lacks the new key) refetches once on the unknown kid, over HTTP.
        before_publish = _FirstFetchWithout(_kid_of(new))
        stale = RemoteJwks(auth.jwks_url, clock=clock, fetcher=before_publish)
        stale_verifier = TokenVerifier(
            stale, issuer=settings.jwt_issuer, audience=settings.jwt_audience, algorithms=["ES256"]
        )
        await stale.key_for(_kid_of(old), "ES256")
        clock.advance(5)
        assert (await stale_verifier.verify(token)).key_id == _kid_of(new)
        assert before_publish.fetches == 2

        # Forged kids: a burst costs at most one fetch per 5 s, never one per call.
        before = jwks.fetch_count
        for index in range(20):
            forged = _with_kid(token, f"forged-{index}")
            try:
                await verifier.verify(forged)
            except InvalidToken:
                pass
            else:
                raise AssertionError("a forged kid verified")
        assert jwks.fetch_count - before <= 1
