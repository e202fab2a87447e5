"""JSON Web Tokens: pinned-algorithm verification and the signing keys that go with it.

Verification never trusts a token's header beyond a pinned list of algorithms, and it picks the
key by the *family* of the algorithm: an HMAC algorithm only ever gets the configured HMAC secret
and an asymmetric algorithm only ever gets a public key of the matching type. That closes the two
classic holes: ``alg: none`` and an HS256 token "signed" with the server's public key.

Time-based claims (``exp``, ``nbf``, ``iat``) are checked here, against an injected
``meshcore.clock.Clock``, so tests move time by hand instead of sleeping.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt import PyJWK, PyJWS, exceptions as jwt_errors
from jwt.algorithms import get_default_algorithms

from meshcore.clock import SYSTEM_CLOCK, Clock

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "HMAC_ALGORITHMS",
    "REASONS",
    "InvalidToken",
    "KeySource",
    "SigningKey",
    "StaticKeys",
    "TokenVerifier",
    "VerifiedToken",
    "jwk_thumbprint",
]

REASONS = frozenset(
    {
        "malformed",
        "algorithm_not_allowed",
        "unknown_key",
        "bad_signature",
        "expired",
        "not_yet_valid",
        "wrong_issuer",
        "wrong_audience",
        "wrong_token_type",
        "revoked",
    }
)
HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC_ALGORITHMS = frozenset({"ES256", "ES384", "ES512", "EdDSA", "RS256", "PS256"})
# Which JWK key type may verify which algorithm; a mismatch means "no key for this token".
_KTY_FOR_ALGORITHM = {
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", "Ed25519"),
    "RS256": ("RSA", None),
    "PS256": ("RSA", None),
}
# RFC 7638 section 3.2: the required members of each key type, hashed in lexicographic order.
_THUMBPRINT_MEMBERS = {
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
    "RSA": ("e", "kty", "n"),
}
# Three base64url segments (the signature may be empty, e.g. alg "none", refused later).
_COMPACT_JWS = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
# A bound on what we are willing to parse at all; real tokens are well under 2 KiB.
MAX_TOKEN_LENGTH = 16 * 1024
# The last second of year 9999 (the end of google.protobuf.Timestamp's range): time claims past it,
# or before 1970, are refused as malformed.
MAX_TIME_CLAIM = 253_402_300_799
# The shape each registered claim the mesh reads must have when present. Anything else (null, a
# number where a text belongs, an object, an overlong text or list) is malformed, so nothing
# downstream (revocation lookups, id columns, arithmetic) meets a value it cannot hold.
_TEXT_CLAIMS = {
    "sub": 64,  # user and service ids: the id columns of every service hold 64 characters
    "serviceId": 64,
    "serviceName": 64,
    "jti": 128,
    "sid": 128,
    "typ": 32,
    "email": 254,  # the longest address RFC 5321 allows
}
_LIST_CLAIMS = ("roles", "permissions")
MAX_LIST_CLAIM_ITEMS = 256
MAX_LIST_ITEM_LENGTH = 128


class InvalidToken(Exception):
    """A token that must not be trusted; ``reason`` is one of ``REASONS``.

    ``detail`` is for logs and ``reason_detail`` fields: it never contains the token itself.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown invalid-token reason {reason!r}")
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail or reason.replace("_", " ")


@dataclass(frozen=True)
class VerifiedToken:
    """What a verified token says about its bearer."""

    subject: str
    token_type: Literal["user", "service"]
    permissions: frozenset[str]
    roles: frozenset[str]
    claims: Mapping[str, Any]
    expires_at: float
    key_id: str | None


