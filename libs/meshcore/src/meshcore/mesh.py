"""ServiceMesh: the seed's ``createServiceMesh({services, discovery, security, observability})``.

One object that builds the client manager from a seed-shaped config and reports every
service's health::

    mesh = create_service_mesh({
        "services": {"auth-service": {"host": "auth", "port": 4000, "maxRetries": 3,
                                      "timeout": 30000}},
        "discovery": {"enabled": True, "type": "static"},
        "security": {"tls": True, "mtls": True, "ca_file": "ca.pem",
                     "cert_file": "client.pem", "key_file": "client-key.pem"},
        "observability": {"metrics": True, "tracing": True, "logging": True},
    })
    print(await mesh.health_check())

``mode`` (or ``MESH_MODE``) picks who owns traffic policy. Under ``istio`` the sidecar balances,
retries and originates mTLS, so meshcore sends plaintext to the sidecar at the service address,
never retries and runs no health-check loop; deadlines, metadata and breakers stay.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import grpc

from meshcore.client_manager import (
    GrpcClientManager,
    MeshMode,
    ServiceSpec,
    default_client_interceptors,
)
from meshcore.clock import SYSTEM_CLOCK, Clock
from meshcore.discovery.health import GrpcHealthProbe
from meshcore.discovery.registry import ServiceDiscovery
from meshcore.tls import ReloadingChannelCredentials, TlsFiles

__all__ = ["ServiceMesh", "create_service_mesh", "credentials_from_security"]

logger = logging.getLogger(__name__)

_SECTIONS = {"services", "discovery", "security", "observability", "mode", "strategy"}
_SECTION_KEYS = {
    "discovery": {
        "enabled", "type", "strategy", "health_check_interval", "healthCheckInterval",
        "unhealthy_threshold", "unhealthyThreshold", "healthy_threshold", "healthyThreshold",
        "timeout",
    },
    # jwt_secret is the seed's; verifying user tokens is the servers' job (meshcore's auth
    # interceptor), so the client side accepts it and does not use it.
    "security": {
        "tls", "mtls", "ca_file", "caFile", "cert_file", "certFile", "key_file", "keyFile",
        "service_token", "serviceToken", "jwt_secret", "jwtSecret",
    },
    # logging: meshcore always logs breaker and health transitions (logger names meshcore.*).
    "observability": {"metrics", "tracing", "logging"},
}  # fmt: skip


def _option(section: Mapping[str, Any], snake: str, default: Any = None) -> Any:
    """Read ``snake`` or its seed camelCase spelling (``health_check_interval`` or
    ``healthCheckInterval``)."""
    head, *rest = snake.split("_")
    camel = head + "".join(part.title() for part in rest)
    return section.get(snake, section.get(camel, default))


def credentials_from_security(
    security: Mapping[str, Any],
) -> ReloadingChannelCredentials | None:
    """Channel credentials for ``security``: None without TLS; server-authenticated TLS with
    ``tls``; mutual TLS (client certificate) with ``mtls``, which needs cert and key files.

    The files are followed as ``TLS_*_FILE`` are (``meshcore.tls``): re-issued certificates
    are used by new channels without a restart. No ``ca_file``: the system's trust store."""
    if not (security.get("tls") or security.get("mtls")):
        return None
    ca_file = _option(security, "ca_file")
    cert_file = key_file = None
    if security.get("mtls"):
        cert_file = _option(security, "cert_file")
        key_file = _option(security, "key_file")
        missing = [
            name for name, value in (("cert_file", cert_file), ("key_file", key_file)) if not value
        ]
        if missing:
            raise ValueError(f"security.mtls needs {' and '.join(missing)}")
    return ReloadingChannelCredentials(
        TlsFiles(
            cert_file=Path(cert_file) if cert_file else None,
            key_file=Path(key_file) if key_file else None,
            ca_file=Path(ca_file) if ca_file else None,
        )
    )


