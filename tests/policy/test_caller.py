"""Caller tokens (pure): minting, verifying, and holding a session to its token."""

from __future__ import annotations

import time

import pytest

from actors.policy import (
    CallerForbidden,
    CallerUnauthenticated,
    authorize_session,
    bearer_token,
    mint_caller_token,
    verify_caller_token,
)
from actors.relay import generate_signing_key, mint_device_token
from tests._policy import caller_key

KEY = caller_key()
KEYS = [KEY.public_key()]


def token(**kwargs: object) -> str:
    args: dict[str, object] = {
        "tenant": "acme",
        "user": "u1",
        "devices": ["laptop-1"],
        "ttl_s": 600,
    }
    args.update(kwargs)
    return mint_caller_token(KEY, **args)  # type: ignore[arg-type]


class TestVerify:
    """What a good token proves; each way a token is refused."""

    def test_claims(self) -> None:
        claims = verify_caller_token(token(), KEYS)
        assert (claims.tenant, claims.user, claims.audience) == ("acme", "u1", "zl-host")
        assert claims.devices == frozenset({"laptop-1"})
        assert claims.covers_device("laptop-1")
        assert not claims.covers_device("laptop-2")

    def test_any_device(self) -> None:
        assert verify_caller_token(token(devices=["*"]), KEYS).covers_device("whatever")

    @pytest.mark.parametrize(
        ("make", "needle"),
        [
            (lambda: None, "no caller token"),
            (lambda: "", "no caller token"),
            (lambda: "garbage", "refused"),
            (lambda: token(now=time.time() - 7200), "expired"),
            (lambda: token(now=time.time() + 7200), "not valid yet"),
            (lambda: token(audience="zl-relay"), "another audience"),
            (lambda: token(ttl_s=7200), "longer"),
            (
                lambda: mint_caller_token(
                    generate_signing_key(), tenant="acme", user="u", devices=[], ttl_s=60
                ),
                "not trusted",
            ),
            (lambda: mint_device_token(KEY, tenant="acme", device_id="d", ttl=60), "audience"),
        ],
    )
    def test_refused(self, make: object, needle: str) -> None:
        with pytest.raises(CallerUnauthenticated) as caught:
            verify_caller_token(make(), KEYS, clock_skew_s=30)  # type: ignore[operator]
        assert caught.value.code == "unauthenticated"
        assert needle in caught.value.message

    def test_issuer_allow_list(self) -> None:
        verify_caller_token(token(issuer="bff"), KEYS, issuers=["bff"])
        with pytest.raises(CallerUnauthenticated):
            verify_caller_token(token(issuer="other"), KEYS, issuers=["bff"])

    def test_tampered(self) -> None:
        head, _body, sig = token().split(".")
        other = token(tenant="globex").split(".")[1]
        with pytest.raises(CallerUnauthenticated, match="signature"):
            verify_caller_token(f"{head}.{other}.{sig}", KEYS)

    @pytest.mark.parametrize("devices", [["*", "d1"], ["bad/id"]])
    def test_mint_refuses_bad_devices(self, devices: list[str]) -> None:
        with pytest.raises(ValueError, match="device"):
            token(devices=devices)


class TestAuthorize:
    """A session names the token's tenant, user (or none) and a device the token lists."""

    claims = verify_caller_token(token(), KEYS)

    def test_allowed(self) -> None:
        assert (
            authorize_session(self.claims, tenant="acme", user="u1", device_id="laptop-1") == "u1"
        )
        assert authorize_session(self.claims, tenant="acme", user="", device_id="") == "u1"

    @pytest.mark.parametrize(
        ("tenant", "user", "device"),
        [("globex", "u1", "laptop-1"), ("acme", "u2", "laptop-1"), ("acme", "u1", "laptop-2")],
    )
    def test_forbidden(self, tenant: str, user: str, device: str) -> None:
        with pytest.raises(CallerForbidden) as caught:
            authorize_session(self.claims, tenant=tenant, user=user, device_id=device)
        assert caught.value.code == "forbidden"


class TestBearer:
    """The authorization metadata."""

    def test_forms(self) -> None:
        assert bearer_token([]) is None
        assert bearer_token([("authorization", "Bearer abc")]) == "abc"
        assert bearer_token([("authorization", "bearer abc ")]) == "abc"
        with pytest.raises(CallerUnauthenticated):
            bearer_token([("authorization", "Basic abc")])
        with pytest.raises(CallerUnauthenticated):
            bearer_token([("authorization", "Bearer a"), ("authorization", "Bearer b")])
