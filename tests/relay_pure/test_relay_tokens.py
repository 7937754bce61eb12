"""Relay bearer tokens: minting, every way verification fails, authorization, keys, CLI."""

from __future__ import annotations

import base64
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from actors.relay import (
    DeviceClaims,
    Forbidden,
    HostClaims,
    KeyFileError,
    Unauthenticated,
    authorize,
    generate_signing_key,
    key_id,
    load_private_key,
    load_public_key,
    mint_device_token,
    mint_host_token,
    save_private_key,
    save_public_key,
    token_main,
    verify_token,
)
from actors.relay._tokens import CLOCK_LEEWAY_S

AUD = "zl-relay-test"
NOW = 1_800_000_000.0
TTL = 600.0


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return generate_signing_key()


def device_token(key: Ed25519PrivateKey, **changes: Any) -> str:
    fields: dict[str, Any] = {
        "tenant": "acme",
        "device_id": "laptop-1",
        "audience": AUD,
        "ttl": TTL,
        "now": NOW,
    }
    return mint_device_token(key, **(fields | changes))


def host_token(key: Ed25519PrivateKey, **changes: Any) -> str:
    fields: dict[str, Any] = {
        "tenants": ["acme", "globex"],
        "host_id": "host-a",
        "audience": AUD,
        "ttl": TTL,
        "now": NOW,
    }
    return mint_host_token(key, **(fields | changes))


def raw_token(key: Ed25519PrivateKey, payload: dict[str, Any], **headers: Any) -> str:
    """A token signed by ``key`` with exactly this payload (for claims mint would not make)."""
    return jwt.encode(
        payload, key, algorithm="EdDSA", headers={"kid": key_id(key.public_key())} | headers
    )


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def refused(token: str | None, key: Ed25519PrivateKey, match: str, **kwargs: Any) -> None:
    with pytest.raises(Unauthenticated, match=match) as info:
        verify_token(
            token, [key.public_key()], kwargs.pop("audience", AUD), kwargs.pop("now", NOW), **kwargs
        )
    assert info.value.code == "relay.unauthenticated"
    assert info.value.retryable is False


class TestVerifyAccepts:
    """Well-made tokens verify and say what they prove."""

    def test_device(self, key: Ed25519PrivateKey) -> None:
        claims = verify_token(device_token(key), [key.public_key()], AUD, NOW, kind="device")
        assert isinstance(claims, DeviceClaims)
        assert (claims.tenant, claims.device_id, claims.audience) == ("acme", "laptop-1", AUD)
        assert claims.expires_at - claims.issued_at == TTL

    def test_host(self, key: Ed25519PrivateKey) -> None:
        claims = verify_token(host_token(key), [key.public_key()], AUD, NOW, kind="host")
        assert isinstance(claims, HostClaims)
        assert claims.tenants == frozenset({"acme", "globex"})
        assert claims.host_id == "host-a"

    def test_key_rotation(self, key: Ed25519PrivateKey) -> None:
        old, new = generate_signing_key(), key
        keys = [old.public_key(), new.public_key()]
        assert verify_token(device_token(old), keys, AUD, NOW).tenant == "acme"  # type: ignore[union-attr]
        assert verify_token(device_token(new), keys, AUD, NOW).tenant == "acme"  # type: ignore[union-attr]

    def test_token_without_kid_tries_each_key(self, key: Ed25519PrivateKey) -> None:
        payload = jwt.decode(device_token(key), options={"verify_signature": False})
        token = jwt.encode(payload, key, algorithm="EdDSA")
        keys = [generate_signing_key().public_key(), key.public_key()]
        assert isinstance(verify_token(token, keys, AUD, NOW), DeviceClaims)

    def test_within_clock_leeway(self, key: Ed25519PrivateKey) -> None:
        token = device_token(key)
        verify_token(token, [key.public_key()], AUD, NOW + TTL + CLOCK_LEEWAY_S - 1)
        verify_token(token, [key.public_key()], AUD, NOW - CLOCK_LEEWAY_S + 1)

    def test_default_clock(self, key: Ed25519PrivateKey) -> None:
        token = mint_device_token(key, tenant="acme", device_id="d", audience=AUD, ttl=60)
        assert isinstance(verify_token(token, [key.public_key()], AUD), DeviceClaims)


