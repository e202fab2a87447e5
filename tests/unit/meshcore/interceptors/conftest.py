"""Fixtures for interceptor tests: echo servers behind given interceptors (see the test kit)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack

import grpc
import grpc.aio
import pytest

from tests.unit.meshcore.interceptors.interceptor_testkit import (
    EchoClient,
    EchoFactory,
    start_echo_server,
)


@pytest.fixture
async def echo() -> AsyncIterator[EchoFactory]:
    """Start echo servers behind given interceptors; all are stopped after the test."""
    async with AsyncExitStack() as stack:

        async def factory(
            interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
            client_interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
        ) -> EchoClient:
            return await start_echo_server(stack, interceptors, client_interceptors)

        yield factory
