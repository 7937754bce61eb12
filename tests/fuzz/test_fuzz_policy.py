"""Fuzzing the policy engine's parsers of signed text: bundles and caller tokens.

A bundle reaches the host from the control plane and the bridge in every ``tool.call``; a
caller token in every ``StreamChat``. Whatever the text, the engine may only accept it or
refuse it with its own typed error: a bundle with ``BundleRejected`` (a ``reason``, the
catalog code ``policy.bad_signature``, ``policy.expired`` or ``policy.invalid``, and a
message a log line can carry), a caller token with ``CallerUnauthenticated``; never any
other exception. The host's whole acceptance is fuzzed (``verify_bundle``, then the
``redaction`` section compiled by the host's preparer), and the bridge's.

Inputs: arbitrary text, mutated valid bundles, hostile headers, and **valid signatures
over hostile claim bodies** (the trusted key signs whatever it is given): deep nesting,
huge and fractional numbers, lone surrogates, duplicate keys, wrong types, oversize
bundles, odd semver ranges, globs, egress entries and redaction patterns. What an
accepted bundle must hold is checked too: integers where the format says so, and a life
no longer than the verifier's maximum TTL from now. Regressions found here are in
``test_fuzz_regressions.py``.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any, Final

from hypothesis import given, settings
from hypothesis import strategies as st

from actors.bridge._policy import DevicePolicy, DevicePolicyConfig
from actors.errors import PolicyError, ToolError
from actors.policy import (
    BundleRejected,
    CallerUnauthenticated,
    CallRequest,
    PathGlob,
    PolicyBundle,
    RejectReason,
    decide,
    sign_bundle,
    unverified_claims,
    verify_bundle,
    verify_caller_token,
)
from actors.redaction import TenantRedaction
from actors.relay import Caps, ToolCall, generate_signing_key, key_id
from supervisors.host._host import redaction_from_bundles
from tests.fuzz.test_fuzz_parsers import EXAMPLES, FUZZ, deep, json_like, mutated, nasty_text

KEY: Final = generate_signing_key()
OTHER_KEY: Final = generate_signing_key()
KID: Final = key_id(KEY.public_key())
TENANT: Final = "acme"
MAX_TTL_S: Final = 900.0
SKEW_S: Final = 30.0
#: The time every verification runs at: fixed, so that a failing example replays.
NOW: Final = 1_800_000_000
BUNDLE_CODES: Final = frozenset({"policy.bad_signature", "policy.expired", "policy.invalid"})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def signed(payload: bytes, header: bytes | None = None, *, typ: str = "zl-policy+jwt") -> str:
    """A compact JWS over exactly these bytes, with a good Ed25519 signature of the key
    the verifier trusts."""
    if header is None:
        header = json.dumps({"alg": "EdDSA", "kid": KID, "typ": typ}).encode()
    signing_input = f"{b64(header)}.{b64(payload)}"
    return f"{signing_input}.{b64(KEY.sign(signing_input.encode('ascii')))}"


def raw_json(value: Any) -> bytes:
    """JSON bytes of any value, however broken (NaN, lone surrogates written raw or escaped)."""
    ascii_only = bool(hash(repr(value)) % 2)
    text = json.dumps(value, ensure_ascii=ascii_only, allow_nan=True)
    return text.encode("utf-8", "surrogatepass")


def base_claims() -> dict[str, Any]:
    return {
        "v": 1,
        "iss": "cp.example",
        "aud": TENANT,
        "iat": NOW - 10,
        "nbf": NOW - 10,
        "exp": NOW + 300,
        "policy_id": "acme-default",
        "revision": 42,
        "defaults": {"caps": {"timeoutMs": 5000, "maxBytes": 1048576}},
        "rules": [
            {
                "id": "read-notes",
                "tool": "fs.read",
                "versions": "^1.0.0",
                "effect": "allow",
                "devices": ["*"],
                "caps": {"timeoutMs": 2000, "maxBytes": 65536},
                "paths": ["notes/**", "*.md"],
            },
            {
                "id": "no-secrets",
                "tool": "*",
                "versions": "*",
                "effect": "deny",
                "devices": ["*"],
                "paths": ["secrets/**"],
            },
            {
                "id": "web",
                "tool": "fetch",
                "versions": ">=1.2 <2 || 3.x",
                "effect": "allow",
                "devices": ["laptop-1"],
                "egress": ["*.example.com:443", "[::1]:8443"],
            },
        ],
        "redaction": {
            "classes": {"ipv4": False},
            "patterns": [{"name": "employee_id", "pattern": "\\bEMP-[0-9]{6}\\b"}],
            "pseudonyms": True,
        },
    }


VALID_BUNDLE: Final = sign_bundle(base_claims(), KEY, ttl_s=300, now=NOW - 10)

# --- hostile pieces ------------------------------------------------------------------

numbers = st.one_of(
    st.integers(-(2**64), 2**64),
    st.sampled_from([0, -1, 2**53 - 1, 2**53, 10**400, 1.0, 42.0, 1e3, -0.0, 1.5, 1e308]),
    st.floats(allow_nan=True, allow_infinity=True),
)
#: Semver ranges, globs, egress entries and RE2 patterns: made of what their parsers
#: treat specially, as often as of anything else.
semver_ranges = st.one_of(
    st.text(alphabet="0123456789.xX*^~<>=|- v+-abc\t", max_size=140),
    st.sampled_from(["", " ", "||", "1 - 2 - 3", "^0.0.0-0", ">=" * 64, "1." * 70, "~" * 129]),
    nasty_text,
)
globs = st.one_of(
    st.text(alphabet="ab*?/.~:\\[]{}\u00e9\u0301 \x00", max_size=40),
    st.sampled_from(["**", "a/**/b", "a**", "/abs", "C:x", "../x", "./", "", "*" * 512]),
    nasty_text,
)
egress_entries = st.one_of(
    st.text(alphabet="ab.-*:[]0123456789\u0661\u0662\u0130 ", max_size=40),
    st.sampled_from(["a:99999999999999", "*.:1", "[::1]:0", "*.*:1", "[zz]:1", "a:\u0661\u0662"]),
    nasty_text,
)
regexes = st.one_of(
    st.text(alphabet="ab()[]{}?*+|\\^$.P<>=!0-9,:", max_size=40),
    st.sampled_from(["(", "a{1000}{1000}", "(?P<value>a)", "\\C", "(?=a)", "\\1", "", "a\x00"]),
    nasty_text,
)
hostile = st.one_of(json_like, numbers, nasty_text, st.text(max_size=300))

RULE_FIELDS: Final = ("id", "tool", "versions", "effect", "devices", "caps", "paths", "egress")


#: The validity window and the revision: in range and out, of the wrong type, integers
#: written as fractions (JSON Schema calls ``42.0`` an integer), and the far future.
times = st.one_of(
    st.integers(NOW - 2000, NOW + 2000),
    st.integers(NOW - 2000, NOW + 2000).map(float),
    st.sampled_from([0, 2**53 - 1, NOW + 10**6, NOW + 10**9, -1, True, "1", None]),
    numbers,
)


@st.composite
def hostile_claims(draw: st.DrawFn) -> bytes:
    """The valid claims with some fields made hostile, as JSON bytes."""
    claims = base_claims()
    rules: list[dict[str, Any]] = claims["rules"]
    for _ in range(draw(st.integers(0, 3))):
        where = draw(
            st.sampled_from(["top", "rule", "versions", "paths", "egress", "redaction", "caps"])
        )
        rule = rules[draw(st.integers(0, len(rules) - 1))] if rules else {}
        if where == "top":
            name = draw(st.sampled_from([*claims, "extra"]))
            claims[name] = draw(hostile)
        elif where == "rule":
            rule[draw(st.sampled_from(RULE_FIELDS))] = draw(hostile)
        elif where == "versions":
            rule["versions"] = draw(semver_ranges)
        elif where == "paths":
            rule["paths"] = draw(st.lists(globs, min_size=1, max_size=3))
        elif where == "egress":
            rule["egress"] = draw(st.lists(egress_entries, min_size=1, max_size=3))
        elif where == "caps":
            caps = {"timeoutMs": draw(numbers | times), "maxBytes": draw(numbers | times)}
            rule["caps"] = caps
            claims["defaults"] = {"caps": dict(caps)}
        else:
            claims["redaction"] = {
                "patterns": [
                    {"name": draw(st.sampled_from(["p", "email", "x\u00e9"])), "pattern": p}
                    for p in draw(st.lists(regexes, min_size=1, max_size=3))
                ],
                "classes": draw(st.dictionaries(st.sampled_from(["ipv4", "nope"]), hostile)),
            }
    for name in draw(st.lists(st.sampled_from(["iat", "nbf", "exp", "revision"]), max_size=4)):
        claims[name] = draw(times)
    return raw_json(claims)


@st.composite
def raw_payloads(draw: st.DrawFn) -> bytes:
    """Payload bytes no serializer would write: deep, duplicated keys, oversize, not UTF-8."""
    kind = draw(st.sampled_from(["deep", "duplicate", "oversize", "bytes", "value", "rules"]))
    if kind == "deep":
        return draw(deep()).encode()
    if kind == "duplicate":
        body = raw_json(base_claims())
        return body[:-1] + b',"revision":43}'
    if kind == "oversize":
        claims = base_claims()
        claims["iss"] = "x" * draw(st.sampled_from([48_000, 49_200, 70_000]))
        return raw_json(claims)
    if kind == "rules":
        claims = base_claims()
        claims["rules"] = claims["rules"] * draw(st.sampled_from([86, 100, 1000]))
        return raw_json(claims)
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    return raw_json(draw(json_like))


@st.composite
def hostile_headers(draw: st.DrawFn) -> bytes:
    header: dict[str, Any] = {"alg": "EdDSA", "kid": KID, "typ": "zl-policy+jwt"}
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(["alg", "kid", "typ", "crit", "b64", "jwk", "x"]))
        header[name] = draw(
            st.one_of(
                hostile,
                st.sampled_from(["none", "HS256", "eddsa", "JWT", key_id(OTHER_KEY.public_key())]),
            )
        )
    if draw(st.booleans()):
        del header[draw(st.sampled_from(list(header)))]
    return raw_json(header)


bundle_texts = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
    mutated(VALID_BUNDLE),
    st.lists(st.text(alphabet="AZaz09-_=+/ ", max_size=60), min_size=1, max_size=5).map(".".join),
    st.sampled_from([".".join(["x" * 21846] * 3) + "x", VALID_BUNDLE + "." + VALID_BUNDLE]),
    raw_payloads().map(signed),
    st.tuples(hostile_headers(), hostile_claims()).map(lambda hp: signed(hp[1], hp[0])),
)
#: Good signatures over hostile claims: the trusted key signed whatever it was given.
signed_hostile = hostile_claims().map(signed)

PREPARE: Final = redaction_from_bundles(TenantRedaction())
#: Calls decided under whatever bundle is accepted (the compiled rules must hold up).
REQUESTS: Final = (
    CallRequest.of(tool="fs.read", version="1.0.0", device_id="laptop-1", args={"path": "a.md"}),
    CallRequest.of(tool="fs.read", version="1.2.3-beta.1", device_id="d", args={"path": "x/y"}),
    CallRequest.of(
        tool="fetch", version="1.5.0", device_id="laptop-1", args={"url": "https://a.example.com"}
    ),
    CallRequest.of(
        tool="write_file", version="0.0.0", device_id="d", args={"paths": ["Secrets/k"]}
    ),
)


def assert_refusal(exc: BundleRejected) -> None:
    """The engine's typed refusal: a reason, a catalog code and a loggable message."""
    assert isinstance(exc.reason, RejectReason)
    assert exc.code in BUNDLE_CODES
    assert exc.message
    exc.message.encode("utf-8")  # a log line can carry it


