"""One EndpointSlice's ready endpoints as ``ServiceInstance`` replicas (ADR 0010, decision 2)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from meshcore.discovery.health import HEALTH_SERVICE_METADATA_KEY
from meshcore.discovery.instance import ServiceInstance

__all__ = ["instances_from_slice"]

logger = logging.getLogger(__name__)


def instances_from_slice(
    service: str,
    endpoint_slice: Mapping[str, Any],
    *,
    port_name: str = "grpc",
    health_service: str = "",
) -> list[ServiceInstance]:
    """The ready endpoints of one EndpointSlice as replicas of ``service``.

    The port is the slice's port named ``port_name`` (or its only port when that one is
    unnamed, as a single-port Service may be). Endpoints that are not ready, or are
    terminating, are left out: the EndpointSlice controller has already taken them out of
    rotation for kube-proxy, and calls should follow. Ids are pod names.
    """
    metadata = endpoint_slice.get("metadata") or {}
    slice_name = str(metadata.get("name", ""))
    ports: list[Mapping[str, Any]] = list(endpoint_slice.get("ports") or ())
    port = next((p.get("port") for p in ports if p.get("name") == port_name), None)
    if port is None and len(ports) == 1 and not ports[0].get("name"):
        port = ports[0].get("port")
    if port is None:
        if endpoint_slice.get("endpoints"):
            logger.warning(
                "EndpointSlice %s has no port named %r; its endpoints are ignored",
                slice_name,
                port_name,
            )
        return []
    found = []
    for endpoint in endpoint_slice.get("endpoints") or ():
        conditions = endpoint.get("conditions") or {}
        # The API says an unset ``ready`` means unknown, to be read as ready.
        if conditions.get("ready") is False or conditions.get("terminating") is True:
            continue
        addresses = endpoint.get("addresses") or ()
        if not addresses:
            continue
        target = endpoint.get("targetRef") or {}
        info = {"namespace": str(metadata.get("namespace", "")), "endpoint_slice": slice_name}
        for key, value in (
            ("pod", target.get("name") if target.get("kind") == "Pod" else None),
            ("node", endpoint.get("nodeName")),
            ("zone", endpoint.get("zone")),
            ("hostname", endpoint.get("hostname")),
        ):
            if value:
                info[key] = str(value)
        if health_service:
            info[HEALTH_SERVICE_METADATA_KEY] = health_service
        host = str(addresses[0])  # the API guarantees every address of an endpoint is fungible
        try:
            instance = ServiceInstance(
                id=info.get("pod") or f"{host}:{port}",
                name=service,
                host=host,
                port=int(port),
                metadata=info,
            )
        except (TypeError, ValueError) as error:
            # Skip the one bad endpoint: raising would replay the same event forever.
            logger.warning("EndpointSlice %s: ignoring endpoint %s: %s", slice_name, host, error)
            continue
        found.append(instance)
    return found
