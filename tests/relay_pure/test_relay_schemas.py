"""The relay's JSON Schemas: well-formed, in step with the frame classes, fixtures hold."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fastjsonschema
import jsonschema
import pytest

from actors.relay import FRAME_CLASSES, BadFrame, decode_frame
from actors.relay._frames import ID_PATTERN, SCHEMA_DIR, fast_frame_check, frame_validator
from contracts import CONTRACTS_ROOT, load_json

FIXTURES = Path(__file__).parent / "fixtures"
VALID: list[dict[str, Any]] = json.loads((FIXTURES / "valid_frames.json").read_text())
INVALID: list[dict[str, Any]] = json.loads((FIXTURES / "invalid_frames.json").read_text())
MAX_BYTES = 1 << 20


class TestSchemaFiles:
    """One draft 2020-12 schema per frame type, plus the shared definitions."""

    def test_one_file_per_frame_type(self) -> None:
        files = {p.name for p in (CONTRACTS_ROOT / SCHEMA_DIR).glob("*.schema.json")}
        expected = {f"{t}.schema.json" for t in FRAME_CLASSES} | {"common.schema.json"}
        assert files == expected

    @pytest.mark.parametrize("name", ["common", *FRAME_CLASSES])
    def test_schema_is_valid_2020_12(self, name: str) -> None:
        schema = load_json(f"{SCHEMA_DIR}/{name}.schema.json")
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["$id"].endswith(f"/relay/v1/{name}.schema.json")

    @pytest.mark.parametrize("frame_type", list(FRAME_CLASSES))
    def test_type_constant_and_strictness(self, frame_type: str) -> None:
        schema = load_json(f"{SCHEMA_DIR}/{frame_type}.schema.json")
        assert schema["properties"]["type"] == {"const": frame_type}
        assert schema["additionalProperties"] is False
        assert "type" in schema["required"]

    def test_id_pattern_matches_the_code(self) -> None:
        common = load_json(f"{SCHEMA_DIR}/common.schema.json")
        assert common["$defs"]["id"]["pattern"] == ID_PATTERN


class TestFixtures:
    """Every valid fixture decodes; every invalid one is refused with relay.bad_frame."""

    def test_every_frame_type_has_a_valid_fixture(self) -> None:
        assert {frame["type"] for frame in VALID} == set(FRAME_CLASSES)

    @pytest.mark.parametrize("frame", VALID, ids=lambda f: str(f["type"]))
    def test_valid(self, frame: dict[str, Any]) -> None:
        decoded = decode_frame(json.dumps(frame), max_bytes=MAX_BYTES)
        assert frame["type"] == decoded.TYPE

    @pytest.mark.parametrize("case", INVALID, ids=lambda c: str(c["why"]))
    def test_invalid(self, case: dict[str, Any]) -> None:
        with pytest.raises(BadFrame) as info:
            decode_frame(json.dumps(case["frame"]), max_bytes=MAX_BYTES)
        assert info.value.code == "relay.bad_frame"
        assert info.value.retryable is False


class TestFastCheckAgrees:
    """The compiled check (``fastjsonschema``) gives ``jsonschema``'s verdict on every fixture."""

    @staticmethod
    def verdicts(frame: dict[str, Any]) -> tuple[bool, bool]:
        frame_type = frame["type"]
        fast = True
        try:
            fast_frame_check(frame_type)(frame)
        except fastjsonschema.JsonSchemaException:
            fast = False
        return fast, frame_validator(frame_type).is_valid(frame)

    @pytest.mark.parametrize("frame", VALID, ids=lambda f: str(f["type"]))
    def test_valid(self, frame: dict[str, Any]) -> None:
        assert self.verdicts(frame) == (True, True)

    @pytest.mark.parametrize(
        "case",
        [c for c in INVALID if c["frame"].get("type") in FRAME_CLASSES],
        ids=lambda c: str(c["why"]),
    )
    def test_invalid(self, case: dict[str, Any]) -> None:
        assert self.verdicts(case["frame"]) == (False, False)

    def test_dollar_means_end_of_string(self) -> None:
        frame = dict(next(f for f in VALID if f["type"] == "tool.cancel"))
        frame["call_id"] = frame["call_id"] + "\n"
        assert self.verdicts(frame) == (False, False)
