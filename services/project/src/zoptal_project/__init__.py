"""The Zoptal Project service."""

from pathlib import Path

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
"""Alembic's folder: ``python -m zoptal_project migrate`` and the tests apply it."""
