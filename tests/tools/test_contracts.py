"""The host's tool contracts: validation, argument caps and result caps (pure)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from actors.errors import ToolError
from actors.tools import Caps, tool_contracts
from actors.tools._contracts import (
    cap_arguments,
    enforce_result_caps,
    parse_arguments,
    validate_args,
    validate_result,
)

FS_READ = tool_contracts()["fs.read"]


def fs_result(content: str, encoding: str = "utf-8") -> dict[str, object]:
    data = content.encode() if encoding == "utf-8" else base64.b64decode(content)
    return {
        "content": content,
        "encoding": encoding,
        "bytesReturned": len(data),
        "fileSize": len(data),
        "truncated": False,
        "sha256": hashlib.sha256(data).hexdigest(),
    }


class TestValidation:
    """Arguments and results are held to the contract files."""

    def test_known_tool(self) -> None:
        assert FS_READ.version == "1.0.0"
        assert FS_READ.default_caps == Caps(timeout_ms=5000, max_bytes=1048576)

    def test_valid_args_pass(self) -> None:
        validate_args(FS_READ, {"path": "a.txt", "maxBytes": 10, "encoding": "base64"})

    @pytest.mark.parametrize(
        "args",
        [{}, {"path": ""}, {"path": 1}, {"path": "a", "offset": -1}, {"path": "a", "x": 1}],
    )
    def test_invalid_args_are_typed(self, args: dict[str, object]) -> None:
        with pytest.raises(ToolError) as info:
            validate_args(FS_READ, args)
        assert info.value.code == "tool.invalid_args"

    def test_invalid_result_is_typed(self) -> None:
        validate_result(FS_READ, fs_result("hi"))
        with pytest.raises(ToolError) as info:
            validate_result(FS_READ, {"content": 5})
        assert info.value.code == "tool.invalid_result"

    @pytest.mark.parametrize("text", ["not json", "[1, 2]", '"a string"'])
    def test_arguments_must_be_a_json_object(self, text: str) -> None:
        with pytest.raises(ToolError, match=r"tool\.invalid_args"):
            parse_arguments(text)


class TestCaps:
    """The host applies maxBytes to the arguments and again to the result."""

    def test_arguments_never_ask_for_more_than_the_cap(self) -> None:
        caps = Caps(timeout_ms=1000, max_bytes=100)
        assert cap_arguments(FS_READ, {"path": "a"}, caps)["maxBytes"] == 100
        assert cap_arguments(FS_READ, {"path": "a", "maxBytes": 50}, caps)["maxBytes"] == 50
        assert cap_arguments(FS_READ, {"path": "a", "maxBytes": 500}, caps)["maxBytes"] == 100

    def test_a_result_over_the_cap_is_cut_on_a_character_boundary(self) -> None:
        caps = Caps(timeout_ms=1000, max_bytes=5)
        result, truncated = enforce_result_caps(FS_READ, fs_result("ab€cd"), caps)
        assert truncated
        assert result["content"] == "ab€"  # € is 3 bytes: 2 + 3 = 5
        assert result["bytesReturned"] == 5
        assert result["sha256"] == hashlib.sha256("ab€".encode()).hexdigest()
        validate_result(FS_READ, result)
        result, truncated = enforce_result_caps(FS_READ, fs_result("abcd€"), caps)
        assert result["content"] == "abcd"
        assert result["bytesReturned"] == 4

    def test_base64_is_cut_in_bytes(self) -> None:
        data = bytes(range(20))
        caps = Caps(timeout_ms=1000, max_bytes=7)
        result, truncated = enforce_result_caps(
            FS_READ, fs_result(base64.b64encode(data).decode(), "base64"), caps
        )
        assert truncated
        assert base64.b64decode(result["content"]) == data[:7]
        assert result["sha256"] == hashlib.sha256(data[:7]).hexdigest()

    def test_a_result_within_the_cap_is_untouched(self) -> None:
        original = fs_result("short")
        result, truncated = enforce_result_caps(FS_READ, original, Caps(timeout_ms=1, max_bytes=99))
        assert result is original
        assert truncated is False
