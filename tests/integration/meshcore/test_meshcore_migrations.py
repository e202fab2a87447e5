"""meshcore.migrations: a throwaway Alembic folder upgraded on SQLite and real PostgreSQL."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from meshcore.db import Database
from meshcore.migrations import head_revisions, is_at_head, run_migrations, upgrade_database
from sqlalchemy import inspect, text

ENV_PY = """\
from meshcore.migrations import run_env

run_env(None)
"""

FIRST = '''\
"""create widgets"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade():
    op.create_table(
        "widgets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(50), nullable=False),
    )


def downgrade():
    op.drop_table("widgets")
'''

SECOND = '''\
"""add widgets.colour (batch mode makes this work on SQLite too)"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade():
    with op.batch_alter_table("widgets") as batch:
        batch.add_column(sa.Column("colour", sa.String(20), server_default="red"))
        batch.alter_column("name", type_=sa.String(80))


def downgrade():
    with op.batch_alter_table("widgets") as batch:
        batch.drop_column("colour")
'''


def migrations_folder(root: Path, *versions: str) -> Path:
    folder = root / "migrations"
    (folder / "versions").mkdir(parents=True)
    (folder / "env.py").write_text(ENV_PY)
    (folder / "script.py.mako").write_text("# unused: these tests write revisions by hand\n")
    for number, body in enumerate(versions, start=1):
        (folder / "versions" / f"{number:04d}.py").write_text(textwrap.dedent(body))
    return folder


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'data' / 'svc.db'}"
    return str(request.getfixturevalue("postgres_url"))


async def schema(url: str) -> tuple[set[str], set[str], str]:
    db = Database(url)
    try:
        async with db.connection() as conn:
            tables, columns = await conn.run_sync(
                lambda sync: (
                    set(inspect(sync).get_table_names()),
                    {c["name"] for c in inspect(sync).get_columns("widgets")},
                )
            )
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    finally:
        await db.dispose()
    return tables, columns, str(version)


def test_run_migrations_upgrades_to_head(database_url: str, tmp_path: Path) -> None:
    """From sync code (the ``migrate`` command) every revision is applied, in order."""
    folder = migrations_folder(tmp_path, FIRST, SECOND)
    run_migrations(database_url, folder)
    tables, columns, version = asyncio.run(schema(database_url))
    assert {"widgets", "alembic_version"} <= tables
    assert columns == {"id", "name", "colour"}
    assert version == "0002"


def test_running_again_is_a_no_op(database_url: str, tmp_path: Path) -> None:
    """A restart re-runs the migrations harmlessly, and a later revision is picked up."""
    folder = migrations_folder(tmp_path, FIRST)
    run_migrations(database_url, folder)
    run_migrations(database_url, folder)
    assert asyncio.run(schema(database_url))[2] == "0001"
    (folder / "versions" / "0002.py").write_text(SECOND)
    run_migrations(database_url, folder)
    assert asyncio.run(schema(database_url))[2] == "0002"


def test_is_at_head_tells_without_alembic(database_url: str, tmp_path: Path) -> None:
    """No database yet, one revision behind, at head: only the last is at head; and a start
    at head imports neither Alembic nor SQLAlchemy (a fresh interpreter, to see its modules)."""
    folder = migrations_folder(tmp_path, FIRST, SECOND)
    assert head_revisions(folder) == {"0002"}
    assert not is_at_head(database_url, folder)
    run_migrations(database_url, migrations_folder(tmp_path / "first", FIRST))
    assert not is_at_head(database_url, folder)
    run_migrations(database_url, folder)
    assert is_at_head(database_url, folder)
    probe = (
        "import sys; from meshcore.migrations import run_migrations; "
        f"run_migrations({database_url!r}, {str(folder)!r}); "
        "print(sorted(m for m in ('alembic', 'sqlalchemy') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_heads_follow_every_branch_and_merge(tmp_path: Path) -> None:
    """Two branches off 0001 are two heads; a merge revision (a tuple) makes one again."""
    branch = SECOND.replace('revision = "0002"', 'revision = "0003"')
    folder = migrations_folder(tmp_path, FIRST, SECOND, branch)
    assert head_revisions(folder) == {"0002", "0003"}
    merge = 'revision: str = "0004"\ndown_revision: tuple[str, str] = ("0002", "0003")\n'
    (folder / "versions" / "0004.py").write_text(merge)
    assert head_revisions(folder) == {"0004"}


@pytest.mark.parametrize("service", ["auth", "project", "billing", "notification", "analytics"])
def test_every_service_has_one_head(service: str) -> None:
    """Each service's migrations form one line: is_at_head compares against one revision."""
    import importlib.util

    spec = importlib.util.find_spec(f"zoptal_{service}")
    assert spec is not None
    assert spec.origin is not None
    assert len(head_revisions(Path(spec.origin).with_name("migrations"))) == 1


async def test_upgrade_database_works_inside_a_running_loop(
    database_url: str, tmp_path: Path
) -> None:
    """The embedded start migrates from its own event loop, by either entry point."""
    await upgrade_database(database_url, migrations_folder(tmp_path, FIRST))
    assert (await schema(database_url))[2] == "0001"
    run_migrations(database_url, migrations_folder(tmp_path / "again", FIRST, SECOND))
    assert (await schema(database_url))[2] == "0002"


@pytest.mark.postgres
async def test_replicas_migrating_together_do_not_collide(
    postgres_url: str, tmp_path: Path
) -> None:
    """Three replicas starting at once: the advisory lock lets one migrate, the rest see head."""
    folder = migrations_folder(tmp_path, FIRST, SECOND)
    await asyncio.gather(*(upgrade_database(postgres_url, folder) for _ in range(3)))
    assert (await schema(postgres_url))[2] == "0002"


def test_plain_alembic_command_line_uses_database_url(tmp_path: Path) -> None:
    """``alembic upgrade head`` in a service folder works too, through ``run_env``."""
    folder = migrations_folder(tmp_path, FIRST)
    ini = tmp_path / "alembic.ini"
    ini.write_text(f"[alembic]\nscript_location = {folder}\n")
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ini), "upgrade", "head"],
        check=True,
        env={"DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        timeout=60,
    )
    assert asyncio.run(schema(url))[2] == "0001"
