"""Alembic environment of the Analytics database (see ``meshcore.migrations``)."""

from meshcore.migrations import run_env
from zoptal_analytics.models import Base

run_env(Base.metadata)
