"""What the fuzzers found, kept as plain tests (each failed before its fix)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from actors.audit import verify_lines
from actors.audit._cli import _render
from actors.errors import ProviderError
from actors.mcp import JsonRpcError, parse_message
from actors.policy import BundleRejected, PathGlob, RejectReason, sign_bundle, verify_bundle
from actors.provider._openai_wire import ChunkAssembler, ToolNames, parse_chunk
from actors.relay import BadFrame, decode_frame
from tests.fuzz.test_fuzz_policy import KEY, NOW, TENANT, base_claims, raw_json, signed

DEEP = b"[" * 5000 + b"]" * 5000


def assembler() -> ChunkAssembler:
    return ChunkAssembler(ToolNames(("fs.read",)))


class TestSseChunks:
    """A lone surrogate the client could never be sent is refused as a bad response."""

    @pytest.mark.parametrize(
        "chunk",
        [
            pytest.param('{"choices":[{"delta":{"content":"\\ud800"}}]}', id="content"),
            pytest.param(
                '{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"f\\udfff"}}]}}]}',
                id="tool-name",
            ),
            pytest.param(
                '{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"\\ud800",'
                '"function":{"name":"fs_read"}}]}}]}',
                id="tool-call-id",
            ),
        ],
    )
    def test_lone_surrogate(self, chunk: str) -> None:
        with pytest.raises(ProviderError) as caught:
            assembler().feed(parse_chunk(chunk))
        assert caught.value.code == "provider.bad_response"

    def test_deep_chunk(self) -> None:
        with pytest.raises(ProviderError):
            parse_chunk(DEEP.decode())

    @pytest.mark.parametrize(
        "chunk",
        [
            pytest.param(b'{"choices":[{"delta":{"content":"\\ud800"}}]}', id="lone-surrogate"),
            pytest.param(b'{"choices":[{"delta":{"content":"a"}}],"x":NaN}', id="nan"),
            pytest.param(b'{"choices":[{"delta":{"content":"a"}}],"x":-Infinity}', id="inf"),
            pytest.param(b'{"choices":[{"delta":{"content":"a"}}],"x":1e999}', id="overflow"),
            pytest.param(b'{"choices":[{"delta":{"content":"\xff"}}]}', id="not-utf8"),
            pytest.param(DEEP, id="deep"),
        ],
    )
    def test_bytes_as_the_stream_delivers_them(self, chunk: bytes) -> None:
        with pytest.raises(ProviderError) as caught:
            assembler().feed(parse_chunk(chunk))
        assert caught.value.code == "provider.bad_response"

    def test_arguments_are_left_to_the_tool_path(self) -> None:
        # A lone surrogate in a tool call's arguments is the tool path's to refuse (its strict
        # reader, with a receipt): the chunk itself is read, by the slower reader.
        chunk = (
            b'{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c1","function":'
            b'{"name":"fs_read","arguments":"{\\"path\\": \\"a\\ud800\\"}"}}]}}]}'
        )
        names = ChunkAssembler(ToolNames(("fs.read",)))
        names.feed(parse_chunk(chunk))
        [call] = names.tool_calls()
        assert call.arguments_json == '{"path": "a\ud800"}'

    def test_a_pair_is_fine(self) -> None:
        assert (
            assembler().feed(parse_chunk('{"choices":[{"delta":{"content":"\\ud83d\\ude00"}}]}'))
            == "😀"
        )


class TestAuditReader:
    """A line nested deep enough to overflow the parser is a problem, not a crash."""

    def test_verify(self) -> None:
        report = verify_lines([DEEP + b"\n"])
        assert not report.ok
        assert report.problem is not None
        assert report.problem.line == 1

    @pytest.mark.parametrize(
        "line",
        [
            pytest.param(DEEP + b"\n", id="deep"),
            pytest.param(
                b'{"seq":{"a":1},"kind":"x.y","at":"t","payload":{}}\n', id="seq-not-a-number"
            ),
            pytest.param(b'{"seq":1,"kind":["x"],"at":"t","payload":{}}\n', id="kind-not-text"),
        ],
    )
    def test_tail(self, line: bytes) -> None:
        assert _render(line).startswith("?  (not a record)")


class TestDeepEverywhere:
    """The relay and MCP parsers refuse it with their own errors."""

    def test_relay(self) -> None:
        with pytest.raises(BadFrame):
            decode_frame(DEEP, max_bytes=1 << 20)

    def test_mcp(self) -> None:
        with pytest.raises(JsonRpcError):
            parse_message(DEEP)


def verified(claims: dict[str, Any]) -> Any:
    return verify_bundle(signed(raw_json(claims)), keys=[KEY.public_key()], tenant=TENANT, now=NOW)


class TestPolicyBundleNumbers:
    """A bundle's integers written as fractions (JSON Schema calls 42.0 an integer) were
    accepted as floats: a float revision, validity time or cap went on into decisions,
    caps and receipts. Every number of a bundle is an integer written as one."""

    @pytest.mark.parametrize(
        ("where", "value"),
        [
            pytest.param(("revision",), 42.0, id="revision"),
            pytest.param(("exp",), float(NOW + 300), id="exp"),
            pytest.param(("iat",), float(NOW - 10), id="iat"),
            pytest.param(("defaults", "caps", "maxBytes"), 1024.0, id="default-caps"),
            pytest.param(("rules", 0, "caps", "timeoutMs"), 2000.0, id="rule-caps"),
        ],
    )
    def test_refused(self, where: tuple[Any, ...], value: float) -> None:
        claims = base_claims()
        node: Any = claims
        for key in where[:-1]:
            node = node[key]
        node[where[-1]] = value
        with pytest.raises(BundleRejected) as caught:
            verified(claims)
        assert caught.value.reason is RejectReason.SCHEMA
        assert caught.value.code == "policy.invalid"
        assert "fraction or an exponent" in caught.value.message

    def test_exponent_form(self) -> None:
        text = raw_json(base_claims()).replace(b'"revision": 42', b'"revision": 4.2e1')
        with pytest.raises(BundleRejected) as caught:
            verify_bundle(signed(text), keys=[KEY.public_key()], tenant=TENANT, now=NOW)
        assert caught.value.reason is RejectReason.SCHEMA

    def test_signing_refuses_it_too(self) -> None:
        with pytest.raises(BundleRejected):
            sign_bundle({**base_claims(), "revision": 42.0}, KEY, ttl_s=60)

    def test_integers_still_pass(self) -> None:
        assert type(verified(base_claims()).revision) is int


class TestPolicyBundleLifetime:
    """An ``iat`` far ahead of ``nbf`` passed the TTL check (``exp - iat``) while ``nbf``
    made the bundle valid at once: a signed bundle could hold for years. It holds from the
    later of ``iat`` and ``nbf``, so never longer than the maximum TTL."""

    def test_iat_in_the_future(self) -> None:
        claims = {**base_claims(), "nbf": NOW - 10, "iat": 2**53 - 100, "exp": 2**53 - 1}
        with pytest.raises(BundleRejected) as caught:
            verified(claims)
        assert caught.value.reason is RejectReason.NOT_YET_VALID
        assert "iat" in caught.value.message

    def test_within_the_skew_is_fine(self) -> None:
        bundle = verified({**base_claims(), "iat": NOW + 20, "nbf": NOW - 10, "exp": NOW + 600})
        assert bundle.expires_at == NOW + 600


class TestPolicyEgressPorts:
    """``str.isdigit`` and ``int`` take other scripts' digits: ``host:١٢٣`` was port 123."""

    @pytest.mark.parametrize("entry", ["a.example.com:\u0661\u0662\u0663", "a:\u00b2"])
    def test_refused(self, entry: str) -> None:
        claims = base_claims()
        claims["rules"][2]["egress"] = [entry]
        with pytest.raises(BundleRejected) as caught:
            verified(claims)
        assert caught.value.reason is RejectReason.INVALID
        assert "is not 1-65535" in caught.value.message

    def test_ipv4_is_ascii_digits(self) -> None:
        claims = base_claims()
        claims["rules"][2]["egress"] = ["\u0661\u0662\u0667.0.0.1:80"]
        with pytest.raises(BundleRejected):
            verified(claims)