class ServiceMesh:
    """A configured client manager plus mesh-wide reporting (``health_check``)."""

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        interceptors: Sequence[grpc.aio.ClientInterceptor] | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        **manager_options: Any,
    ) -> None:
        unknown = set(config) - _SECTIONS
        if unknown:
            raise ValueError(f"unknown mesh config sections: {sorted(unknown)}")
        for section, known in _SECTION_KEYS.items():
            typos = set(config.get(section) or {}) - known
            if typos:
                raise ValueError(f"unknown {section} options: {sorted(typos)}")
        env = os.environ if environ is None else environ
        mode = config.get("mode") or env.get("MESH_MODE") or "standalone"
        if mode not in ("standalone", "istio"):
            raise ValueError(f"MESH_MODE must be standalone or istio, not {mode!r}")
        self.mode: MeshMode = cast(MeshMode, mode)
        self.config = config
        discovery_config: Mapping[str, Any] = config.get("discovery") or {}
        security: Mapping[str, Any] = config.get("security") or {}
        self.observability: Mapping[str, Any] = config.get("observability") or {}

        credentials = None
        if mode == "istio":
            if security.get("tls") or security.get("mtls"):
                logger.info("MESH_MODE=istio: the sidecar originates mTLS; calls go plaintext")
        else:
            credentials = credentials_from_security(security)

        discovery_type = discovery_config.get("type", "static")
        if discovery_type not in ("static", "kubernetes"):
            raise ValueError(f"discovery.type must be static or kubernetes: {discovery_type!r}")
        given: ServiceDiscovery | None = manager_options.pop("discovery", None)
        if discovery_type == "kubernetes" and mode == "standalone" and given is None:
            # Under Istio the service address is enough (the sidecar resolves replicas).
            raise ValueError(
                "discovery.type=kubernetes: pass discovery=<a Kubernetes-fed ServiceDiscovery> "
                "(meshcore.discovery.kubernetes keeps it current through sync_service)"
            )
        discovery = given or ServiceDiscovery(
            health_check_interval=_option(discovery_config, "health_check_interval", 30_000),
            unhealthy_threshold=_option(discovery_config, "unhealthy_threshold", 3),
            healthy_threshold=_option(discovery_config, "healthy_threshold", 2),
            timeout=_option(discovery_config, "timeout", 5_000),
        )
        if interceptors is None:
            interceptors = default_client_interceptors(
                service_token=_option(security, "service_token"),
                metrics=bool(self.observability.get("metrics", True)),
                tracing=bool(self.observability.get("tracing", False)),
            )
        services: Mapping[str, ServiceSpec] = config.get("services") or {}
        self.manager = GrpcClientManager(
            services,
            mode=self.mode,
            discovery=discovery,
            interceptors=interceptors,
            credentials=credentials,
            strategy=config.get("strategy") or discovery_config.get("strategy") or "p2c-ewma",
            health_checks=bool(discovery_config.get("enabled", True)),
            clock=clock,
            **manager_options,
        )
        self.discovery = discovery

    async def health_check(self) -> dict[str, dict[str, Any]]:
        """Every service's state now: each replica is probed once over ``grpc.health.v1``.

        ``status`` is ``healthy`` (all replicas serving), ``degraded`` (some) or
        ``unhealthy`` (none). Probing here does not move the health-check thresholds: those
        count only the periodic checks, so asking for a report never ejects anything.
        """
        probe = GrpcHealthProbe(self.manager.channel_for)
        states = self.manager.endpoint_states()
        instances = {
            (service, instance.id): instance
            for service in states
            for instance in self.discovery.get_instances(service)
        }
        keys = list(instances)
        answers = await asyncio.gather(
            *(probe(instances[key], self.discovery.timeout_seconds) for key in keys)
        )
        serving = dict(zip(keys, answers, strict=True))
        report: dict[str, dict[str, Any]] = {}
        for service, endpoints in states.items():
            for endpoint in endpoints:
                endpoint["serving"] = serving[(service, endpoint["id"])]
            up = sum(1 for endpoint in endpoints if endpoint["serving"])
            status = "healthy" if up == len(endpoints) else "degraded" if up else "unhealthy"
            report[service] = {"status": status, "mode": self.mode, "endpoints": endpoints}
        return report

    async def close(self) -> None:
        await self.manager.close()

    async def __aenter__(self) -> ServiceMesh:
        await self.manager.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def create_service_mesh(config: Mapping[str, Any], **options: Any) -> ServiceMesh:
    """The seed's ``createServiceMesh(config)``; ``options`` go to ``ServiceMesh``."""
    return ServiceMesh(config, **options)