class TestVerifyRefuses:
    """Each failure mode is a relay.unauthenticated error that says which."""

    @pytest.mark.parametrize("token", [None, ""])
    def test_missing(self, key: Ed25519PrivateKey, token: str | None) -> None:
        refused(token, key, "no bearer token")

    def test_oversized(self, key: Ed25519PrivateKey) -> None:
        refused("a" * 20_000, key, "longer than")

    @pytest.mark.parametrize("token", ["abc", "a.b.c", "....", "eyJhbGciOiJFZERTQSJ9.e30"])
    def test_malformed(self, key: Ed25519PrivateKey, token: str) -> None:
        refused(token, key, "malformed|algorithm")

    def test_alg_none(self, key: Ed25519PrivateKey) -> None:
        payload = jwt.decode(device_token(key), options={"verify_signature": False})
        token = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(payload)}."
        refused(token, key, "algorithm must be EdDSA")

    def test_hmac_with_public_key_as_secret(self, key: Ed25519PrivateKey) -> None:
        payload = jwt.decode(device_token(key), options={"verify_signature": False})
        token = jwt.encode(payload, "not-the-key-" * 4, algorithm="HS256")
        refused(token, key, "algorithm must be EdDSA")

    def test_unknown_key(self, key: Ed25519PrivateKey) -> None:
        refused(device_token(generate_signing_key()), key, "unknown key")

    def test_bad_signature(self, key: Ed25519PrivateKey) -> None:
        forger = generate_signing_key()
        payload = jwt.decode(device_token(key), options={"verify_signature": False})
        forged = raw_token(forger, payload, kid=key_id(key.public_key()))
        refused(forged, key, "signature does not verify")

    def test_tampered_payload(self, key: Ed25519PrivateKey) -> None:
        header, payload, signature = device_token(key).split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
        claims["tenant"] = "globex"
        refused(f"{header}.{b64(claims)}.{signature}", key, "signature does not verify")

    def test_expired(self, key: Ed25519PrivateKey) -> None:
        refused(device_token(key), key, "expired", now=NOW + TTL + CLOCK_LEEWAY_S + 1)

    def test_not_yet_valid(self, key: Ed25519PrivateKey) -> None:
        refused(device_token(key), key, "not valid yet", now=NOW - CLOCK_LEEWAY_S - 60)

    def test_wrong_audience(self, key: Ed25519PrivateKey) -> None:
        refused(device_token(key, audience="another-relay"), key, "another audience")

    @pytest.mark.parametrize(("kind", "minted"), [("host", device_token), ("device", host_token)])
    def test_wrong_kind(self, key: Ed25519PrivateKey, kind: str, minted: Any) -> None:
        refused(minted(key), key, "token cannot be used here", kind=kind)

    @pytest.mark.parametrize(
        ("change", "match"),
        [
            ({"kind": "admin"}, "unknown token kind"),
            ({"kind": None}, "unknown token kind"),
            ({"jti": None}, "lacks the 'jti' claim"),
            ({"exp": None}, "lacks the 'exp' claim"),
            ({"aud": None}, "lacks the 'aud' claim"),
            ({"tenant": 7}, "'tenant' is missing or not a valid id"),
            ({"tenant": "acme\n"}, "'tenant' is missing or not a valid id"),
            ({"device_id": None}, "'device_id' is missing"),
            ({"exp": "tomorrow"}, "malformed|not a number"),
            ({"iat": True}, "malformed|not a number"),
        ],
    )
    def test_malformed_device_claims(
        self, key: Ed25519PrivateKey, change: dict[str, Any], match: str
    ) -> None:
        payload = jwt.decode(device_token(key), options={"verify_signature": False})
        payload = {k: v for k, v in (payload | change).items() if v is not None}
        refused(raw_token(key, payload), key, match)

    @pytest.mark.parametrize(
        "tenants", [[], "acme", ["acme", 3], ["a/b"], [f"t{i}" for i in range(257)]]
    )
    def test_malformed_host_tenants(self, key: Ed25519PrivateKey, tenants: Any) -> None:
        payload = jwt.decode(host_token(key), options={"verify_signature": False})
        refused(raw_token(key, payload | {"tenants": tenants}), key, "tenant")

    def test_no_keys(self, key: Ed25519PrivateKey) -> None:
        payload = jwt.decode(device_token(key), options={"verify_signature": False})
        with pytest.raises(Unauthenticated, match="no key"):
            verify_token(jwt.encode(payload, key, algorithm="EdDSA"), [], AUD, NOW)


class TestAuthorize:
    """A host serves only its tenants; a device acts only as itself."""

    def test_host(self, key: Ed25519PrivateKey) -> None:
        claims = verify_token(host_token(key), [key.public_key()], AUD, NOW)
        authorize(claims, "acme")
        authorize(claims, "globex")
        with pytest.raises(Forbidden, match="may not serve tenant 'initech'") as info:
            authorize(claims, "initech")
        assert info.value.code == "relay.forbidden"

    def test_device(self, key: Ed25519PrivateKey) -> None:
        claims = verify_token(device_token(key), [key.public_key()], AUD, NOW)
        authorize(claims, "acme", "laptop-1")
        with pytest.raises(Forbidden, match="tenant"):
            authorize(claims, "globex", "laptop-1")
        with pytest.raises(Forbidden, match="device"):
            authorize(claims, "acme", "laptop-2")


