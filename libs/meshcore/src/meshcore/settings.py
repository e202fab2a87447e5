"""Typed, frozen settings read from the environment: one object per service.

Every service subclasses ``ServiceSettings``, names itself and overrides the defaults it owns::

    @dataclass(frozen=True, kw_only=True)
    class AuthSettings(ServiceSettings):
        service_name: ClassVar[str] = "auth"
        peer_defaults: ClassVar[Mapping[str, str]] = {"billing": "127.0.0.1:4003"}
        grpc_port: int = 4000
        metrics_port: int = 9400
        jwks_http_port: int = env_field(8080, env="JWKS_HTTP_PORT")

    settings = AuthSettings.from_env()

A field reads the variable named by ``env_field(env=...)``, else its own name in capitals
(``grpc_port`` reads ``GRPC_PORT``). An empty variable counts as unset. The annotation decides the
parsing (``str``, ``int``, ``float``, ``bool``, ``Path``, ``Secret``, ``Literal[...]``,
``tuple[str, ...]``, and ``X | None``); a bad value raises ``SettingsError`` naming the variable.

Secrets are ``Secret`` objects whose ``repr``/``str`` are masked: call ``reveal()`` at the one
place that needs the value. URL fields that may carry a password (``url_field()``:
``DATABASE_URL``, ``REDIS_URL``, ...) are left out of ``repr`` and redacted in ``safe_summary``.

Secrets from files (the Docker and Kubernetes convention): every ``Secret`` field and every
``url_field()`` also reads ``<VAR>_FILE``, the path of a file holding the value (for a URL, the
whole URL: the password is part of it). One trailing newline is stripped; anything else is part
of the value. Setting both ``<VAR>`` and ``<VAR>_FILE`` is an error, as is an empty or unreadable
file. In production the file must not be accessible by others (``mode & 0o007``; group access is
fine, Kubernetes secret volumes with ``fsGroup`` are 0440): ``meshcore.private_files``.
``DATABASE_PASSWORD_FILE`` is the one narrower form: a ``DATABASE_URL`` written without a password
gets it from that file (what compose and Kubernetes generate once, for every service's database).

Production (``ZOPTAL_ENV=production``) refuses to start when:

* ``SERVICE_CREDENTIALS_FILE`` (the service's own identity towards the token issuer; development
  defaults it to ``<DATA_DIR>/identities/<service>/credentials.json``) is accessible by others
  (a serving process that calls peers refuses to start without one: ``zoptal.clients``);
* any ``Secret`` (``JWT_SECRET``, ...; unset is fine where the setting is optional) or the
  password inside a ``url_field()`` URL fails ``meshcore.secret_policy``: shorter than 32
  characters, a published sample, mostly sample words or low-entropy;
* ``DATABASE_URL`` is SQLite (a file inside one pod loses data and cannot be shared by replicas).

Transport security (``TLS_CERT_FILE``, ``TLS_KEY_FILE``, ``TLS_CA_FILE``: all three or none,
each an existing file; ``MTLS_PORT`` needs them; ``TLS_TRUST_DOMAIN``): in standalone mode,
peer calls use mutual TLS with the service's certificate, and ``MTLS_PORT`` (0 = off) serves
a second port that requires one (``meshcore.tls``; certificates from ``meshcore.pki``).

A missing ``REDIS_URL`` is allowed in production: rate limits then hold per replica, which is a
weaker but still safe default, and the services that truly need Redis check it themselves.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Self, Union
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from meshcore.message_size import (
    DEFAULT_MAX_RECEIVE_MESSAGE_BYTES,
    MAX_RECEIVE_MESSAGE_BYTES_CEILING,
)
from meshcore.private_files import others_access_problem, read_secret_file
from meshcore.secret_policy import MIN_SECRET_LENGTH, secret_problem

__all__ = [
    "MIN_SECRET_LENGTH",
    "PeerAddresses",
    "Secret",
    "ServiceSettings",
    "SettingsError",
    "env_field",
    "parse_addresses",
    "redact_url",
    "url_field",
]


_URL_WITH_LOGIN = "url_with_login"
"""Field metadata key set by ``url_field``."""
_FILE_SUFFIX = "_FILE"

Environment = Literal["development", "production"]
MeshMode = Literal["standalone", "istio"]
DiscoverySource = Literal["static", "kubernetes"]
FailMode = Literal["open", "closed"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class SettingsError(ValueError):
    """The environment does not describe a service that may start; the message names variables."""


class Secret:
    """A secret value that never shows itself in ``repr``, ``str`` or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The real value: call this only where the secret is used (signing, verifying)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __len__(self) -> int:
        return len(self._value)


