"""The seed-style service token a service signs for its own outgoing calls."""

from __future__ import annotations

import jwt
from meshcore.service_token import ServiceTokenSigner
from meshcore.settings import Secret, ServiceSettings
from meshcore.testing import FakeClock

SECRET = "a-test-service-token-secret-of-32-chars"


def _signer(clock: FakeClock) -> ServiceTokenSigner:
    return ServiceTokenSigner(
        Secret(SECRET),
        service_id="billing",
        service_name="Billing Service",
        permissions=["user:read", "notification:send"],
        lifetime_seconds=600,
        clock=clock,
    )


def test_token_carries_the_seed_claims() -> None:
    """serviceId, serviceName and permissions travel as the seed's example signs them."""
    clock = FakeClock()
    claims = jwt.decode(
        _signer(clock)(), SECRET, algorithms=["HS256"], options={"verify_exp": False}
    )
    assert claims["serviceId"] == claims["sub"] == "billing"
    assert claims["serviceName"] == "Billing Service"
    assert claims["permissions"] == ["notification:send", "user:read"]
    assert claims["typ"] == "service"
    assert claims["exp"] - claims["iat"] == 600


def test_token_is_reused_until_most_of_its_lifetime_has_passed() -> None:
    """Signing happens once per 80 % of the lifetime, not once per call."""
    clock = FakeClock()
    signer = _signer(clock)
    first = signer()
    clock.advance(479)
    assert signer() == first
    clock.advance(2)
    renewed = signer()
    assert renewed != first
    claims = jwt.decode(renewed, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert claims["iat"] == int(clock.time())


def test_a_service_signs_with_its_own_name_and_secret() -> None:
    """for_service takes serviceId and the secret from the service's settings."""
    settings = ServiceSettings(service_token_secret=Secret(SECRET))
    signer = ServiceTokenSigner.for_service(settings, "Some Service", ["user:read"])
    claims = jwt.decode(signer(), SECRET, algorithms=["HS256"])
    assert claims["serviceId"] == settings.service_name
    assert claims["serviceName"] == "Some Service"
    assert claims["permissions"] == ["user:read"]
