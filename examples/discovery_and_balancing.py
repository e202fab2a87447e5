"""The seed's "Service Discovery" and "Load Balancing" sections, in Python.

    uv run python examples/discovery_and_balancing.py

Static registration with weights, the seed's strategies plus p2c-ewma, and what a failing
health check does. Needs no running service: the health probe here is simulated.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from meshcore.discovery import HealthChecker, ServiceDiscovery, ServiceInstance


async def main() -> int:
    discovery = ServiceDiscovery(
        health_check_interval=30000,  # ms, as in the seed
        unhealthy_threshold=3,  # 3 failed checks = unhealthy
        healthy_threshold=2,  # 2 successful checks = healthy
        timeout=5000,
    )

    # Register services manually, with weights
    discovery.register_service(
        {
            "id": "auth-service-1",
            "name": "auth-service",
            "host": "auth-1.zoptal.svc.cluster.local",
            "port": 4000,
            "weight": 3,  # Higher weight = more traffic
            "healthy": True,
            "metadata": {"version": "1.0.0"},
        }
    )
    discovery.register_service(
        {
            "id": "auth-service-2",
            "name": "auth-service",
            "host": "auth-2.zoptal.svc.cluster.local",
            "port": 4000,
            "weight": 1,  # Lower weight = less traffic
            "healthy": True,
        }
    )

    for strategy in ("round-robin", "least-connections", "weighted", "random", "p2c-ewma"):
        picks = [discovery.get_endpoint("auth-service", strategy).id for _ in range(8)]
        print(f"{strategy:>17}: {' '.join(p[-1] for p in picks)}  {dict(Counter(picks))}")

    # A replica that fails its health checks is ejected after 3 consecutive failures.
    async def probe(instance: ServiceInstance, timeout_seconds: float) -> bool:
        return instance.id != "auth-service-2"

    checker = HealthChecker(discovery, probe)
    for _ in range(3):
        await checker.check_all()
    healthy = [i.id for i in discovery.healthy_instances("auth-service")]
    print("healthy after 3 failed checks of auth-service-2:", healthy)
    return 0 if healthy == ["auth-service-1"] else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
