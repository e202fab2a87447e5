"""The seed's "Error Handling and Retry Logic", in Python.

    uv run python examples/error_handling.py

``retry_with_backoff`` (exponential backoff with full jitter), ``with_timeout`` and
``validate_response``. Durations are milliseconds, as in the seed.
"""

from __future__ import annotations

import asyncio

from _support import address, bearer, demo_user
from meshcore.client_manager import create_grpc_client_manager
from meshcore.resilience import retry_with_backoff, validate_response, with_timeout
from zoptal.clients import AuthServiceClient, ProjectServiceClient


async def main() -> int:
    manager = create_grpc_client_manager({"auth": address("auth"), "project": address("project")})
    async with manager:
        auth_client = AuthServiceClient(manager)
        project_client = ProjectServiceClient(manager)
        user_id, token = await demo_user(auth_client)

        # Retry with exponential backoff
        result = await retry_with_backoff(
            lambda: auth_client.validate_token(token, metadata=bearer(token)),
            3,  # max retries
            1000,  # base delay (1 second)
        )
        print("token valid:", result.valid)

        # Timeout handling
        user_with_timeout = await with_timeout(
            auth_client.get_user(user_id, metadata=bearer(token)),
            10000,  # 10 second timeout
            "User lookup timed out",
        )
        print("user:", user_with_timeout.user.email)

        # Response validation
        created = await project_client.create_project("Validated", metadata=bearer(token))
        validated_response = validate_response(
            await project_client.get_project(created.project.id, metadata=bearer(token)),
            "Get project",
        )
        print("project:", validated_response.project.name)
        return 0 if result.valid and validated_response.project.id == created.project.id else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
