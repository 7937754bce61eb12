"""Bundle verification: every way a bundle is refused, each with its typed reason and code."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from actors.policy import (
    BUNDLE_TYP,
    MAX_BUNDLE_CHARS,
    Accepted,
    BundleRejected,
    RejectReason,
    bundle_digest,
    sign_bundle,
    verify_bundle,
)
from actors.relay import generate_signing_key, key_id
from tests._policy import bundle_document, control_plane_key, signed_bundle

KEY = control_plane_key()
KEYS = [KEY.public_key()]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    return {"v": 1, "iat": now, "nbf": now, "exp": now + 600, **bundle_document(), **overrides}


def forge(header: dict[str, object], payload: dict[str, object] | bytes, signature: bytes) -> str:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return f"{b64(json.dumps(header).encode())}.{b64(body)}.{b64(signature)}"


def signed_raw(payload: bytes, *, key: object = KEY) -> str:
    """A correctly signed JWS over arbitrary payload bytes (PyJWT, EdDSA)."""
    headers = {"kid": key_id(key.public_key()), "typ": BUNDLE_TYP}  # type: ignore[attr-defined]
    return jwt.PyJWS().encode(payload, key, algorithm="EdDSA", headers=headers)  # type: ignore[arg-type]


def rejected(jws: str, **kwargs: object) -> BundleRejected:
    args: dict[str, object] = {"keys": KEYS, "tenant": "acme"}
    args.update(kwargs)
    with pytest.raises(BundleRejected) as caught:
        verify_bundle(jws, **args)  # type: ignore[arg-type]
    return caught.value


class TestAccepted:
    """A good bundle verifies and says what it holds."""

    def test_good_bundle(self) -> None:
        jws = signed_bundle(defaults={"caps": {"timeoutMs": 100, "maxBytes": 10}})
        bundle = verify_bundle(jws, keys=KEYS, tenant="acme")
        assert (bundle.policy_id, bundle.revision, bundle.tenant) == ("test-policy", 1, "acme")
        assert bundle.kid == key_id(KEY.public_key())
        assert bundle.jws == jws
        assert bundle.digest == bundle_digest(jws)
        assert bundle.default_caps is not None
        assert bundle.default_caps.max_bytes == 10
        assert dict(bundle.redaction) == {}

    def test_redaction_section_is_a_read_only_mapping(self) -> None:
        section = {"classes": {"email": True}, "pseudonyms": True}
        bundle = verify_bundle(signed_bundle(redaction=section), keys=KEYS, tenant="acme")
        assert bundle.redaction["classes"]["email"] is True
        with pytest.raises(TypeError):
            bundle.redaction["pseudonyms"] = False  # type: ignore[index]

    def test_two_trusted_keys_for_rotation(self) -> None:
        new = generate_signing_key()
        for key in (KEY, new):
            jws = signed_bundle(key=key)
            assert verify_bundle(jws, keys=[KEY.public_key(), new.public_key()], tenant="acme")

    def test_the_same_bundle_again_is_not_a_rollback(self) -> None:
        jws = signed_bundle(revision=4)
        last = Accepted(revision=4, digest=bundle_digest(jws))
        assert verify_bundle(jws, keys=KEYS, tenant="acme", last=last).revision == 4


class TestRejected:
    """Each refusal has its reason, a catalog code and a message; nothing of it is trusted."""

    def test_unsigned_empty_signature(self) -> None:
        head, body, _ = signed_bundle().split(".")
        error = rejected(f"{head}.{body}.")
        assert error.reason is RejectReason.UNSIGNED
        assert error.code == "policy.bad_signature"

    def test_alg_none(self) -> None:
        error = rejected(forge({"alg": "none", "typ": BUNDLE_TYP}, claims(), b""))
        assert error.reason is RejectReason.UNSIGNED

    def test_alg_none_with_a_signature_part(self) -> None:
        error = rejected(forge({"alg": "none", "typ": BUNDLE_TYP}, claims(), b"x"))
        assert error.reason is RejectReason.UNSIGNED

    def test_hs256_keyed_with_the_public_key(self) -> None:
        public_pem = KEY.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        header = {"alg": "HS256", "typ": BUNDLE_TYP, "kid": key_id(KEY.public_key())}
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims()).encode())}"
        mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
        error = rejected(f"{signing_input}.{b64(mac)}")
        assert error.reason is RejectReason.ALGORITHM
        assert error.code == "policy.bad_signature"

    def test_unknown_kid(self) -> None:
        error = rejected(signed_bundle(key=generate_signing_key()))
        assert error.reason is RejectReason.UNKNOWN_KID

    def test_key_no_longer_trusted(self) -> None:
        old, new = generate_signing_key(), generate_signing_key()
        jws = signed_bundle(key=old)
        assert verify_bundle(jws, keys=[old.public_key(), new.public_key()], tenant="acme")
        # The old key is rotated out: what it signed is refused from now on.
        error = rejected(jws, keys=[new.public_key()])
        assert error.reason is RejectReason.UNKNOWN_KID

    def test_key_id_of_a_trusted_key_with_another_key_signature(self) -> None:
        intruder = generate_signing_key()
        head = {"alg": "EdDSA", "typ": BUNDLE_TYP, "kid": key_id(KEY.public_key())}
        signing_input = f"{b64(json.dumps(head).encode())}.{b64(json.dumps(claims()).encode())}"
        error = rejected(f"{signing_input}.{b64(intruder.sign(signing_input.encode()))}")
        assert error.reason is RejectReason.BAD_SIGNATURE

    def test_tampered_payload(self) -> None:
        head, _, signature = signed_bundle().split(".")
        widened = claims(
            rules=[{"id": "x", "tool": "*", "versions": "*", "effect": "allow", "devices": ["*"]}]
        )
        error = rejected(f"{head}.{b64(json.dumps(widened).encode())}.{signature}")
        assert error.reason is RejectReason.BAD_SIGNATURE

    def test_expired(self) -> None:
        jws = signed_bundle(ttl_s=60, now=time.time() - 3600)
        error = rejected(jws, clock_skew_s=30)
        assert error.reason is RejectReason.EXPIRED
        assert error.code == "policy.expired"

    def test_expired_within_skew_still_holds(self) -> None:
        jws = signed_bundle(ttl_s=60, now=time.time() - 70)
        assert verify_bundle(jws, keys=KEYS, tenant="acme", clock_skew_s=30)

    def test_not_yet_valid(self) -> None:
        jws = signed_bundle(ttl_s=60, now=time.time() + 3600)
        error = rejected(jws)
        assert error.reason is RejectReason.NOT_YET_VALID
        assert error.code == "policy.invalid"

    def test_another_tenants_bundle(self) -> None:
        error = rejected(signed_bundle("globex"))
        assert error.reason is RejectReason.WRONG_TENANT

    def test_ttl_longer_than_allowed(self) -> None:
        error = rejected(signed_bundle(ttl_s=3600), max_ttl_s=900)
        assert error.reason is RejectReason.TTL_TOO_LONG

    @pytest.mark.parametrize("revision", [3, 5])
    def test_lower_or_equal_revision(self, revision: int) -> None:
        accepted = signed_bundle(revision=5, policy_id="first")
        last = Accepted(revision=5, digest=bundle_digest(accepted))
        error = rejected(signed_bundle(revision=revision, policy_id="other"), last=last)
        assert error.reason is RejectReason.ROLLBACK

    def test_replayed_older_bundle_with_a_valid_signature(self) -> None:
        older = signed_bundle(revision=1)
        newer = signed_bundle(revision=2)
        last = verify_bundle(newer, keys=KEYS, tenant="acme").accepted
        # Still within its validity window and correctly signed: refused all the same.
        assert rejected(older, last=last).reason is RejectReason.ROLLBACK

    def test_over_the_size_limit(self) -> None:
        padding = [
            {
                "id": f"r{i}",
                "tool": "fs.read",
                "versions": "*",
                "effect": "deny",
                "devices": ["*"],
                "paths": ["x" * 500] * 8,
            }
            for i in range(40)
        ]
        big = signed_raw(json.dumps(claims(rules=padding)).encode())
        assert len(big) > MAX_BUNDLE_CHARS
        assert rejected(big).reason is RejectReason.TOO_LARGE

    def test_signing_refuses_an_oversized_bundle(self) -> None:
        padding = [
            {
                "id": f"r{i}",
                "tool": "fs.read",
                "versions": "*",
                "effect": "deny",
                "devices": ["*"],
                "paths": ["x" * 500] * 8,
            }
            for i in range(40)
        ]
        with pytest.raises(BundleRejected) as caught:
            sign_bundle(bundle_document(rules=padding), KEY, ttl_s=60)
        assert caught.value.reason is RejectReason.TOO_LARGE

    def test_duplicate_json_keys(self) -> None:
        body = json.dumps(claims())[:-1] + ', "revision": 99}'
        assert rejected(signed_raw(body.encode())).reason is RejectReason.JSON

    def test_integer_past_2_53(self) -> None:
        body = json.dumps(claims(revision=2**63)).encode()
        assert rejected(signed_raw(body)).reason is RejectReason.JSON

    def test_deep_nesting(self) -> None:
        body = json.dumps(claims(redaction={"classes": {}})).encode()
        nested = body[:-1] + b', "x": ' + b"[" * 100 + b"]" * 100 + b"}"
        assert rejected(signed_raw(nested)).reason is RejectReason.JSON

    def test_schema(self) -> None:
        body = json.dumps(claims(revision="7")).encode()
        error = rejected(signed_raw(body))
        assert error.reason is RejectReason.SCHEMA
        assert "revision" in error.message

    @pytest.mark.parametrize(
        "rule",
        [
            {
                "id": "r",
                "tool": "fs.read",
                "versions": "not a range",
                "effect": "allow",
                "devices": ["*"],
            },
            {
                "id": "r",
                "tool": "fs.read",
                "versions": "*",
                "effect": "allow",
                "devices": ["*"],
                "paths": ["../x"],
            },
            {
                "id": "r",
                "tool": "fs.read",
                "versions": "*",
                "effect": "allow",
                "devices": ["*"],
                "paths": ["/etc/**"],
            },
            {
                "id": "r",
                "tool": "fs.read",
                "versions": "*",
                "effect": "allow",
                "devices": ["*"],
                "paths": ["[ab]"],
            },
            {
                "id": "r",
                "tool": "fs.read",
                "versions": "*",
                "effect": "allow",
                "devices": ["*"],
                "paths": ["a**"],
            },
            {
                "id": "r",
                "tool": "net.fetch",
                "versions": "*",
                "effect": "allow",
                "devices": ["*"],
                "egress": ["no-port"],
            },
            {
                "id": "r",
                "tool": "fs.read",
                "versions": "*",
                "effect": "allow",
                "devices": ["*", "d1"],
            },
            {
                "id": "default-deny",
                "tool": "fs.read",
                "versions": "*",
                "effect": "allow",
                "devices": ["*"],
            },
        ],
    )
    def test_rules_that_do_not_compile(self, rule: dict[str, object]) -> None:
        body = json.dumps(claims(rules=[rule])).encode()
        assert rejected(signed_raw(body)).reason is RejectReason.INVALID

    def test_duplicate_rule_ids(self) -> None:
        rule = {"id": "r", "tool": "fs.read", "versions": "*", "effect": "allow", "devices": ["*"]}
        body = json.dumps(claims(rules=[rule, rule])).encode()
        assert rejected(signed_raw(body)).reason is RejectReason.INVALID

    @pytest.mark.parametrize(
        "header",
        [
            {"alg": "EdDSA", "typ": BUNDLE_TYP},
            {"alg": "EdDSA", "typ": "JWT", "kid": "x"},
            {"alg": "EdDSA", "typ": BUNDLE_TYP, "kid": "x", "crit": ["b64"], "b64": False},
            {"alg": "EdDSA", "typ": BUNDLE_TYP, "kid": "x", "jwk": {"kty": "OKP"}},
        ],
    )
    def test_headers_that_are_refused(self, header: dict[str, object]) -> None:
        error = rejected(forge(header, claims(), b"sig"))
        assert error.reason is RejectReason.HEADER

    def test_a_caller_token_is_not_a_bundle(self) -> None:
        from actors.policy import mint_caller_token

        token = mint_caller_token(KEY, tenant="acme", user="u", devices=["*"], ttl_s=60)
        assert rejected(token).reason is RejectReason.HEADER

    @pytest.mark.parametrize("text", ["", "a.b", "a.b.c.d", "!!.??.**", 42])
    def test_not_a_jws(self, text: object) -> None:
        assert rejected(text).reason is RejectReason.MALFORMED  # type: ignore[arg-type]