def env_field(default: Any = dataclasses.MISSING, *, env: str | None = None, **kwargs: Any) -> Any:
    """A settings field that reads ``env`` (default: the field name in capitals)."""
    metadata = dict(kwargs.pop("metadata", None) or {})
    if env is not None:
        metadata["env"] = env
    if default is not dataclasses.MISSING:
        kwargs["default"] = default
    return field(metadata=metadata, **kwargs)


def url_field(default: str | None, *, env: str | None = None) -> Any:
    """A URL setting that may carry a password: kept out of ``repr``, redacted in
    ``safe_summary``, readable from ``<VAR>_FILE``, and its password checked in production."""
    return env_field(default, env=env, repr=False, metadata={_URL_WITH_LOGIN: True})


def parse_addresses(value: str) -> tuple[str, ...]:
    """``host:port[,host:port...]`` into a tuple of ``host:port`` strings (validated)."""
    addresses = tuple(part.strip() for part in value.split(",") if part.strip())
    if not addresses:
        raise ValueError("expected host:port[,host:port...]")
    for address in addresses:
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected host:port, got {address!r}")
    return addresses


def redact_url(url: str | None) -> str | None:
    """The URL with any password replaced by ``***`` (for logs)."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = (parts.username or "") + ":***"
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc[-1]}"))


class PeerAddresses(Mapping[str, tuple[str, ...]]):
    """Peer name -> replica addresses: read-only and hashable, like the settings holding it."""

    __slots__ = ("_entries",)

    def __init__(self, entries: Mapping[str, tuple[str, ...]] = types.MappingProxyType({})) -> None:
        self._entries = dict(entries)

    def __getitem__(self, name: str) -> tuple[str, ...]:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __hash__(self) -> int:
        return hash(frozenset(self._entries.items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(other.items()) == self._entries

    def __repr__(self) -> str:
        return f"PeerAddresses({self._entries!r})"


@dataclass(frozen=True, kw_only=True)
class ServiceSettings:
    """What every meshcore server reads from the environment (see ``docs/conventions.md``).

    Transport security outside Istio: ``tls_cert_file``, ``tls_key_file``, ``tls_ca_file``
    (``TLS_*_FILE``, all three or none) make standalone peer calls mutual TLS; ``mtls_port``
    (``MTLS_PORT``, 0 = off) adds a server port that requires a client certificate;
    ``tls_trust_domain`` (``TLS_TRUST_DOMAIN``) is the SPIFFE trust domain of service names.
    """

    service_name: ClassVar[str] = "service"
    """Short name (``auth``): names the SQLite file, metrics labels and log records."""

    peer_defaults: ClassVar[Mapping[str, str]] = {}
    """Peers this service calls: short name -> default ``host:port``; ``<NAME>_ADDR`` overrides."""

    largest_request_bytes: ClassVar[int] = 0
    """The largest request the service's protos allow, encoded (``meshcore.message_size``):
    ``GRPC_MAX_RECEIVE_MESSAGE_BYTES`` may not be set below it."""

    env: Environment = field(default="development", metadata={"env": "ZOPTAL_ENV"})
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    metrics_port: int = 0
    """Prometheus ``/metrics`` port; ``0`` disables the endpoint."""
    grpc_max_receive_message_bytes: int = DEFAULT_MAX_RECEIVE_MESSAGE_BYTES
    """The largest request message the server reads; larger ones are RESOURCE_EXHAUSTED from
    gRPC. At least ``largest_request_bytes``, at most 64 MiB (memory stays bounded)."""
    data_dir: Path = Path("data")
    database_url: str = url_field("")
    """Empty means ``sqlite+aiosqlite:///<data_dir>/<service_name>.db``."""
    database_password_file: Path | None = None
    """The password of a ``DATABASE_URL`` written without one (one generated password, many
    database URLs); refused together with a password in the URL."""
    redis_url: str | None = url_field(None)
    log_level: LogLevel = "INFO"
    jwt_issuer: str = "zoptal-auth"
    jwt_audience: str = "zoptal"
    jwt_secret: Secret | None = None
    service_credentials_file: Path | None = None
    """This service's own credential for the token issuer (a service never signs its own
    ``x-service-token``); development defaults it to
    ``<data_dir>/identities/<service_name>/credentials.json``."""
    auth_jwks_url: str = "http://127.0.0.1:8080/.well-known/jwks.json"
    mesh_mode: MeshMode = "standalone"
    service_discovery: DiscoverySource = "static"
    """Where the peers' replicas come from: ``static``, the ``<NAME>_ADDR`` addresses; or
    ``kubernetes``, the ready pods of the Service each ``<NAME>_ADDR`` names, from its
    EndpointSlices (``meshcore.discovery.peers``), so that calls balance per call, not per
    connection. Standalone only: under Istio the sidecar balances over the same pods."""
    service_discovery_namespace: str = ""
    """Namespace of the peers' Services under ``kubernetes`` discovery; empty: the namespace
    ``<NAME>_ADDR`` names (``auth.zoptal:4000``), else the pod's own."""
    tls_cert_file: Path | None = None
    """This service's certificate (PEM; URI SAN ``spiffe://<trust domain>/service/<name>``).
    With ``tls_key_file`` and ``tls_ca_file`` (all three or none): peer calls in standalone mode
    use mutual TLS with it, and ``mtls_port`` serves it. Re-read when the file is replaced."""
    tls_key_file: Path | None = None
    """The certificate's private key (PEM)."""
    tls_ca_file: Path | None = None
    """The CA that signs every service's certificate: peers' servers and clients are verified
    against it."""
    mtls_port: int = 0
    """Second gRPC port requiring a client certificate signed by ``tls_ca_file``; ``0`` (the
    default) turns it off. ``grpc_port`` stays plaintext (user tokens, health probes)."""
    tls_trust_domain: str = "zoptal.local"
    """SPIFFE trust domain: only a client certificate's URI SAN in it names a calling service."""
    peers: Mapping[str, tuple[str, ...]] = field(default_factory=dict, metadata={"from_env": False})
    """Peer short name -> replica addresses, from ``peer_defaults`` and ``<NAME>_ADDR``."""
    health_check_interval_seconds: float = 5.0
    """How often dependency checks (database ping, ...) run while serving."""
    shutdown_drain_seconds: float = 0.0
    """After flipping health to NOT_SERVING, wait this long before refusing new calls, so load
    balancers and kubelet probes notice first (Kubernetes: a few seconds; embedded: 0)."""
    shutdown_grace_seconds: float = 10.0
    """How long in-flight calls get to finish on shutdown before they are cancelled."""
    rate_limit_window_ms: int = 60_000
    rate_limit_max_requests: int = 1_000
    """Calls per window for each user (or, unauthenticated, each client address)."""
    rate_limit_service_max_requests: int = 60_000
    """Calls per window for each calling platform service, which calls on behalf of all its own
    users: one user's budget would let one busy peer throttle everyone
    (``meshcore.interceptors.rate_limit``)."""
    rate_limit_fail_mode: FailMode = "open"
    """What the Redis-backed limiter does while Redis is down: let calls through or refuse them."""
    trusted_proxy_hops: int = 0
    """Proxies in front of the service that append the client's address to ``x-forwarded-for``
    (Istio's ingress gateway: 1). ``0`` ignores the header: the client is the peer address
    (``meshcore.interceptors.client_address``)."""
    revocation_sync_seconds: float = 1.0
    """How often the revocation list is polled from Auth (``meshcore.revocation``)."""
    revocation_max_staleness_seconds: float = 60.0
    """Without a successful poll for this long, the revocation list is stale (see the fail mode)."""
    revocation_fail_mode: FailMode = "closed"
    """While the revocation list is stale or not yet synced: refuse authenticated calls with
    UNAVAILABLE (``closed``) or trust the last view (``open``)."""

    def __post_init__(self) -> None:
        if not self.database_url:
            default = f"sqlite+aiosqlite:///{self.data_dir / (self.service_name + '.db')}"
            object.__setattr__(self, "database_url", default)
        if self.database_password_file is not None:
            object.__setattr__(self, "database_url", self._url_with_password_file())
        if self.service_credentials_file is None and self.peer_defaults and not self.is_production:
            default_credentials = (
                self.data_dir / "identities" / self.service_name / "credentials.json"
            )
            object.__setattr__(self, "service_credentials_file", default_credentials)
        merged = {name: parse_addresses(addr) for name, addr in self.peer_defaults.items()}
        merged.update(self.peers)
        object.__setattr__(self, "peers", PeerAddresses(merged))
        self._validate()

    def _url_with_password_file(self) -> str:
        path = self.database_password_file
        assert path is not None
        variable = _env_name_of(type(self), "database_password_file")
        parts = urlsplit(self.database_url)
        if parts.password is not None:
            raise SettingsError(f"{variable}: DATABASE_URL already carries a password")
        if parts.username is None or parts.hostname is None:
            raise SettingsError(f"{variable}: DATABASE_URL must name a user and a host")
        try:
            password = read_secret_file(path)
        except (OSError, ValueError) as error:
            raise SettingsError(f"{variable}: cannot read {path} ({error})") from None
        if self.is_production:
            too_open = others_access_problem(path)
            if too_open is not None:
                raise SettingsError(f"{variable}: {too_open}")
        login, _, host = parts.netloc.rpartition("@")
        netloc = f"{login}:{quote(password, safe='')}@{host}"
        return urlunsplit(parts._replace(netloc=netloc))

    # -- validation -----------------------------------------------------------------------

    def _validate(self) -> None:
        errors: list[str] = []
        for item in dataclasses.fields(self):
            port = getattr(self, item.name)
            if not item.name.endswith("_port") or not isinstance(port, int):
                continue
            if not 0 <= port <= 65535:
                name = item.name
                errors.append(f"{_env_name_of(type(self), name)}: expected 0..65535, got {port}")
        for name in (
            "health_check_interval_seconds",
            "shutdown_grace_seconds",
            "rate_limit_window_ms",
            "rate_limit_max_requests",
            "rate_limit_service_max_requests",
            "revocation_sync_seconds",
            "revocation_max_staleness_seconds",
        ):
            if getattr(self, name) <= 0:
                errors.append(f"{_env_name_of(type(self), name)}: must be positive")
        for name in ("shutdown_drain_seconds", "trusted_proxy_hops"):
            if getattr(self, name) < 0:
                errors.append(f"{_env_name_of(type(self), name)}: must be >= 0")
        errors.extend(self._message_size_problems())
        if not self.database_url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            errors.append(
                "DATABASE_URL: expected a sqlite+aiosqlite:// or postgresql+asyncpg:// URL"
            )
        errors.extend(self._tls_problems())
        if self.service_discovery == "kubernetes" and self.mesh_mode == "istio":
            errors.append(
                f"{_env_name_of(type(self), 'service_discovery')}: kubernetes is for "
                f"{_env_name_of(type(self), 'mesh_mode')}=standalone; under istio the sidecar "
                "balances over the same pods (use static)"
            )
        if self.is_production:
            errors.extend(self._production_problems())
        if errors:
            raise SettingsError(f"invalid {self.service_name} settings: " + "; ".join(errors))

    def _message_size_problems(self) -> list[str]:
        limit = self.grpc_max_receive_message_bytes
        floor = max(self.largest_request_bytes, 1)
        if floor <= limit <= MAX_RECEIVE_MESSAGE_BYTES_CEILING:
            return []
        variable = _env_name_of(type(self), "grpc_max_receive_message_bytes")
        return [
            f"{variable}: expected {floor}..{MAX_RECEIVE_MESSAGE_BYTES_CEILING} (at least the"
            f" largest request the {self.service_name} API allows), got {limit}"
        ]

    def _tls_problems(self) -> list[str]:
        names = ("tls_cert_file", "tls_key_file", "tls_ca_file")
        given = [name for name in names if getattr(self, name) is not None]
        variables = [_env_name_of(type(self), name) for name in names]
        if not given:
            if self.mtls_port:
                mtls = _env_name_of(type(self), "mtls_port")
                return [f"{mtls}: needs {', '.join(variables)}"]
            return []
        if len(given) < len(names):
            unset = [_env_name_of(type(self), name) for name in names if name not in given]
            return [f"{', '.join(variables)}: set all three or none ({', '.join(unset)} unset)"]
        problems = [
            f"{_env_name_of(type(self), name)}: no file at {getattr(self, name)}"
            for name in names
            if not getattr(self, name).is_file()
        ]
        if self.mtls_port and self.mtls_port == self.grpc_port:
            problems.append(
                f"{_env_name_of(type(self), 'mtls_port')}: must differ from "
                f"{_env_name_of(type(self), 'grpc_port')} (that port stays plaintext)"
            )
        return problems

    def _production_problems(self) -> list[str]:
        problems: list[str] = []
        credentials = self.service_credentials_file
        if credentials is not None and credentials.exists():
            # Whether one is needed is the serving process's to say (``zoptal.clients`` refuses to
            # build peer clients without it): migrations and workers share these settings and
            # call no peer. A file that is there must be private.
            too_open = others_access_problem(credentials)
            if too_open is not None:
                problems.append(f"SERVICE_CREDENTIALS_FILE: {too_open}")
        problems.extend(self._secret_policy_problems())
        if self.database_url.startswith("sqlite"):
            problems.append("DATABASE_URL: SQLite is refused in production; use PostgreSQL")
        return problems

    def _secret_policy_problems(self) -> list[str]:
        """Every ``Secret`` and URL password that ``meshcore.secret_policy`` refuses."""
        problems: list[str] = []
        hints = typing.get_type_hints(type(self))
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if value is None:
                continue
            if _is_secret_type(hints[item.name]):
                reason = secret_problem(value.reveal())
            elif item.metadata.get(_URL_WITH_LOGIN):
                password = urlsplit(value).password
                reason = None if password is None else secret_problem(unquote(password))
                if reason is not None:
                    reason = f"its password is {reason}"
            else:
                continue
            if reason is not None:
                problems.append(f"{_env_name(item)}: refused in production, {reason}")
        return problems

    # -- conveniences ---------------------------------------------------------------------

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def grpc_address(self) -> str:
        """``host:port`` to bind; IPv6 hosts (``::``) are bracketed as gRPC expects."""
        host = self.grpc_host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{host}:{self.grpc_port}"

    def peer(self, name: str) -> tuple[str, ...]:
        """Replica addresses of the peer ``name``; ``KeyError`` names the missing variable."""
        try:
            return self.peers[name]
        except KeyError:
            raise KeyError(f"no address for peer {name!r}: set {_peer_env_name(name)}") from None

    def safe_summary(self) -> dict[str, object]:
        """Every setting with secrets masked and URL passwords redacted: safe to log."""
        summary: dict[str, object] = {"service": self.service_name}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if item.metadata.get(_URL_WITH_LOGIN):
                value = redact_url(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            summary[item.name] = value if not isinstance(value, Path) else str(value)
        return summary

    # -- reading the environment ------------------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Read every field from ``environ`` (default ``os.environ``); raise ``SettingsError``."""
        import os

        source = os.environ if environ is None else environ
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        errors: list[str] = []
        secret_files: dict[str, Path] = {}
        for item, env_name in _read_fields(cls):
            raw = source.get(env_name, "").strip()
            file_name = source.get(env_name + _FILE_SUFFIX, "").strip()
            if file_name and _reads_file_variant(item, hints[item.name]):
                if raw:
                    errors.append(f"{env_name} and {env_name}{_FILE_SUFFIX}: set one, not both")
                    continue
                secret_files[env_name + _FILE_SUFFIX] = path = Path(file_name)
                try:
                    raw = read_secret_file(path)
                except (OSError, ValueError) as exc:
                    errors.append(f"{env_name}{_FILE_SUFFIX}: cannot use {path}: {exc}")
                    continue
            if raw == "":
                continue
            try:
                values[item.name] = _parse(hints[item.name], raw)
            except ValueError as exc:
                shown = "***" if _is_secret_type(hints[item.name]) else repr(raw)
                errors.append(f"{env_name}: {exc} (got {shown})")
        if values.get("env", cls.env) == "production":
            errors.extend(_secret_file_problems(secret_files))
        peers: dict[str, tuple[str, ...]] = {}
        for name in cls.peer_defaults:
            env_name = _peer_env_name(name)
            raw = source.get(env_name, "").strip()
            if raw:
                try:
                    peers[name] = parse_addresses(raw)
                except ValueError as exc:
                    errors.append(f"{env_name}: {exc}")
        if errors:
            raise SettingsError(f"invalid {cls.service_name} settings: " + "; ".join(errors))
        return cls(peers=peers, **values)

    @classmethod
    def environment_variables(cls) -> tuple[str, ...]:
        """Every variable ``from_env`` reads, fields first (each secret one followed by its
        ``<VAR>_FILE``), then the peers' ``<NAME>_ADDR`` (for a configuration reference, or a
        check that one is complete)."""
        hints = typing.get_type_hints(cls)
        fields: list[str] = []
        for item, env_name in _read_fields(cls):
            fields.append(env_name)
            if _reads_file_variant(item, hints[item.name]):
                fields.append(env_name + _FILE_SUFFIX)
        return (*fields, *(_peer_env_name(name) for name in cls.peer_defaults))


def _reads_file_variant(item: dataclasses.Field[Any], annotation: Any) -> bool:
    """Whether the field also reads ``<VAR>_FILE``: secrets and URLs that may hold a password."""
    return _is_secret_type(annotation) or bool(item.metadata.get(_URL_WITH_LOGIN))


def _secret_file_problems(files: Mapping[str, Path]) -> list[str]:
    """Production problems of the ``<VAR>_FILE`` files read (the mode; reading already worked)."""
    problems: list[str] = []
    for variable, path in files.items():
        try:
            problem = others_access_problem(path)
        except OSError as exc:
            problem = f"cannot check {path}: {exc}"
        if problem is not None:
            problems.append(f"{variable}: {problem}")
    return problems


def _read_fields(cls: type) -> Iterator[tuple[dataclasses.Field[Any], str]]:
    """The fields ``from_env`` reads, with the variable each one reads."""
    for item in dataclasses.fields(cls):
        if item.init and item.metadata.get("from_env", True) is not False:
            yield item, _env_name(item)


def _peer_env_name(peer: str) -> str:
    return f"{peer.upper()}_ADDR"


def _env_name(item: dataclasses.Field[Any]) -> str:
    return str(item.metadata.get("env", item.name.upper()))


def _env_name_of(cls: type, name: str) -> str:
    for item in dataclasses.fields(cls):
        if item.name == name:
            return _env_name(item)
    return name.upper()


def _is_secret_type(annotation: Any) -> bool:
    return annotation is Secret or Secret in typing.get_args(annotation)


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _parse(annotation: Any, raw: str) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        inner = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"unsupported settings type {annotation!r}")
        return _parse(inner[0], raw)
    if origin is Literal:
        choices = typing.get_args(annotation)
        for choice in choices:  # case-insensitive: "debug" means DEBUG, "eddsa" means EdDSA
            if str(choice).lower() == raw.lower():
                return choice
        raise ValueError("expected one of " + ", ".join(map(str, choices)))
    if origin is tuple:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if annotation is bool:
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise ValueError("expected true or false")
    if annotation is int:
        try:
            return int(raw)
        except ValueError:
            raise ValueError("expected an integer") from None
    if annotation is float:
        try:
            return float(raw)
        except ValueError:
            raise ValueError("expected a number") from None
    if annotation is Path:
        return Path(raw)
    if annotation is Secret:
        return Secret(raw)
    if annotation is str:
        return raw
    raise TypeError(f"unsupported settings type {annotation!r}")
