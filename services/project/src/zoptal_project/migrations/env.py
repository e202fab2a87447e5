"""Alembic environment of the Project database (meshcore runs it the same way for every service)."""

from meshcore.migrations import run_env
from zoptal_project.models import Base

run_env(Base.metadata)
