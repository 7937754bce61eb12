"""The doctor's token and CA checks: what each says about a bad setup (no network)."""

from __future__ import annotations

import time
from pathlib import Path

from actors.relay import generate_signing_key, mint_device_token, mint_host_token
from supervisors.bridge._doctor import check_ca, check_token
from supervisors.tls import generate_dev_certs

KEY = generate_signing_key()
RELAY = "wss://relay.example:8443/v1/device"


def device_token(**kw: object) -> str:
    claims: dict[str, object] = {"tenant": "acme", "device_id": "laptop-1", "ttl": 3 * 3600}
    claims.update(kw)
    return mint_device_token(KEY, **claims)  # type: ignore[arg-type]


class TestTokenCheck:
    """Kind, device, audience and expiry, each named when wrong."""

    def test_good_token(self) -> None:
        check, tenant = check_token(device_token(), device_id="laptop-1", audience="zl-relay")
        assert check.ok
        assert tenant == "acme"
        assert check.detail.startswith(
            "device laptop-1 of tenant acme, audience zl-relay, expires "
        )
        assert "soon" not in check.detail

    def test_every_problem_is_named(self) -> None:
        token = device_token(audience="other", now=time.time() - 4 * 3600)
        check, _ = check_token(token, device_id="laptop-2", audience="zl-relay")
        assert not check.ok
        assert "for device 'laptop-1', not 'laptop-2'" in check.detail
        assert "audience 'other', the relay expects 'zl-relay'" in check.detail
        assert "expired " in check.detail

    def test_host_token_is_not_a_device_token(self) -> None:
        token = mint_host_token(KEY, tenants=["acme"], host_id="h1", ttl=600)
        check, _ = check_token(token, device_id="laptop-1", audience="zl-relay")
        assert not check.ok
        assert "a 'host' token, not a device token" in check.detail

    def test_expiring_soon_is_ok_with_a_warning(self) -> None:
        check, _ = check_token(device_token(ttl=600), device_id="laptop-1", audience="zl-relay")
        assert check.ok
        assert check.detail.endswith("mint a new one soon")

    def test_garbage_and_nothing(self) -> None:
        assert not check_token("not-a-jwt", device_id="d", audience="a")[0].ok
        missing, tenant = check_token("", device_id="d", audience="a")
        assert missing.detail == "no token (--token-file or $ZL_BRIDGE_TOKEN)"
        assert tenant is None


class TestCaCheck:
    """The bundle exists, holds certificates, and they are in date."""

    def test_dev_ca(self, tmp_path: Path) -> None:
        certs = generate_dev_certs(tmp_path / "certs")
        check = check_ca(certs.ca_cert, relay_url=RELAY)
        assert check.ok
        assert check.detail.startswith(f"{certs.ca_cert}: 1 certificate, valid until ")

    def test_out_of_date(self, tmp_path: Path) -> None:
        certs = generate_dev_certs(tmp_path / "certs")
        check = check_ca(certs.ca_cert, relay_url=RELAY, now=time.time() + 50 * 365 * 86400)
        assert not check.ok
        assert check.detail.endswith("every certificate in it is out of date")

    def test_not_pem_missing_and_not_needed(self, tmp_path: Path) -> None:
        junk = tmp_path / "junk.pem"
        junk.write_text("hello")
        assert check_ca(junk, relay_url=RELAY).detail == f"{junk}: no PEM certificate in it"
        assert not check_ca(tmp_path / "none.pem", relay_url=RELAY).ok
        assert not check_ca(None, relay_url=RELAY).ok
        assert check_ca(None, relay_url="ws://127.0.0.1:1/v1/device").ok
