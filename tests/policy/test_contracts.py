"""The policy contracts: bundle schema fixtures, the error catalog, the wire and audit fields."""

from __future__ import annotations

import json
import time
from typing import Any

import jsonschema
import pytest

from actors.policy import bundle_validator, schema_problem, sign_bundle, verify_bundle
from actors.relay import Caps as RelayCaps
from actors.relay import ToolCall, decode_frame, encode_frame
from contracts import CONTRACTS_ROOT, error_catalog, load_json
from tests._policy import control_plane_key

EXAMPLES = CONTRACTS_ROOT / "examples" / "policy"


def cases(validity: str) -> list[dict[str, Any]]:
    data = json.loads((EXAMPLES / f"bundle.{validity}.json").read_text(encoding="utf-8"))
    found: list[dict[str, Any]] = data["cases"]
    return found


class TestBundleSchema:
    """The schema is draft 2020-12, refers to the redaction section, and sorts the fixtures."""

    def test_schema_file(self) -> None:
        schema = load_json("api/policy/v1/bundle.schema.json")
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["properties"]["redaction"] == {"$ref": "redaction.schema.json"}
        assert schema["additionalProperties"] is False

    @pytest.mark.parametrize("case", cases("valid"), ids=lambda c: c["name"])
    def test_valid(self, case: dict[str, Any]) -> None:
        assert list(bundle_validator().iter_errors(case["value"])) == []
        assert schema_problem(case["value"]) is None
        # And it signs and verifies as the claims of a real bundle.
        document = {k: v for k, v in case["value"].items() if k not in ("v", "iat", "nbf", "exp")}
        jws = sign_bundle(document, control_plane_key(), ttl_s=600, now=time.time())
        assert verify_bundle(jws, keys=[control_plane_key().public_key()], tenant=document["aud"])

    @pytest.mark.parametrize("case", cases("invalid"), ids=lambda c: c["name"])
    def test_invalid(self, case: dict[str, Any]) -> None:
        assert list(bundle_validator().iter_errors(case["value"])), case["why"]
        assert schema_problem(case["value"]) is not None, case["why"]

    def test_trailing_newline_in_an_id_is_refused(self) -> None:
        value = cases("valid")[0]["value"] | {"aud": "acme\n"}
        assert schema_problem(value) is not None


class TestCatalogAndWire:
    """Codes are in the catalog; tool.call carries the bundle; receipts carry the decision."""

    @pytest.mark.parametrize(
        "code",
        [
            "unauthenticated",
            "forbidden",
            "policy.invalid",
            "policy.missing",
            "policy.expired",
            "policy.bad_signature",
            "tool.denied",
        ],
    )
    def test_codes(self, code: str) -> None:
        assert error_catalog()[code].retryable in (True, False)
        if code in ("unauthenticated", "forbidden", "policy.invalid"):
            assert error_catalog()[code].retryable is False

    def test_tool_call_carries_the_policy(self) -> None:
        call = ToolCall(
            call_id="c1",
            tenant="acme",
            device_id="d1",
            tool="fs.read",
            version="1.0.0",
            args={"path": "a"},
            deadline_ms=1000,
            caps=RelayCaps(timeout_ms=1000, max_bytes=10),
            policy="a.b.c",
        )
        assert decode_frame(encode_frame(call), max_bytes=1 << 20) == call
        too_long = json.loads(encode_frame(call)) | {"policy": "x" * 65537}
        with pytest.raises(Exception, match="policy"):
            decode_frame(json.dumps(too_long), max_bytes=1 << 20)

    def test_receipt_fields(self) -> None:
        receipt = load_json("api/audit/v1/record.schema.json")["$defs"]["toolReceipt"]
        for field in ("policy_id", "policy_revision", "decision", "rule_id"):
            assert field in receipt["properties"]
        assert "policy_revision" not in receipt["required"], "additive: older receipts stay valid"
