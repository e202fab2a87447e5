"""Reads the services' own tables to compare what Billing counted with what exists.

The assertions of "nothing lost, nothing counted twice" must not trust the RPCs under test, so
they read Project's ``projects`` and ``usage_outbox`` and Billing's ``usage_records`` and
``usage_totals`` directly from the private PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg

from tests.faults.stores import PrivatePostgres

__all__ = ["UsageLedger", "read_ledger", "wait_for_outbox_drained"]

RELEASE_SUFFIX = ":release"


@dataclass(frozen=True)
class UsageLedger:
    active_projects: dict[str, set[str]]
    """owner id -> ids of active (visible) projects."""
    pending_projects: int
    """Rows still in state ``creating`` (a create neither finished nor undone)."""
    net_by_project: dict[str, int]
    """project id -> Billing's net ``projects`` usage for it (+1 record, -1 release)."""
    duplicate_keys: list[tuple[str, str]]
    """(user, idempotency key) pairs Billing recorded more than once: must never happen."""
    totals: dict[str, int]
    """owner id -> Billing's running total of the ``projects`` metric."""


async def _fetch(dsn: str, query: str, *args: object) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(dsn)
    try:
        return list(await connection.fetch(query, *args))
    finally:
        await connection.close()


async def read_ledger(postgres: PrivatePostgres, owners: Iterable[str]) -> UsageLedger:
    owner_ids = list(owners)
    projects = await _fetch(
        postgres.dsn("project"),
        "SELECT id, owner_id, state FROM projects WHERE owner_id = ANY($1::text[])",
        owner_ids,
    )
    records = await _fetch(
        postgres.dsn("billing"),
        "SELECT user_id, idempotency_key, quantity FROM usage_records "
        "WHERE metric = 'projects' AND user_id = ANY($1::text[])",
        owner_ids,
    )
    totals = await _fetch(
        postgres.dsn("billing"),
        "SELECT user_id, SUM(used) AS used FROM usage_totals "
        "WHERE metric = 'projects' AND user_id = ANY($1::text[]) GROUP BY user_id",
        owner_ids,
    )
    active: dict[str, set[str]] = {owner: set() for owner in owner_ids}
    pending = 0
    for row in projects:
        if row["state"] == "active":
            active[row["owner_id"]].add(row["id"])
        else:
            pending += 1
    net: dict[str, int] = defaultdict(int)
    seen: dict[tuple[str, str], int] = defaultdict(int)
    for row in records:
        key = row["idempotency_key"]
        seen[(row["user_id"], key)] += 1
        net[key.removesuffix(RELEASE_SUFFIX)] += int(row["quantity"])
    return UsageLedger(
        active_projects=active,
        pending_projects=pending,
        net_by_project=dict(net),
        duplicate_keys=[pair for pair, count in seen.items() if count > 1],
        totals={row["user_id"]: int(row["used"]) for row in totals},
    )


async def wait_for_outbox_drained(postgres: PrivatePostgres, within: float = 60.0) -> None:
    """Poll Project's usage outbox until every queued release/compensation reached Billing."""
    deadline = time.monotonic() + within
    while True:
        rows = await _fetch(postgres.dsn("project"), "SELECT COUNT(*) AS n FROM usage_outbox")
        if rows[0]["n"] == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"Project's usage outbox still holds {rows[0]['n']} rows")
        await asyncio.sleep(0.2)
