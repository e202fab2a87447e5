"""Alembic environment of the Auth service (see meshcore.migrations)."""

from meshcore.migrations import run_env
from zoptal_auth.models import Base

run_env(Base.metadata)
