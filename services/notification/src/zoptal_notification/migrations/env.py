"""Alembic environment of the Notification database (see ``meshcore.migrations``)."""

from meshcore.migrations import run_env
from zoptal_notification.models import Base

run_env(Base.metadata)
