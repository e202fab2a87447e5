"""The seed's "Basic gRPC Client Setup", in Python.

    uv run python examples/basic_client.py

A client manager with one channel per endpoint, typed clients for Auth and Project, a token
check and the user's projects: every call goes through discovery, balancing, the per-endpoint
breaker, retries (for the RPCs the protos mark idempotent) and a deadline.
"""

from __future__ import annotations

import asyncio

import grpc
from _support import bearer, demo_user, host_port
from meshcore.client_manager import create_grpc_client_manager
from zoptal.clients import AuthServiceClient, ProjectServiceClient


async def main() -> int:
    # Initialize client manager (the seed's camelCase keys work as well as auth / auth-service).
    grpc_manager = create_grpc_client_manager(
        {
            "authService": host_port("auth"),
            "projectService": host_port("project"),
            "billingService": host_port("billing"),
        }
    )
    async with grpc_manager:
        # Create service clients
        auth_client = AuthServiceClient(grpc_manager)
        project_client = ProjectServiceClient(grpc_manager)
        _, user_token = await demo_user(auth_client)

        # Use the clients
        try:
            # ValidateToken needs a caller: here the user, validating their own token.
            token_validation = await auth_client.validate_token(
                user_token, metadata=bearer(user_token)
            )
            if token_validation.valid:
                await project_client.create_project("Example project", metadata=bearer(user_token))
                projects = await project_client.list_user_projects(
                    token_validation.user_id,
                    1,  # page
                    10,  # limit
                    metadata=bearer(user_token),
                )
                print("User projects:", [p.project.name for p in projects.projects])
                return 0 if projects.total_count >= 1 else 1
            print("token rejected:", token_validation.reason_detail)
            return 1
        except grpc.aio.AioRpcError as error:
            print("gRPC call failed:", error.code().name, error.details())
            return 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
