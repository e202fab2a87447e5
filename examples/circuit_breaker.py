"""The seed's "Circuit Breaking" example, in Python.

    uv run python examples/circuit_breaker.py

An explicit ``CircuitBreaker(5, 60000, 10000)`` around a user lookup, with a cached fallback
while the circuit is open. (Typed clients already keep one breaker per endpoint; an explicit
breaker like this one guards a whole dependency, e.g. to serve from a cache.)
"""

from __future__ import annotations

import asyncio

from _support import address, bearer, demo_user
from meshcore.client_manager import create_grpc_client_manager
from meshcore.resilience import CircuitBreaker, CircuitOpenError
from zoptal.auth.v1 import auth_pb2
from zoptal.clients import AuthServiceClient

user_cache: dict[str, auth_pb2.User] = {}


def get_cached_user_data(user_id: str) -> auth_pb2.User | None:
    return user_cache.get(user_id)


async def main() -> int:
    circuit_breaker = CircuitBreaker(
        5,  # Failure threshold
        60000,  # Recovery timeout (1 minute)
        10000,  # Monitoring period (10 seconds)
    )
    async with create_grpc_client_manager({"auth": address("auth")}) as manager:
        grpc_client = AuthServiceClient(manager)
        user_id, token = await demo_user(grpc_client)

        # Use circuit breaker
        try:
            result = await circuit_breaker.execute(
                lambda: grpc_client.get_user(user_id, metadata=bearer(token))
            )
            user_cache[user_id] = result.user
            print("user:", result.user.email, "circuit:", circuit_breaker.state.value)
        except CircuitOpenError:  # str(error) == "Circuit breaker is OPEN", as in the seed
            cached = get_cached_user_data(user_id)
            print("circuit open, cached user:", cached)
            return 1
        return 0 if result.user.id == user_id else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