class KeySource(Protocol):
    async def key_for(self, kid: str | None, algorithm: str) -> Any:
        """The key that verifies ``algorithm`` tokens with this ``kid``.

        Raises ``InvalidToken("unknown_key")`` when there is none.
        """
        ...


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public JWK, base64url without padding."""
    required = {
        "EC": ("crv", "kty", "x", "y"),
        "OKP": ("crv", "kty", "x"),
        "RSA": ("e", "kty", "n"),
    }
    members = required.get(str(jwk.get("kty")))
    if members is None:
        raise ValueError(f"cannot thumbprint a JWK of type {jwk.get('kty')!r}")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(canonical.encode()).digest())


class StaticKeys:
    """A fixed set of public JWKs and/or one HMAC secret.

    HMAC algorithms get the secret and nothing else; asymmetric algorithms get a public key whose
    type and curve match the algorithm, looked up by ``kid`` (a token without ``kid`` is accepted
    only when exactly one key fits).
    """

    def __init__(
        self,
        jwks: Iterable[Mapping[str, Any]] = (),
        *,
        hmac_secret: str | bytes | None = None,
    ) -> None:
        self._keys: list[tuple[str | None, Mapping[str, Any], Any]] = []
        for jwk in jwks:
            if jwk.get("kty") == "oct":
                raise ValueError("symmetric JWKs are never published; pass hmac_secret instead")
            key = PyJWK(dict(jwk)).key
            public = key.public_key() if hasattr(key, "public_key") else key
            self._keys.append((jwk.get("kid"), jwk, public))
        if isinstance(hmac_secret, str):
            hmac_secret = hmac_secret.encode()
        self._hmac_secret = hmac_secret or None

    @property
    def key_ids(self) -> list[str | None]:
        return [kid for kid, _, _ in self._keys]

    async def key_for(self, kid: str | None, algorithm: str) -> Any:
        if algorithm in HMAC_ALGORITHMS:
            if self._hmac_secret is None:
                raise InvalidToken("unknown_key", "no HMAC secret is configured")
            return self._hmac_secret
        kty, crv = _KTY_FOR_ALGORITHM.get(algorithm, (None, None))
        fitting = [
            (key_id, public)
            for key_id, jwk, public in self._keys
            if jwk.get("kty") == kty
            and (crv is None or jwk.get("crv") == crv)
            and jwk.get("alg", algorithm) == algorithm
        ]
        if kid is None:
            if len(fitting) == 1:
                return fitting[0][1]
            raise InvalidToken("unknown_key", "the token names no key id")
        for key_id, public in fitting:
            if key_id == kid:
                return public
        raise InvalidToken("unknown_key", f"no {algorithm} key with id {kid!r}")


class TokenVerifier:
    """Verifies compact JWS tokens against pinned algorithms, issuer, audience and time."""

    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str | None,
        audience: str | None,
        algorithms: Sequence[str],
        leeway: float = 30.0,
        clock: Clock = SYSTEM_CLOCK,
        require_expiry: bool = True,
    ) -> None:
        unknown = set(algorithms) - HMAC_ALGORITHMS - ASYMMETRIC_ALGORITHMS
        if unknown or not algorithms:
            # "none" and typos end up here: refusing at construction beats accepting at runtime.
            raise ValueError(f"unsupported or empty algorithm list: {sorted(unknown)}")
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._algorithms = frozenset(algorithms)
        self._leeway = leeway
        self._clock = clock
        self._require_expiry = require_expiry
        # PyJWT's algorithm objects do the cryptography (ECDSA raw-to-DER, HMAC compare_digest);
        # parsing is ours: PyJWS validates base64 one character at a time, ~1 ms per token.
        known = get_default_algorithms()
        self._verifiers = {name: known[name] for name in self._algorithms}
        self._prepared: dict[tuple[str, int], tuple[Any, Any]] = {}

    async def verify(self, token: str, *, expected_type: str | None = None) -> VerifiedToken:
        if not token or len(token) > MAX_TOKEN_LENGTH or not _COMPACT_JWS.match(token):
            raise InvalidToken("malformed", "not a compact JWS")
        header_segment, payload_segment, signature_segment = token.split(".")
        header = _json_object(header_segment, "header")
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self._algorithms:
            raise InvalidToken("algorithm_not_allowed", f"algorithm {algorithm!r} is not accepted")
        if "crit" in header:
            # RFC 7515 4.1.11: extensions we do not understand must make the token invalid.
            raise InvalidToken("malformed", "critical header extensions are not supported")
        if not signature_segment:
            raise InvalidToken("malformed", "missing signature")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("malformed", "kid is not a string")
        key = self._prepared_key(await self._keys.key_for(kid, algorithm), algorithm)
        signing_input = f"{header_segment}.{payload_segment}".encode("ascii")
        if not self._verifiers[algorithm].verify(
            signing_input, key, _b64decode(signature_segment, "signature")
        ):
            raise InvalidToken("bad_signature", "signature does not verify")
        claims = _json_object(payload_segment, "payload")
        _check_shapes(claims)
        self._check_time(claims)
        self._check_issuer_and_audience(claims)
        return _build_verified(claims, kid, expected_type)

    def _prepared_key(self, key: Any, algorithm: str) -> Any:
        """The key as the algorithm wants it, checked once per key object, not once per call.

        Preparing refuses mismatches (an asymmetric key offered as an HMAC secret, a curve that
        does not fit) and is slow for HMAC secrets, hence the small cache.
        """
        cached = self._prepared.get((algorithm, id(key)))
        if cached is not None and cached[0] is key:
            return cached[1]
        try:
            prepared = self._verifiers[algorithm].prepare_key(key)
        except (jwt_errors.InvalidKeyError, TypeError, ValueError) as error:
            raise InvalidToken("unknown_key", "key does not fit the algorithm") from error
        if len(self._prepared) >= 64:
            self._prepared.clear()
        self._prepared[(algorithm, id(key))] = (key, prepared)
        return prepared

    def _check_time(self, claims: Mapping[str, Any]) -> None:
        now = self._clock.time()
        exp = _numeric_claim(claims, "exp")
        if exp is None and self._require_expiry:
            raise InvalidToken("malformed", "missing exp")
        if exp is not None and now >= exp + self._leeway:
            raise InvalidToken("expired", "token has expired")
        for name in ("nbf", "iat"):
            moment = _numeric_claim(claims, name)
            if moment is not None and now + self._leeway < moment:
                raise InvalidToken("not_yet_valid", f"{name} is in the future")

    def _check_issuer_and_audience(self, claims: Mapping[str, Any]) -> None:
        if self._issuer is not None and claims.get("iss") != self._issuer:
            raise InvalidToken("wrong_issuer", "issuer is not accepted")
        if self._audience is not None:
            audience = claims.get("aud")
            audiences = [audience] if isinstance(audience, str) else audience
            if not isinstance(audiences, list) or self._audience not in audiences:
                raise InvalidToken("wrong_audience", "audience is not accepted")


def _b64decode(segment: str, part: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as error:
        raise InvalidToken("malformed", f"{part} is not base64url") from error


def _json_object(segment: str, part: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64decode(segment, part))
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidToken("malformed", f"{part} is not JSON") from error
    except RecursionError as error:  # arrays nested deeper than the parser recurses
        raise InvalidToken("malformed", f"{part} is nested too deeply") from error
    if not isinstance(value, dict):
        raise InvalidToken("malformed", f"{part} is not a JSON object")
    return value


def _numeric_claim(claims: Mapping[str, Any], name: str) -> float | None:
    if name not in claims:
        return None
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidToken("malformed", f"{name} is not a number")  # null included
    # An int as large as 10**400 does not fit a float, NaN and 1e999 are no time at all, and a
    # time past year 9999 fits no timestamp anyone can represent (google.protobuf.Timestamp
    # included): all are malformed, not a server error. No token was issued before 1970.
    if not 0 <= value <= MAX_TIME_CLAIM:
        raise InvalidToken("malformed", f"{name} is out of range")
    return float(value)


def _check_shapes(claims: Mapping[str, Any]) -> None:
    for name, longest in _TEXT_CLAIMS.items():
        if name in claims:
            value = claims[name]
            if not isinstance(value, str) or not 0 < len(value) <= longest:
                raise InvalidToken(
                    "malformed", f"{name} is not a text of 1 to {longest} characters"
                )
    for name in _LIST_CLAIMS:
        if name in claims:
            _check_string_list(claims[name], name)
    if isinstance(claims.get("aud"), list):
        _check_string_list(claims["aud"], "aud")


def _check_string_list(value: Any, name: str) -> None:
    if (
        not isinstance(value, list)
        or len(value) > MAX_LIST_CLAIM_ITEMS
        or not all(isinstance(item, str) and len(item) <= MAX_LIST_ITEM_LENGTH for item in value)
    ):
        raise InvalidToken(
            "malformed",
            f"{name} is not a list of at most {MAX_LIST_CLAIM_ITEMS} strings of at most "
            f"{MAX_LIST_ITEM_LENGTH} characters",
        )


def _build_verified(
    claims: Mapping[str, Any], kid: str | None, expected_type: str | None
) -> VerifiedToken:
    # Seed-style service tokens carry serviceId but no typ; refresh or other JWTs are refused.
    typ = claims.get("typ")
    kind: Literal["user", "service"]
    if typ == "service" or (typ is None and "serviceId" in claims):
        kind = "service"
        subject = claims.get("sub") or claims.get("serviceId")
    elif typ in (None, "access"):
        kind = "user"
        subject = claims.get("sub")
    else:
        raise InvalidToken("wrong_token_type", f"token type {typ!r} is not an access token")
    if expected_type is not None and expected_type != kind:
        raise InvalidToken("wrong_token_type", f"expected a {expected_type} token")
    if not isinstance(subject, str) or not subject:
        raise InvalidToken("malformed", "missing subject")
    exp = _numeric_claim(claims, "exp")
    return VerifiedToken(
        subject=subject,
        token_type=kind,
        permissions=frozenset(claims.get("permissions", ())),  # its shape is checked
        # Roles are a user's: a service holds only the permissions granted to it, so a "roles"
        # claim in a service token must never pass a role check ("admin" included).
        roles=frozenset(claims.get("roles", ())) if kind == "user" else frozenset(),
        claims=claims,
        expires_at=math.inf if exp is None else exp,
        key_id=kid,
    )


class SigningKey:
    """A private signing key (ES256 on P-256, or EdDSA on Ed25519) whose id is its thumbprint."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> None:
        if isinstance(private_key, ec.EllipticCurvePrivateKey):
            if not isinstance(private_key.curve, ec.SECP256R1):
                raise ValueError("only P-256 EC keys are supported (ES256)")
            self.algorithm = "ES256"
        elif isinstance(private_key, ed25519.Ed25519PrivateKey):
            self.algorithm = "EdDSA"
        else:
            raise ValueError("signing keys are ES256 (P-256) or EdDSA (Ed25519)")
        self._private_key = private_key
        self._public_jwk = _public_jwk(private_key, self.algorithm)
        self.kid = jwk_thumbprint(self._public_jwk)
        self._public_jwk["kid"] = self.kid
        self._jws = PyJWS()

    @classmethod
    def generate(cls, algorithm: Literal["ES256", "EdDSA"] = "ES256") -> SigningKey:
        if algorithm == "EdDSA":
            return cls(ed25519.Ed25519PrivateKey.generate())
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
            raise ValueError("signing keys are ES256 (P-256) or EdDSA (Ed25519)")
        return cls(key)

    def private_pem(self) -> bytes:
        return self._private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def public_jwk(self) -> dict[str, str]:
        """The public half as a JWK with ``kid``, ``alg`` and ``use``; safe to publish."""
        return dict(self._public_jwk)

    def sign(self, claims: Mapping[str, Any]) -> str:
        payload = json.dumps(claims, separators=(",", ":")).encode()
        return self._jws.encode(
            payload, self._private_key, algorithm=self.algorithm, headers={"kid": self.kid}
        )


def _public_jwk(
    private_key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey, algorithm: str
) -> dict[str, str]:
    public = private_key.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        numbers = public.public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64url(numbers.x.to_bytes(32, "big")),
            "y": _b64url(numbers.y.to_bytes(32, "big")),
            "alg": algorithm,
            "use": "sig",
        }
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw), "alg": algorithm, "use": "sig"}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
