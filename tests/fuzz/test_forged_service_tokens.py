"""Forged service tokens: with every secret and key anyone can read in the repository, and with
the classic algorithm tricks, nobody becomes a service.

Only Auth proves a service (ES256 tokens from IssueServiceToken, verified through its JWKS with
issuer and audience). So a token signed with any string or private key committed to the
repository (the old shared ``SERVICE_TOKEN_SECRET`` values among them), HS256 keyed with Auth's
own public key, ES256 from an attacker's key claiming Auth's ``kid``, or ``alg: none`` must get
UNAUTHENTICATED from every protected RPC of every service, in ``x-service-token`` or as a bearer
token claiming ``typ: service``; each claims a platform service's name, every permission there is
and the admin role, so nothing but the signature can explain the refusal. Public RPCs (Auth's
sign-in methods) ignore credentials: there a forged token must change nothing compared with no
token at all.

Each forged token is sent to at least one RPC (round robin over every RPC, then a seeded random
sample), which keeps the run to seconds while covering every candidate and every RPC.
"""

from __future__ import annotations

import json
import random
import urllib.request
from typing import Any

import grpc
import pytest
from zoptal.auth.v1 import auth_pb2

from tests.fuzz.calls import Outcome, call, describe
from tests.fuzz.catalogue import ALL_RPCS, PROTECTED_RPCS, Rpc
from tests.fuzz.conftest import Mesh
from tests.fuzz.forgeries import SERVICES, Forgery, forgeries_for
from tests.fuzz.repository_secrets import KNOWN_OLD_SECRETS, repository_secrets

SEED = 20_261_128
EXTRA_CALLS = 1_500
"""Random (token, RPC) pairs on top of the round robin, to vary which token meets which RPC."""


def _jwks(mesh: Mesh) -> dict[str, Any]:
    with urllib.request.urlopen(mesh.jwks_url, timeout=10) as reply:  # noqa: S310 - our own URL
        document: dict[str, Any] = json.loads(reply.read())
    return document


@pytest.fixture(scope="module")
def forgeries(mesh: Mesh) -> list[Forgery]:
    return forgeries_for(_jwks(mesh))


def _empty_request(rpc: Rpc) -> Any:
    return [] if rpc.client_streaming else rpc.request_class()


def _pairs(forged: list[Forgery], rpcs: tuple[Rpc, ...]) -> list[tuple[Forgery, Rpc]]:
    """Every forgery and every RPC at least once (round robin), then a seeded random sample."""
    rounds = max(len(forged), len(rpcs))
    pairs = [(forged[i % len(forged)], rpcs[i % len(rpcs)]) for i in range(rounds)]
    chooser = random.Random(SEED)
    pairs += [(chooser.choice(forged), chooser.choice(rpcs)) for _ in range(EXTRA_CALLS)]
    return pairs


def test_the_candidates_are_every_secret_and_key_in_the_repository(
    forgeries: list[Forgery],
) -> None:
    """The forge test cannot pass vacuously: the scan found secrets, the old shared ones too."""
    found = repository_secrets()
    assert found.files_read > 100
    assert len(found.strings) > 20
    for old in KNOWN_OLD_SECRETS:
        assert old in found.strings
    # k8s/base/dev-jwt-signing-key.pem was committed once: its history keeps it.
    assert found.private_keys, "the development signing key once committed must be tried"
    assert len(forgeries) >= 2 * len(SERVICES) * len(found.strings)


def test_forged_service_tokens_are_unauthenticated_on_every_protected_rpc(
    mesh: Mesh, forgeries: list[Forgery]
) -> None:
    """Every forgery, on protected RPCs of every service: UNAUTHENTICATED, nothing else."""
    wrong: list[str] = []
    covered: set[str] = set()
    for forgery, rpc in _pairs(forgeries, PROTECTED_RPCS):
        request = _empty_request(rpc)
        outcome = call(mesh.channel(rpc), rpc, request, forgery.metadata)
        covered.add(str(rpc))
        if outcome.code != grpc.StatusCode.UNAUTHENTICATED:
            wrong.append(f"{forgery.label}: {describe(rpc, request, outcome)}")
    assert covered == {str(rpc) for rpc in PROTECTED_RPCS}
    assert not wrong, f"{len(wrong)} forged calls not refused:\n" + "\n".join(wrong[:40])


def _same_answer(rpc: Rpc, forged: Outcome, anonymous: Outcome) -> bool:
    """Same status; for GetJwks the same keys too (HealthCheck's reply carries a clock)."""
    if rpc.method.name == "GetJwks" and forged.code == grpc.StatusCode.OK:
        return forged.response == anonymous.response
    return forged.code == anonymous.code


def test_forged_service_tokens_change_nothing_on_public_rpcs(
    mesh: Mesh, forgeries: list[Forgery]
) -> None:
    """Public RPCs (sign-in, JWKS, health) take no credentials: a forgery answers as no token."""
    public = tuple(rpc for rpc in ALL_RPCS if rpc.public)
    assert public
    anonymous = {str(rpc): call(mesh.channel(rpc), rpc, _empty_request(rpc), ()) for rpc in public}
    wrong: list[str] = []
    for forgery, rpc in _pairs(forgeries, public)[: len(forgeries) // 4 + len(public)]:
        request = _empty_request(rpc)
        outcome = call(mesh.channel(rpc), rpc, request, forgery.metadata)
        if not _same_answer(rpc, outcome, anonymous[str(rpc)]):
            wrong.append(f"{forgery.label}: {describe(rpc, request, outcome)}")
    assert not wrong, "\n".join(wrong[:40])


@pytest.mark.parametrize("service", SERVICES)
def test_a_genuine_service_token_passes_authentication(mesh: Mesh, service: str) -> None:
    """Control: the token Auth issues for the service's own credential file is accepted (every
    platform service may list revocations), so the refusals above are the forgeries'."""
    rpc = next(r for r in PROTECTED_RPCS if r.method.name == "ListRevocations")
    outcome = call(
        mesh.channel(rpc), rpc, auth_pb2.ListRevocationsRequest(), mesh.as_service(service)
    )
    assert outcome.code == grpc.StatusCode.OK, describe(rpc, None, outcome)


def test_a_genuine_service_token_passes_authentication_on_every_service(mesh: Mesh) -> None:
    """Control on every service: the operator's real token is never UNAUTHENTICATED."""
    for rpc in PROTECTED_RPCS:
        request = _empty_request(rpc)
        outcome = call(mesh.channel(rpc), rpc, request, mesh.service_metadata)
        assert outcome.code != grpc.StatusCode.UNAUTHENTICATED, describe(rpc, request, outcome)
