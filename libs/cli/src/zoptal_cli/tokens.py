"""``zoptal token decode``: a JWT's header and claims, read WITHOUT verifying anything.

Decoding shows what a token claims (who, which permissions, until when); it says nothing about
whether the claims are true. Only Auth (``zoptal whoami``, ValidateToken) or a verifier with the
JWKS can tell. The token itself is never echoed, not even in an error.
"""

from __future__ import annotations

import time
from typing import Any

import jwt

__all__ = ["decode_unverified"]

TIME_CLAIMS = ("exp", "iat", "nbf")


def decode_unverified(token: str) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as error:
        # PyJWT's messages describe the structure, never the token's content.
        raise ValueError(f"not a readable JWT: {error}") from None
    times = {
        f"{name}_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(claims[name]))
        for name in TIME_CLAIMS
        if isinstance(claims.get(name), int | float)
    }
    expired = isinstance(claims.get("exp"), int | float) and claims["exp"] <= time.time()
    return {
        "verified": False,
        "note": "decoded only: signature, issuer and revocation are NOT checked (zoptal whoami)",
        "header": header,
        "claims": claims,
        **times,
        "expired": expired,
    }
