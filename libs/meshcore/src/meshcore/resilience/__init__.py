"""Resilience for outgoing calls: circuit breaking, retries with a budget, and timeouts."""

from meshcore.resilience.breaker import (
    CALLEE_FAILURE_CODES,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    is_callee_failure,
)
from meshcore.resilience.budget import RetryBudget
from meshcore.resilience.retry import (
    RetryPolicy,
    is_retryable,
    is_unsent,
    retry_with_backoff,
)
from meshcore.resilience.status import DO_NOT_RETRY, pushback_seconds, status_code_of
from meshcore.resilience.timeouts import InvalidResponse, validate_response, with_timeout

__all__ = [
    "CALLEE_FAILURE_CODES",
    "DO_NOT_RETRY",
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "InvalidResponse",
    "RetryBudget",
    "RetryPolicy",
    "is_callee_failure",
    "is_retryable",
    "is_unsent",
    "pushback_seconds",
    "retry_with_backoff",
    "status_code_of",
    "validate_response",
    "with_timeout",
]
