"""The BFF's pure parts: caller-token checks, JWKS keys, the OpenAPI document, SSE text."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from pathlib import Path
from typing import Any

import jsonschema
import jwt
import pytest

from actors.policy import CallerUnauthenticated, mint_caller_token
from actors.relay import generate_signing_key, key_id
from contracts.generated import agent_pb2
from supervisors.bff import (
    CallerVerifier,
    jwks_of,
    keys_from_jwks,
    openapi_document,
)
from supervisors.bff._events import sse_event
from supervisors.bff._openai import conversation_text
from supervisors.bff._openapi import check_body
from supervisors.bff._problems import Problem

from ._support import make_keys, parse_sse

NOW = 1_800_000_000.0


def _verifier(public: Path, **kw: Any) -> CallerVerifier:
    values: dict[str, Any] = {"audience": "zl-host", "max_ttl_s": 3600, "leeway_s": 30}
    values.update(kw)
    return CallerVerifier(public_keys=[public], **values)


class TestCallerTokens:
    """A token proves tenant, user and devices only when every check passes."""

    def test_a_good_token(self, tmp_path: Path) -> None:
        keys = make_keys(tmp_path)
        token = keys.token(devices=("laptop-1", "phone"), now=NOW)
        caller = _verifier(keys.public).verify(token, now=NOW + 10)
        assert (caller.tenant, caller.user) == ("acme", "u1")
        assert caller.may_use("laptop-1")
        assert not caller.may_use("laptop-2")
        assert caller.may_use("")
        assert caller.default_device() == ""
        assert caller.token == token
        assert caller.key_id == key_id(keys.key.public_key())

    @pytest.mark.parametrize(
        ("change", "reason"),
        [
            ({"exp_offset": -100}, "expired"),
            ({"audience": "zl-relay"}, "another audience"),
            ({"ttl_s": 7200}, "longer than"),
        ],
    )
    def test_refusals(self, tmp_path: Path, change: dict[str, Any], reason: str) -> None:
        keys = make_keys(tmp_path)
        offset = change.pop("exp_offset", 0)
        token = keys.token(now=NOW + offset - change.get("ttl_s", 600), **change)
        with pytest.raises(CallerUnauthenticated, match=reason):
            _verifier(keys.public).verify(token, now=NOW)

    def test_forgeries(self, tmp_path: Path) -> None:
        keys = make_keys(tmp_path)
        verifier = _verifier(keys.public)
        claims = {"iss": "x", "aud": "zl-host", "sub": "u", "tenant": "t", "devices": ["*"]}
        claims |= {"iat": int(NOW), "exp": int(NOW) + 60, "jti": "j"}
        kid = key_id(keys.key.public_key())
        unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": kid})
        with pytest.raises(CallerUnauthenticated, match="unsigned"):
            verifier.verify(unsigned, now=NOW)
        public_pem = keys.public.read_bytes()
        # HS256 with the public key as the HMAC secret (PyJWT refuses to make one: by hand).
        signing_input = ".".join(
            jwt.utils.base64url_encode(json.dumps(part).encode()).decode()
            for part in ({"alg": "HS256", "typ": "JWT", "kid": kid}, claims)
        )
        mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
        hs256 = signing_input + "." + jwt.utils.base64url_encode(mac).decode()
        with pytest.raises(CallerUnauthenticated, match="algorithm"):
            verifier.verify(hs256, now=NOW)
        other = generate_signing_key()
        wrong_key = jwt.encode(claims, other, algorithm="EdDSA", headers={"kid": kid})
        with pytest.raises(CallerUnauthenticated, match="signature"):
            verifier.verify(wrong_key, now=NOW)
        unknown = jwt.encode(
            claims, other, algorithm="EdDSA", headers={"kid": key_id(other.public_key())}
        )
        with pytest.raises(CallerUnauthenticated, match="unknown key"):
            verifier.verify(unknown, now=NOW)
        good = keys.token(now=NOW)
        head, body, signature = good.split(".")
        tampered = json.loads(jwt.utils.base64url_decode(body))
        tampered["tenant"] = "someone-else"
        forged_body = jwt.utils.base64url_encode(json.dumps(tampered).encode()).decode()
        with pytest.raises(CallerUnauthenticated, match="signature"):
            verifier.verify(f"{head}.{forged_body}.{signature}", now=NOW)
        with pytest.raises(CallerUnauthenticated, match="Bearer"):
            verifier.verify_header("Basic abc")
        with pytest.raises(CallerUnauthenticated, match="no bearer"):
            verifier.verify_header(None)
        for bad_devices in ("*", [1], ["x" * 300]):
            claims_bad = {**claims, "devices": bad_devices}
            token = jwt.encode(claims_bad, keys.key, algorithm="EdDSA", headers={"kid": kid})
            with pytest.raises(CallerUnauthenticated, match="devices"):
                verifier.verify(token, now=NOW)

    def test_a_remembered_token_still_expires(self, tmp_path: Path) -> None:
        keys = make_keys(tmp_path)
        verifier = _verifier(keys.public)
        token = keys.token(ttl_s=60, now=NOW)
        assert verifier.verify(token, now=NOW).user == "u1"
        with pytest.raises(CallerUnauthenticated, match="expired"):
            verifier.verify(token, now=NOW + 120)

    def test_jwks_rotation(self, tmp_path: Path) -> None:
        first, second = generate_signing_key(), generate_signing_key()
        jwks = tmp_path / "jwks.json"
        jwks.write_text(jwks_of([first.public_key()]))
        verifier = CallerVerifier(jwks_file=jwks, audience="zl-host", max_ttl_s=3600, leeway_s=30)
        one = mint_caller_token(first, tenant="t", user="u", devices=["*"], ttl_s=600)
        two = mint_caller_token(second, tenant="t", user="u", devices=["*"], ttl_s=600)
        assert verifier.verify(one).tenant == "t"
        with pytest.raises(CallerUnauthenticated, match="unknown key"):
            verifier.verify(two)
        # The operator rotates: the new key is added (a newer file), the old one removed.
        jwks.write_text(jwks_of([second.public_key()]))
        later = time.time() + 5
        os.utime(jwks, (later, later))
        assert verifier.verify(two).tenant == "t"
        assert set(keys_from_jwks(jwks.read_bytes())) == {key_id(second.public_key())}

    def test_a_jwks_key_under_another_kid_is_refused(self) -> None:
        key = generate_signing_key()
        document = json.loads(jwks_of([key.public_key()]))
        document["keys"][0]["kid"] = "impostor"
        from actors.relay import KeyFileError

        with pytest.raises(KeyFileError, match="not this key's id"):
            keys_from_jwks(json.dumps(document).encode())


class TestOpenApiDocument:
    """The committed document is valid OpenAPI 3.1 JSON Schema, and the server reads it."""

    def test_every_schema_is_valid_2020_12(self) -> None:
        document = openapi_document()
        assert document["openapi"].startswith("3.1")
        for name, schema in document["components"]["schemas"].items():
            jsonschema.Draft202012Validator.check_schema(schema)
            assert name

    @pytest.mark.parametrize(
        ("schema", "body", "ok"),
        [
            ("CreateSession", {}, True),
            ("CreateSession", {"device_id": "d", "limits": {"max_turn_ms": 5}}, True),
            ("CreateSession", {"limits": {"max_turn_ms": -1}}, False),
            ("CreateSession", {"tenant": "evil"}, False),
            ("ChatStreamRequest", {"session_id": "s", "message": "hi"}, True),
            ("ChatStreamRequest", {"session_id": "s", "message": ""}, False),
            ("ChatCompletionRequest", {"model": "m", "messages": [{"role": "user"}]}, True),
            ("ChatCompletionRequest", {"model": "m", "messages": []}, False),
            ("ChatCompletionRequest", {"model": "m", "messages": [{"role": "robot"}]}, False),
        ],
    )
    def test_the_server_and_a_2020_12_validator_agree(
        self, schema: str, body: Any, ok: bool
    ) -> None:
        components = openapi_document()["components"]
        reference = jsonschema.Draft202012Validator(
            {"$ref": f"#/components/schemas/{schema}", "components": components}
        )
        assert reference.is_valid(body) is ok
        if ok:
            check_body(schema, body)
        else:
            with pytest.raises(Problem) as refused:
                check_body(schema, body)
            assert refused.value.code == "invalid_request"
            assert refused.value.detail.startswith("body")


class TestWireText:
    """SSE messages and the OpenAI transcript."""

    def test_sse_event_round_trip(self) -> None:
        event = agent_pb2.ChatEvent(session_id="s", turn_id="t1", seq=7)
        event.tool_call_delta.call_id = "call_1"
        event.tool_call_delta.status = "ok"
        event.tool_call_delta.result_json = '{"content": "line one\\nline two"}'
        event.tool_call_delta.receipt_id = "rcpt_1"
        [(name, event_id, data)] = parse_sse(sse_event(event).decode())
        assert (name, event_id) == ("tool.call.delta", 7)
        assert data["result"] == {"content": "line one\nline two"}
        assert data["receipt_id"] == "rcpt_1"

    def test_conversation_text(self) -> None:
        assert conversation_text([{"role": "user", "content": "hi"}]) == "hi"
        text = conversation_text(
            [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "read a.txt"}]},
            ]
        )
        assert text.endswith("\n\nread a.txt")
        assert "system: Be brief." in text
        with pytest.raises(Problem):
            conversation_text([{"role": "assistant", "content": "hello"}])


class TestCommandLine:
    """A bad setting stops ``zl bff`` with one line naming it, never a traceback."""

    @pytest.mark.parametrize(
        ("env", "says"),
        [
            ({}, "http: TLS is required"),
            ({"ZL_HTTP__INSECURE_DEV_PLAINTEXT": "true"}, "auth: no keys"),
            ({"ZL_HTTP__PORT": "abc"}, "config.http.port"),
            (
                {"ZL_HTTP__INSECURE_DEV_PLAINTEXT": "true", "ZL_AUTH__PUBLIC_KEYS": "/nope.pub"},
                "auth: cannot read public key",
            ),
            (
                {"ZL_HTTP__INSECURE_DEV_PLAINTEXT": "true", "ZL_HOST__TARGET": "no-port"},
                "host.target",
            ),
        ],
    )
    def test_bad_settings(self, tmp_path: Path, env: dict[str, str], says: str) -> None:
        import subprocess
        import sys

        clean = {k: v for k, v in os.environ.items() if not k.startswith("ZL_")}
        result = subprocess.run(
            [sys.executable, "-m", "supervisors", "bff"],
            env={**clean, **env},
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert result.returncode == 2
        assert says in result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
