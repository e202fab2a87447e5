"""Alembic environment of the Billing database (meshcore runs it the same way for every service)."""

from meshcore.migrations import run_env
from zoptal_billing.models import Base

run_env(Base.metadata)
