"""``Principal``: the caller a handler sees, and a value it can hand on (to a pool, a queue)."""

from __future__ import annotations

import copy
import pickle

import pytest
from meshcore.context import Principal


@pytest.mark.parametrize(
    "principal",
    [
        Principal("u-1", "user"),
        Principal(
            "billing",
            "service",
            frozenset({"billing:read"}),
            frozenset({"service"}),
            {"sub": "billing", "aud": "zoptal"},
        ),
    ],
    ids=["default claims", "with claims"],
)
def test_a_principal_survives_pickling_and_copying(principal: Principal) -> None:
    """Pickled (a process pool's arguments, Celery's pickle serializer) or deep-copied, a
    principal comes back equal, with its claims and its derived key."""
    pickled = pickle.loads(pickle.dumps(principal))  # noqa: S301 - our own bytes, just made
    for clone in (pickled, copy.deepcopy(principal)):
        assert clone == principal
        assert dict(clone.claims) == dict(principal.claims)
        assert clone.key == principal.key
        assert clone.permissions == principal.permissions
        assert clone.roles == principal.roles


def test_claims_are_a_read_only_copy() -> None:
    """A principal is cached with its token and shared by its calls: one handler cannot change
    the claims another call sees, nor can the dict it was built from."""
    source = {"sub": "u-1", "plan": "free"}
    principal = Principal("u-1", "user", claims=source)
    source["plan"] = "enterprise"
    assert principal.claims["plan"] == "free"
    with pytest.raises(TypeError):
        principal.claims["plan"] = "enterprise"  # type: ignore[index]
