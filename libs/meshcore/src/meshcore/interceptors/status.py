"""The status code a call ends with, as observers and metrics name it (``"OK"``, ...)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import grpc.aio

from meshcore.errors import MeshError

__all__ = ["final_code", "status_code_of"]


def status_code_of(error: BaseException, context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The status a call ends with when ``error`` escapes the handler chain."""
    if isinstance(error, grpc.aio.AbortError):
        code = context.code()
        return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
    if isinstance(error, asyncio.CancelledError):
        return "CANCELLED"
    if isinstance(error, MeshError):
        return error.code.name
    return "UNKNOWN"


def final_code(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The status of a call whose handler returned: OK unless it set another code."""
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) else "OK"
