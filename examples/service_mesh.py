"""The seed's "Service Mesh Integration", in Python.

    uv run python examples/service_mesh.py
    MESH_MODE=istio uv run python examples/service_mesh.py   # the sidecar owns retries

``create_service_mesh`` takes the seed's config (services, discovery, security, observability);
``mesh.health_check()`` asks every replica of every service over grpc.health.v1.
"""

from __future__ import annotations

import asyncio
import json
import os

from _support import address
from meshcore.mesh import create_service_mesh

SERVICES = ("auth", "project", "billing", "notification", "analytics")


async def main() -> int:
    # Create service mesh with configuration
    mesh = create_service_mesh(
        {
            "services": {
                f"{name}-service": {
                    "endpoints": address(name).split(","),
                    "maxRetries": 3,
                    "timeout": 30000,
                    "health_service": f"zoptal.{name}.v1.{name.title()}Service",
                }
                for name in SERVICES
            },
            "discovery": {"enabled": True, "type": "static"},
            "security": {
                # Under Istio the sidecar originates mTLS; standalone, set tls/mtls with
                # ca_file, cert_file and key_file to use TLS from this process.
                "tls": False,
                "mtls": False,
                "jwtSecret": os.environ.get("JWT_SECRET"),
            },
            "observability": {"metrics": True, "tracing": False, "logging": True},
        }
    )
    async with mesh:
        # Health check all services
        health = await mesh.health_check()
        print("Service health:", json.dumps(health, indent=2))
        return 0 if all(state["status"] == "healthy" for state in health.values()) else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