def assert_sound(bundle: PolicyBundle) -> None:
    """What an accepted bundle holds, whatever was signed."""
    for value in (bundle.revision, bundle.issued_at, bundle.not_before, bundle.expires_at):
        assert type(value) is int
    # It holds no longer than the maximum TTL from the moment it was accepted.
    assert bundle.expires_at <= NOW + MAX_TTL_S + SKEW_S
    for caps in (bundle.default_caps, *(rule.caps for rule in bundle.rules)):
        assert caps is None or (type(caps.timeout_ms) is int and type(caps.max_bytes) is int)
    for request in REQUESTS:
        decide(bundle, request)


def host_accepts(text: str) -> PolicyBundle | None:
    """What the host's policy cache does with a fetched bundle: verify, then prepare."""
    try:
        bundle = verify_bundle(
            text,
            keys=[KEY.public_key()],
            tenant=TENANT,
            now=NOW,
            max_ttl_s=MAX_TTL_S,
            clock_skew_s=SKEW_S,
        )
        PREPARE(TENANT, bundle)
    except BundleRejected as exc:
        assert_refusal(exc)
        return None
    return bundle


class TestPolicyBundle:
    """The host and the bridge accept a bundle or refuse it typed; nothing else."""

    @FUZZ
    @given(text=bundle_texts | signed_hostile)
    def test_host_refuses_typed(self, text: str) -> None:
        bundle = host_accepts(text)
        if bundle is not None:
            assert_sound(bundle)
        try:
            unverified_claims(text)  # zl policy explain, without keys
        except BundleRejected as exc:
            assert_refusal(exc)

    @FUZZ
    @given(text=signed_hostile)
    def test_signed_hostile_claims(self, text: str) -> None:
        bundle = host_accepts(text)
        if bundle is not None:
            assert_sound(bundle)

    @FUZZ
    @given(text=bundle_texts | signed_hostile)
    def test_bridge_refuses_typed(self, text: str) -> None:
        policy = DevicePolicy(
            DevicePolicyConfig(
                trusted_keys=(KEY.public_key(),),
                tenant=TENANT,
                device_id="laptop-1",
                max_ttl_s=MAX_TTL_S,
                clock_skew_s=SKEW_S,
                now=lambda: NOW,
            )
        )
        call = ToolCall(
            call_id="c-1",
            tenant=TENANT,
            device_id="laptop-1",
            tool="fs.read",
            version="1.0.0",
            args={"path": "notes/a.txt"},
            deadline_ms=1000,
            caps=Caps(timeout_ms=1000, max_bytes=1024),
            policy=text,
        )
        try:
            policy.check(call, version="1.0.0")
        except (PolicyError, ToolError) as exc:
            refused = exc
        else:
            return
        assert refused.code in BUNDLE_CODES | {"tool.denied"} | (
            {"policy.missing"} if not text else set()
        )
        refused.message.encode("utf-8")