class TestMint:
    """Minting refuses what verification would refuse."""

    @pytest.mark.parametrize(
        "changes",
        [{"tenant": "a b"}, {"device_id": ""}, {"ttl": 0}, {"ttl": -5}],
    )
    def test_device_refuses(self, key: Ed25519PrivateKey, changes: dict[str, Any]) -> None:
        with pytest.raises(ValueError, match=r"not a valid id|ttl must be positive"):
            device_token(key, **changes)

    @pytest.mark.parametrize(
        "tenants",
        [[], ["ok", "not ok"], [f"t{i}" for i in range(257)]],
        ids=["none", "bad", "many"],
    )
    def test_host_refuses(self, key: Ed25519PrivateKey, tenants: list[str]) -> None:
        with pytest.raises(ValueError, match="tenant"):
            host_token(key, tenants=tenants)

    def test_largest_host_token_still_verifies(self, key: Ed25519PrivateKey) -> None:
        tenants = [f"{i:03d}" + "t" * 124 for i in range(256)]  # 256 ids of 127 characters
        with pytest.raises(ValueError, match="exceeds"):
            host_token(key, tenants=tenants)
        fitting = tenants[:64]
        claims = verify_token(host_token(key, tenants=fitting), [key.public_key()], AUD, NOW)
        assert isinstance(claims, HostClaims)
        assert len(claims.tenants) == 64

    def test_header(self, key: Ed25519PrivateKey) -> None:
        header = jwt.get_unverified_header(device_token(key))
        assert header["alg"] == "EdDSA"
        assert header["kid"] == key_id(key.public_key())


class TestKeyFiles:
    """Keys round-trip through PEM; the private key file is 0600; bad files are named."""

    def test_round_trip_and_mode(self, tmp_path: Path) -> None:
        key = generate_signing_key()
        old = os.umask(0)
        try:
            save_private_key(key, tmp_path / "signing.key")
            save_public_key(key.public_key(), tmp_path / "signing.pub")
        finally:
            os.umask(old)
        assert stat.S_IMODE((tmp_path / "signing.key").stat().st_mode) == 0o600
        loaded = load_private_key(tmp_path / "signing.key")
        public = load_public_key(tmp_path / "signing.pub")
        token = mint_device_token(loaded, tenant="t", device_id="d", audience=AUD, ttl=60)
        assert isinstance(verify_token(token, [public], AUD), DeviceClaims)

    def test_bad_files(self, tmp_path: Path) -> None:
        (tmp_path / "garbage").write_text("hello")
        ec_key = ec.generate_private_key(ec.SECP256R1())
        from cryptography.hazmat.primitives import serialization

        (tmp_path / "ec.key").write_bytes(
            ec_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        (tmp_path / "ec.pub").write_bytes(
            ec_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        for path in ("missing", "garbage"):
            with pytest.raises(KeyFileError, match=path):
                load_private_key(tmp_path / path)
            with pytest.raises(KeyFileError, match=path):
                load_public_key(tmp_path / path)
        with pytest.raises(KeyFileError, match="not an Ed25519 private key"):
            load_private_key(tmp_path / "ec.key")
        with pytest.raises(KeyFileError, match="not an Ed25519 public key"):
            load_public_key(tmp_path / "ec.pub")


class TestCommandLine:
    """``token_main`` makes keys and prints tokens that verify."""

    def test_keygen_then_mint(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        private, public = tmp_path / "k", tmp_path / "k.pub"
        assert token_main(["keygen", "--private", str(private), "--public", str(public)]) == 0
        capsys.readouterr()
        keys = [load_public_key(public)]
        assert (
            token_main(
                [
                    "device",
                    "--key",
                    str(private),
                    "--tenant",
                    "acme",
                    "--device-id",
                    "d1",
                    "--audience",
                    AUD,
                    "--ttl",
                    "60",
                ]
            )
            == 0
        )
        device = verify_token(capsys.readouterr().out.strip(), keys, AUD, time.time())
        assert isinstance(device, DeviceClaims)
        assert device.device_id == "d1"
        assert (
            token_main(
                [
                    "host",
                    "--key",
                    str(private),
                    "--tenant",
                    "acme",
                    "--tenant",
                    "globex",
                    "--host-id",
                    "h1",
                    "--audience",
                    AUD,
                ]
            )
            == 0
        )
        host = verify_token(capsys.readouterr().out.strip(), keys, AUD, time.time())
        assert isinstance(host, HostClaims)
        assert host.tenants == frozenset({"acme", "globex"})

    def test_bad_key_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        code = token_main(
            ["device", "--key", str(tmp_path / "nope"), "--tenant", "a", "--device-id", "d"]
        )
        assert code == 1
        assert "nope" in capsys.readouterr().err

    def test_bad_tenant_is_a_usage_error(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        token_main(["keygen", "--private", str(tmp_path / "k"), "--public", str(tmp_path / "p")])
        with pytest.raises(SystemExit) as info:
            token_main(
                ["device", "--key", str(tmp_path / "k"), "--tenant", "a b", "--device-id", "d"]
            )
        assert info.value.code == 2
        assert "not a valid id" in capsys.readouterr().err
