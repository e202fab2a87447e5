"""Process-wide observability setup: JSON logs and OpenTelemetry tracing from ``OTEL_*``."""

from meshcore.observability.logs import JsonFormatter, configure_logging
from meshcore.observability.tracing import configure_tracing, tracing_enabled_by_env

__all__ = ["JsonFormatter", "configure_logging", "configure_tracing", "tracing_enabled_by_env"]
