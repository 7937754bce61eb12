"""The fs.read v1 contract files: schemas, manifest and the fixture sets run through them."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from contracts import CONTRACTS_ROOT, load_json

TOOL_DIR = "api/mcp/tools/fs.read/v1"
EXAMPLES = CONTRACTS_ROOT / "examples" / "fs.read"


def _cases(kind: str, validity: str) -> list[dict[str, Any]]:
    data = json.loads((EXAMPLES / f"{kind}.{validity}.json").read_text(encoding="utf-8"))
    cases: list[dict[str, Any]] = data["cases"]
    return cases


def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = load_json(f"{TOOL_DIR}/{name}")
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def _ids(cases: list[dict[str, Any]]) -> list[str]:
    return [case["name"] for case in cases]


class TestSchemas:
    """The schema files are valid draft 2020-12 and say what the issue asks."""

    @pytest.mark.parametrize("name", ["args.schema.json", "result.schema.json"])
    def test_draft_2020_12(self, name: str) -> None:
        schema = load_json(f"{TOOL_DIR}/{name}")
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["additionalProperties"] is False

    def test_args_fields(self) -> None:
        schema = load_json(f"{TOOL_DIR}/args.schema.json")
        assert set(schema["properties"]) == {"path", "offset", "maxBytes", "encoding"}
        assert schema["required"] == ["path"]
        assert schema["properties"]["encoding"]["enum"] == ["utf-8", "base64"]

    def test_result_fields(self) -> None:
        schema = load_json(f"{TOOL_DIR}/result.schema.json")
        fields = {"content", "encoding", "bytesReturned", "fileSize", "truncated", "sha256"}
        assert set(schema["properties"]) == fields
        assert set(schema["required"]) == fields


class TestManifest:
    """manifest.json names the tool, its semver version, read-only flag and default caps."""

    def test_manifest_matches_its_schema(self) -> None:
        manifest = load_json(f"{TOOL_DIR}/manifest.json")
        schema = load_json("api/mcp/tools/manifest.schema.json")
        jsonschema.Draft202012Validator.check_schema(schema)
        jsonschema.Draft202012Validator(schema).validate(manifest)

    def test_manifest_values(self) -> None:
        manifest = load_json(f"{TOOL_DIR}/manifest.json")
        assert manifest["name"] == "fs.read"
        assert manifest["version"] == "1.0.0"
        assert manifest["readOnly"] is True
        assert manifest["defaultCaps"]["timeoutMs"] > 0
        assert manifest["defaultCaps"]["maxBytes"] > 0
        for key in ("argsSchema", "resultSchema"):
            assert (CONTRACTS_ROOT / TOOL_DIR / manifest[key]).is_file()

    def test_default_max_bytes_is_allowed_by_args(self) -> None:
        manifest = load_json(f"{TOOL_DIR}/manifest.json")
        args = load_json(f"{TOOL_DIR}/args.schema.json")
        assert manifest["defaultCaps"]["maxBytes"] <= args["properties"]["maxBytes"]["maximum"]

    def test_bad_manifest_is_refused(self) -> None:
        manifest = dict(load_json(f"{TOOL_DIR}/manifest.json"), version="1.0")
        schema = load_json("api/mcp/tools/manifest.schema.json")
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.Draft202012Validator(schema).validate(manifest)


class TestArgsFixtures:
    """Every valid args fixture passes the schema; every invalid one fails it."""

    @pytest.mark.parametrize("case", _cases("args", "valid"), ids=_ids(_cases("args", "valid")))
    def test_valid(self, case: dict[str, Any]) -> None:
        _validator("args.schema.json").validate(case["value"])

    @pytest.mark.parametrize("case", _cases("args", "invalid"), ids=_ids(_cases("args", "invalid")))
    def test_invalid(self, case: dict[str, Any]) -> None:
        assert case["why"], "every invalid fixture says why it is invalid"
        errors = list(_validator("args.schema.json").iter_errors(case["value"]))
        assert errors, f"{case['name']} should be invalid: {case['why']}"


class TestResultFixtures:
    """Every valid result fixture passes the schema; every invalid one fails it."""

    @pytest.mark.parametrize("case", _cases("result", "valid"), ids=_ids(_cases("result", "valid")))
    def test_valid(self, case: dict[str, Any]) -> None:
        _validator("result.schema.json").validate(case["value"])

    @pytest.mark.parametrize(
        "case", _cases("result", "invalid"), ids=_ids(_cases("result", "invalid"))
    )
    def test_invalid(self, case: dict[str, Any]) -> None:
        assert case["why"], "every invalid fixture says why it is invalid"
        errors = list(_validator("result.schema.json").iter_errors(case["value"]))
        assert errors, f"{case['name']} should be invalid: {case['why']}"

    def test_fixture_sets_are_not_empty(self) -> None:
        for kind in ("args", "result"):
            for validity in ("valid", "invalid"):
                assert len(_cases(kind, validity)) >= 4