# --- path globs ------------------------------------------------------------------------


def plain_regex(segments: list[str], *, ignore_case: bool) -> re.Pattern[str]:
    """The glob as a plain regex (``[^/]*`` per star): the meaning ``PathGlob`` must keep,
    matched here only on short paths, where backtracking costs nothing."""
    pattern = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            pattern.append("(?:[^/]+/)*[^/]+" if last else "(?:[^/]+/)*")
        else:
            body = "".join(
                "[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in segment
            )
            pattern.append(body + ("" if last else "/"))
    return re.compile("".join(pattern) + r"\Z", re.IGNORECASE if ignore_case else 0)


glob_segments = st.lists(
    st.one_of(st.just("**"), st.text(alphabet="ab*?", min_size=1, max_size=6)),
    min_size=1,
    max_size=5,
).filter(lambda segs: all("**" not in s or s == "**" for s in segs))
short_paths = st.lists(st.text(alphabet="abAB", min_size=1, max_size=4), min_size=1, max_size=6)


class TestPathGlob:
    """Globs mean what the plain regex means, placed leftmost so that they never backtrack."""

    @settings(FUZZ, max_examples=EXAMPLES * 3)
    @given(segments=glob_segments, path=short_paths, ignore_case=st.booleans())
    def test_same_as_the_plain_regex(
        self, segments: list[str], path: list[str], ignore_case: bool
    ) -> None:
        text = "/".join(path)
        expected = plain_regex(segments, ignore_case=ignore_case).match(text) is not None
        assert PathGlob("/".join(segments)).matches(text, ignore_case=ignore_case) == expected