#: Many stars in one segment, a path that almost matches: a backtracking engine tries every
#: way to split the path among the stars (40 characters, 10 stars: 12 s; this never ends).
REDOS = """
from actors.policy import PathGlob
glob = PathGlob("*a" * 25 + "b")
assert not glob.matches("a" * 4000)
assert not glob.matches("A" * 4000, ignore_case=True)
print("done")
"""


class TestPolicyGlobTime:
    """A glob is matched without backtracking, in time linear in the path, whatever the glob
    (``test_fuzz_policy.TestPathGlob`` checks it still means what the plain regex means)."""

    def test_many_stars_against_a_long_path(self) -> None:
        # In a child process with a generous limit: without the fix it never finishes.
        result = subprocess.run(
            [sys.executable, "-c", REDOS], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.stdout.strip() == "done", result.stderr[-2000:]

    def test_same_answers(self) -> None:
        glob = PathGlob("*a*a*b")
        assert glob.matches("xaYab")
        assert glob.matches("aab")
        assert not glob.matches("aa/b")  # a star never crosses a slash
        assert PathGlob("docs/**/read?e.md").matches("docs/x/y/readme.md")
        assert PathGlob("Secrets/**").matches("secrets/K", ignore_case=True)
        assert not PathGlob("Secrets/**").matches("secrets/K")
        assert PathGlob("caf\u00e9 (1)/*.txt").matches("caf\u00e9 (1)/a.txt")
