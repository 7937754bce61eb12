"""The strict JSON reader: what it refuses, what it keeps, and that it raises nothing else."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.strict_json import (
    DEFAULT_MAX_DEPTH,
    MAX_SAFE_INTEGER,
    StrictJsonError,
    check_value,
    dumps,
    loads,
)


class TestRefuses:
    """Each kind of hostile input is a StrictJsonError with a reason."""

    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            (str(2**53), "out of range"),
            (str(-(2**53)), "out of range"),
            ("1" * 5000, "digits"),
            ('{"a": 9007199254740993}', "out of range"),
            ('"\\ud800"', "surrogate"),
            ('{"\\udfff": 1}', "surrogate"),
            ('["ok", "\\ud83d"]', "surrogate"),
            ("NaN", "not JSON"),
            ("[Infinity]", "not JSON"),
            ("-Infinity", "not JSON"),
            ("1e400", "out of range"),
            ('{"a": 1, "a": 2}', "duplicate"),
            ("[" * 100_000 + "]" * 100_000, "deeper"),
            ("[" * (DEFAULT_MAX_DEPTH + 1) + "]" * (DEFAULT_MAX_DEPTH + 1), "deeper"),
            ("{", "not JSON"),
            ("", "not JSON"),
            ("[1,]", "not JSON"),
        ],
    )
    def test_refused_with_reason(self, text: str, reason: str) -> None:
        with pytest.raises(StrictJsonError, match=reason):
            loads(text)

    def test_bytes_that_are_not_utf8(self) -> None:
        with pytest.raises(StrictJsonError, match="UTF-8"):
            loads(b'"\xff"')
        with pytest.raises(StrictJsonError, match="UTF-8"):
            loads(b'"\xed\xa0\x80"')  # a surrogate encoded as if it were a character

    def test_a_raw_lone_surrogate_in_text(self) -> None:
        with pytest.raises(StrictJsonError, match="surrogate"):
            loads('"\ud800"')

    def test_size_limit_counts_utf8_bytes(self) -> None:
        loads('"' + "é" * 10 + '"', max_bytes=22)
        with pytest.raises(StrictJsonError, match="limit"):
            loads('"' + "é" * 10 + '"', max_bytes=21)
        with pytest.raises(StrictJsonError, match="limit"):
            loads(b"[" + b"1," * 100 + b"1]", max_bytes=100)

    def test_depth_is_configurable(self) -> None:
        assert loads("[[[1]]]", max_depth=3) == [[[1]]]
        with pytest.raises(StrictJsonError, match="deeper than 2"):
            loads("[[[1]]]", max_depth=2)


class TestKeeps:
    """Ordinary JSON reads exactly as json.loads reads it."""

    def test_the_edges_of_the_safe_range(self) -> None:
        assert loads(f"[{MAX_SAFE_INTEGER}, {-MAX_SAFE_INTEGER}]") == [
            MAX_SAFE_INTEGER,
            -MAX_SAFE_INTEGER,
        ]

    def test_pairs_of_surrogates_and_non_ascii(self) -> None:
        assert loads('"\\ud83d\\ude00 é 中"') == "😀 é 中"

    def test_a_large_string_is_one_value(self) -> None:
        big = "x" * (1 << 20)
        assert loads(json.dumps({"content": big})) == {"content": big}

    @given(
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
            | st.floats(allow_nan=False, allow_infinity=False)
            | st.text(),
            lambda children: st.lists(children) | st.dictionaries(st.text(), children),
            max_leaves=30,
        )
    )
    def test_round_trip(self, value: object) -> None:
        text = dumps(value)
        assert loads(text) == value
        assert loads(text.encode("utf-8")) == value


class TestNeverRaisesAnythingElse:
    """Arbitrary text and bytes give a value or a StrictJsonError, never another exception."""

    @given(st.text(max_size=200))
    def test_text(self, text: str) -> None:
        with contextlib.suppress(StrictJsonError):
            loads(text)

    @given(st.binary(max_size=200))
    def test_bytes(self, data: bytes) -> None:
        with contextlib.suppress(StrictJsonError):
            loads(data)


class TestCheckValue:
    """Values built in memory are held to the same rules."""

    @pytest.mark.parametrize(
        "value",
        [2**60, float("nan"), float("inf"), {1: "a"}, "\udc00", {"k\ud800": 1}, object(), b"x"],
    )
    def test_refused(self, value: object) -> None:
        with pytest.raises(StrictJsonError):
            check_value(value)

    def test_deep_value_built_in_memory(self) -> None:
        value: list[object] = []
        for _ in range(10_000):
            value = [value]
        with pytest.raises(StrictJsonError, match="deeper"):
            check_value(value)

    def test_dumps_refuses_what_json_cannot_carry(self) -> None:
        with pytest.raises(StrictJsonError):
            dumps({"x": float("nan")})