# --- caller tokens ---------------------------------------------------------------------


def caller_claims() -> dict[str, Any]:
    return {
        "iss": "zl-dev",
        "aud": "zl-host",
        "sub": "u1",
        "tenant": TENANT,
        "devices": ["laptop-1"],
        "iat": NOW - 10,
        "exp": NOW + 600,
        "jti": "t-1",
    }


@st.composite
def hostile_caller_claims(draw: st.DrawFn) -> bytes:
    claims = caller_claims()
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from([*claims, "nbf", "extra"]))
        claims[name] = draw(st.one_of(hostile, st.lists(hostile, max_size=3)))
    return raw_json(claims)


caller_texts = st.one_of(
    st.text(max_size=200),
    hostile_caller_claims().map(lambda p: signed(p, typ="JWT")),
    raw_payloads().map(lambda p: signed(p, typ="JWT")),
    hostile_claims().map(lambda p: signed(p, typ="JWT")),
    st.just(VALID_BUNDLE),  # a bundle can never pass for a caller token
)


class TestCallerToken:
    """``verify_caller_token`` proves a caller or refuses with ``unauthenticated``."""

    @FUZZ
    @given(text=caller_texts)
    def test_only_unauthenticated(self, text: str) -> None:
        try:
            claims = verify_caller_token(
                text, [KEY.public_key()], now=NOW, max_ttl_s=3600, clock_skew_s=SKEW_S
            )
        except CallerUnauthenticated as exc:
            refused = exc
        else:
            assert type(claims.expires_at) is int
            assert claims.expires_at <= NOW + 3600 + SKEW_S
            return
        assert refused.code == "unauthenticated"
        refused.message.encode("utf-8")
