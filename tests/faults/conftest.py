"""Session fixtures of the fault suite: private PostgreSQL and Redis, an SMTP sink, and the
whole platform as real processes on them.

One platform serves the session (starting seven Python processes costs seconds on two cores);
every test that breaks something puts it back (restarts what it killed, starts what it stopped)
and checks the platform is whole again before it ends, so the next test starts from health.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

from tests.faults.cluster import Cluster, build_cluster
from tests.faults.journey import Clients, open_clients
from tests.faults.stores import PrivatePostgres, PrivateRedis
from tests.smtp import SmtpSink, listening


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL cluster of our own (never the shared one on 5432): tests stop it."""
    # Not pytest's tmp_path: its folders are private to root, and the server runs as postgres.
    postgres = PrivatePostgres(Path(tempfile.mkdtemp(prefix="zoptal-faults-pg-")))
    postgres.init()
    try:
        yield postgres
    finally:
        postgres.destroy()


@pytest.fixture(scope="session")
def private_redis() -> Iterator[PrivateRedis]:
    """A Redis of our own (never the shared one on 6379): tests stop it."""
    redis = PrivateRedis(Path(tempfile.mkdtemp(prefix="zoptal-faults-redis-")))
    redis.start()
    try:
        yield redis
    finally:
        redis.destroy()


OPERATOR_TOKEN_MARGIN_SECONDS = 240.0
"""The operator's token (300 s) is renewed before a test when less than this is left."""

HoldEnding = Literal["refused", "accepted", "accepted_unheard"]


@dataclass
class SelectiveSmtpSink(SmtpSink):
    """The Notification tests' sink, holding only the message for one recipient (other tests'
    emails keep flowing through the same session-wide sink meanwhile)."""

    hold_for: str | None = None
    ending: HoldEnding = "refused"

    def arm(self, recipient: str, *, then: HoldEnding) -> None:
        """Hold the next DATA for ``recipient`` until ``released``, then:

        * ``refused``: answer 451; the client was killed meanwhile, and the server never took
          responsibility for the message;
        * ``accepted``: take the message and answer 250, to a client still there to hear it;
        * ``accepted_unheard``: the message is taken *before* the hold, so a client killed
          during it dies after the server accepted the message but before it heard so: the one
          window no SMTP client can close (its 250 may as well have been lost on the wire).
        """
        self.held = threading.Event()
        self.released = threading.Event()
        self.ending = then
        self.hold_for = recipient

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.hold_for is None or self.hold_for not in envelope.rcpt_tos:
            return await super().handle_DATA(server, session, envelope)
        self.hold_for = None
        if self.ending == "refused":
            self.hold = True  # the base class parks this DATA, then answers 451
            return await super().handle_DATA(server, session, envelope)
        self.attempts += 1
        message = bytes(envelope.original_content or envelope.content)
        if self.ending == "accepted_unheard":
            self.messages.append(message)
        self.held.set()
        await asyncio.to_thread(self.released.wait)
        if self.ending == "accepted":
            self.messages.append(message)
        return "250 2.0.0 accepted"


@pytest.fixture(scope="session")
def smtp_sink() -> Iterator[SelectiveSmtpSink]:
    """A real SMTP server (aiosmtpd) the Celery worker delivers to."""
    with listening(SelectiveSmtpSink()) as sink:
        yield sink


@pytest.fixture(scope="session")
def cluster(
    private_postgres: PrivatePostgres,
    private_redis: PrivateRedis,
    smtp_sink: SmtpSink,
) -> Iterator[Cluster]:
    """Auth, Project, Billing x2, Notification (+ worker), Analytics as real processes."""
    # Our own folder, not pytest's numbered basetemp: other engineers' pytest sessions rotate
    # those (keeping three) while this long session still writes logs and data into it.
    root = Path(tempfile.mkdtemp(prefix="zoptal-faults-platform-"))
    platform = build_cluster(root, private_postgres, private_redis, smtp_sink.port)
    try:
        platform.start()
        yield platform
    finally:
        platform.stop()
        if not os.environ.get("ZOPTAL_FAULTS_KEEP_LOGS"):  # set it to read the logs afterwards
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def healthy_cluster(cluster: Cluster) -> Iterator[Cluster]:
    """The cluster, checked whole before the test and put back whole after it."""
    _make_whole(cluster)
    yield cluster
    _make_whole(cluster)


def _make_whole(cluster: Cluster) -> None:
    cluster.redis.start()
    cluster.postgres.start()
    for proc in cluster.processes.values():
        if not proc.alive():
            proc.restart()
    for proc in cluster.replicas():
        proc.wait_serving()
    # While Auth can issue: a test breaking Redis or PostgreSQL must not need a new token.
    assert cluster.operator is not None
    cluster.operator.renew(min_remaining=OPERATOR_TOKEN_MARGIN_SECONDS)
    cluster.wait_authenticating()


@pytest.fixture
async def clients(healthy_cluster: Cluster) -> AsyncIterator[Clients]:
    """meshcore's client manager and the typed clients, pointed at the cluster."""
    async with open_clients(healthy_cluster) as opened:
        yield opened
