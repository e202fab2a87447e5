"""``ServiceMeshUtils``: the seed's utility namespace, for code that follows the seed line by line.

The functions themselves live in ``retry`` and ``timeouts``; this only groups them under the name
the seed's examples use (``ServiceMeshUtils.retry_with_backoff(...)``).
"""

from __future__ import annotations

from meshcore.resilience.retry import retry_with_backoff
from meshcore.resilience.timeouts import validate_response, with_timeout

__all__ = ["ServiceMeshUtils"]


class ServiceMeshUtils:
    retry_with_backoff = staticmethod(retry_with_backoff)
    with_timeout = staticmethod(with_timeout)
    validate_response = staticmethod(validate_response)
