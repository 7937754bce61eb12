"""Decisions (pure): deny by default, deny beats allow, the device beats ``*``, versions,
caps, paths and egress; and properties over random bundles and requests (hypothesis)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.policy import (
    DEFAULT_DENY,
    CallRequest,
    Caps,
    PolicyBundle,
    decide,
    offers,
    tightest_caps,
    unsigned_bundle,
)
from actors.tools import ToolsConfig, tool_contracts


def bundle(*rules: dict[str, Any], defaults: dict[str, Any] | None = None) -> PolicyBundle:
    now = int(time.time())
    claims: dict[str, Any] = {
        "v": 1,
        "iss": "cp",
        "aud": "acme",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "policy_id": "p",
        "revision": 1,
        "rules": list(rules),
    }
    if defaults is not None:
        claims["defaults"] = defaults
    return unsigned_bundle(claims)


def rule(rule_id: str, effect: str = "allow", **fields: Any) -> dict[str, Any]:
    return {
        "id": rule_id,
        "tool": "fs.read",
        "versions": "*",
        "effect": effect,
        "devices": ["*"],
        **fields,
    }


def call(
    path: str | None = "notes/a.txt",
    *,
    device: str = "d1",
    version: str = "1.0.0",
    tool: str = "fs.read",
    **args: Any,
) -> CallRequest:
    if path is not None:
        args["path"] = path
    return CallRequest.of(tool=tool, version=version, device_id=device, args=args)


class TestRules:
    """What each rule field does."""

    def test_deny_by_default(self) -> None:
        decision = decide(bundle(), call())
        assert not decision.allowed
        assert decision.rule_id == DEFAULT_DENY
        assert decision.code == "tool.denied"

    def test_allow_names_its_rule(self) -> None:
        decision = decide(bundle(rule("read")), call())
        assert decision.allowed
        assert decision.rule_id == "read"
        assert decision.effect == "allow"

    def test_deny_beats_allow_in_any_order(self) -> None:
        for rules in ([rule("a"), rule("d", "deny")], [rule("d", "deny"), rule("a")]):
            decision = decide(bundle(*rules), call())
            assert not decision.allowed
            assert decision.rule_id == "d"

    def test_device_rule_beats_star_rule(self) -> None:
        policy = bundle(
            rule("any", paths=["**"], caps={"timeoutMs": 9000, "maxBytes": 9000}),
            rule(
                "mine", devices=["d1"], paths=["notes/**"], caps={"timeoutMs": 10, "maxBytes": 10}
            ),
        )
        mine = decide(policy, call("notes/a.txt"))
        assert mine.rule_id == "mine"
        assert mine.caps == Caps(timeout_ms=10, max_bytes=10)
        # Its narrower paths hold for its device even though the rule for * would allow.
        assert not decide(policy, call("other.txt")).allowed
        assert decide(policy, call("other.txt", device="d2")).rule_id == "any"

    def test_a_deny_for_star_still_beats_an_allow_for_the_device(self) -> None:
        policy = bundle(rule("mine", devices=["d1"]), rule("never", "deny"))
        assert decide(policy, call()).rule_id == "never"

    def test_devices_list(self) -> None:
        policy = bundle(rule("two", devices=["d1", "d2"]))
        assert decide(policy, call(device="d2")).allowed
        assert not decide(policy, call(device="d3")).allowed

    @pytest.mark.parametrize(
        ("versions", "version", "allowed"),
        [
            ("^1.0.0", "1.4.2", True),
            ("^1.0.0", "2.0.0", False),
            (">=1.2 <2", "1.1.9", False),
            ("1.x || 3.x", "3.1.0", True),
            ("~1.2.0", "1.3.0", False),
            ("*", "0.0.0", True),
            ("^1.0.0", "1.1.0-beta.1", False),
            ("*", "not-a-version", False),
        ],
    )
    def test_version_must_satisfy_the_range(
        self, versions: str, version: str, allowed: bool
    ) -> None:
        assert (
            decide(bundle(rule("r", versions=versions)), call(version=version)).allowed is allowed
        )

    def test_tool_star(self) -> None:
        policy = bundle(
            {"id": "all", "tool": "*", "versions": "*", "effect": "allow", "devices": ["*"]}
        )
        assert decide(policy, call(tool="write_file")).allowed

    def test_tool_name_is_exact(self) -> None:
        assert not decide(bundle(rule("r")), call(tool="fs.read2")).allowed

    def test_paths_allow_list(self) -> None:
        policy = bundle(rule("notes", paths=["notes/*.txt"]))
        assert decide(policy, call("notes/a.txt")).allowed
        for path in ("notes/sub/a.txt", "notes/a.md", "notesx/a.txt", "a.txt"):
            denied = decide(policy, call(path))
            assert not denied.allowed, path
            assert denied.rule_id == DEFAULT_DENY
            assert "allow-list" in denied.reason

    def test_an_allow_with_paths_needs_a_path(self) -> None:
        assert not decide(bundle(rule("notes", paths=["**"])), call(None)).allowed

    def test_every_path_argument_must_be_allowed(self) -> None:
        policy = bundle(rule("notes", tool="move_file", paths=["notes/**"]))
        move = CallRequest.of(
            tool="move_file",
            version="0.0.0",
            device_id="d1",
            args={"source": "notes/a", "destination": "elsewhere/a"},
        )
        assert not decide(policy, move).allowed

    def test_deny_paths_ignore_case(self) -> None:
        policy = bundle(rule("all"), rule("secrets", "deny", paths=["secrets/**"]))
        for path in ("secrets/key", "Secrets/key", "SECRETS/x/y"):
            assert decide(policy, call(path)).rule_id == "secrets", path
        assert decide(policy, call("notes/secrets")).allowed

    def test_allow_paths_keep_case(self) -> None:
        assert not decide(bundle(rule("n", paths=["notes/**"])), call("NOTES/a")).allowed

    @pytest.mark.parametrize(
        "path",
        ["../etc/passwd", "notes/../../x", "/etc/passwd", "C:/x", "~/x", "a\\b", "a\x00b", ""],
    )
    def test_path_tricks_are_denied_where_paths_matter(self, path: str) -> None:
        assert not decide(bundle(rule("n", paths=["**"])), call(path)).allowed
        # A deny rule with paths cannot be shown not to match such a path: denied too.
        assert not decide(
            bundle(rule("a"), rule("s", "deny", paths=["secrets/**"])), call(path)
        ).allowed

    def test_unicode_forms_are_one_path(self) -> None:
        composed, decomposed = "caf\u00e9/a.txt", "cafe\u0301/a.txt"
        assert decide(bundle(rule("c", paths=[composed])), call(decomposed)).allowed
        assert decide(bundle(rule("c", paths=[decomposed])), call(composed)).allowed
        deny = bundle(rule("a"), rule("s", "deny", paths=["caf\u00e9/**"]))
        assert not decide(deny, call(decomposed)).allowed

    def test_dot_segments_and_slashes_are_normalised(self) -> None:
        policy = bundle(rule("a"), rule("s", "deny", paths=["secrets/**"]))
        for path in ("./secrets/k", "secrets//k", "secrets/./k"):
            assert not decide(policy, call(path)).allowed, path

    def test_globs_do_not_match_too_much(self) -> None:
        cases = {
            "notes/*": ["notes/a/b", "notes"],
            "notes*": ["notes-secret/x"],
            "*.txt": ["a/b.txt"],
            "notes/**": ["notes", "notesx/a"],
            "a?c": ["a/c", "abbc"],
        }
        for glob, paths in cases.items():
            for path in paths:
                assert not decide(bundle(rule("g", paths=[glob])), call(path)).allowed, (glob, path)

    def test_double_star_in_the_middle(self) -> None:
        policy = bundle(rule("g", paths=["docs/**/readme.md"]))
        for path in ("docs/readme.md", "docs/a/readme.md", "docs/a/b/readme.md"):
            assert decide(policy, call(path)).allowed, path
        assert not decide(policy, call("docs/a/readme.txt")).allowed


class TestEgress:
    """The same engine decides host:port for a network tool (a synthetic one: none ships)."""

    def fetch(self, **args: Any) -> CallRequest:
        return CallRequest.of(tool="net.fetch", version="1.0.0", device_id="d1", args=args)

    def policy(self) -> PolicyBundle:
        return bundle(
            rule(
                "api",
                tool="net.fetch",
                egress=["api.example.com:443", "*.cdn.example.com:443", "127.0.0.1:8080"],
            ),
            rule("no-evil", "deny", tool="net.fetch", egress=["evil.example.com:443"]),
        )

    @pytest.mark.parametrize(
        ("args", "allowed"),
        [
            ({"url": "https://api.example.com/v1/x"}, True),
            ({"url": "https://API.example.com./v1"}, True),
            ({"url": "http://api.example.com/"}, False),  # port 80
            ({"url": "https://api.example.com:8443/"}, False),
            ({"url": "https://img.cdn.example.com/a.png"}, True),
            ({"url": "https://a.b.cdn.example.com/"}, False),  # one label only
            ({"url": "https://cdn.example.com/"}, False),
            ({"url": "https://evil.example.com/"}, False),
            ({"url": "ftp://api.example.com/"}, False),
            ({"url": "not a url"}, False),
            ({"host": "127.0.0.1", "port": 8080}, True),
            ({"host": "127.0.0.1", "port": 8081}, False),
            ({"urls": ["https://api.example.com/", "https://other.example.com/"]}, False),
        ],
    )
    def test_targets(self, args: dict[str, Any], allowed: bool) -> None:
        assert decide(self.policy(), self.fetch(**args)).allowed is allowed

    def test_network_needs_an_egress_list(self) -> None:
        policy = bundle(rule("open", tool="net.fetch"))
        assert not decide(policy, self.fetch(url="https://api.example.com/")).allowed
        assert decide(policy, self.fetch()).allowed  # no network: nothing to allow

    def test_the_deny_names_its_rule(self) -> None:
        policy = bundle(
            rule("all", tool="net.fetch", egress=["evil.example.com:443"]),
            rule("no-evil", "deny", tool="net.fetch", egress=["evil.example.com:443"]),
        )
        assert decide(policy, self.fetch(url="https://evil.example.com/")).rule_id == "no-evil"


class TestOffersAndCaps:
    """What the model is offered; caps are the tightest of every source."""

    def test_offers(self) -> None:
        policy = bundle(rule("r", versions="^1"), rule("d", "deny", devices=["d9"]))
        assert offers(policy, tool="fs.read", version="1.0.0", device_id="d1")
        assert not offers(policy, tool="fs.read", version="2.0.0", device_id="d1")
        assert not offers(policy, tool="fs.read", version="1.0.0", device_id="d9")
        assert not offers(policy, tool="write_file", version="0.0.0", device_id="d1")

    def test_conditional_deny_still_offers(self) -> None:
        policy = bundle(rule("r"), rule("s", "deny", paths=["secrets/**"]))
        assert offers(policy, tool="fs.read", version="1.0.0", device_id="d1")

    def test_defaults_caps(self) -> None:
        policy = bundle(rule("r"), defaults={"caps": {"timeoutMs": 7, "maxBytes": 8}})
        assert decide(policy, call()).caps == Caps(timeout_ms=7, max_bytes=8)

    def test_host_caps_are_the_tightest_of_three(self) -> None:
        contract = tool_contracts()["fs.read"]
        config = ToolsConfig(timeout_ms=4000, max_bytes=100)
        caps = config.caps_for(contract, Caps(timeout_ms=3000, max_bytes=10_000))
        assert (caps.timeout_ms, caps.max_bytes) == (3000, 100)


# --- properties ----------------------------------------------------------------------------

DEVICES = ["d1", "d2", "*"]
TOOLS = ["fs.read", "write_file", "*"]
VERSIONS = ["*", "^1.0.0", "^2.0.0", ">=1.5.0"]
GLOBS = ["notes/**", "*.md", "secrets/**", "**", "a/*"]
PATHS = ["notes/a.txt", "README.md", "secrets/k", "Secrets/k", "a/b", "a/b/c", "../x", "/abs"]


@st.composite
def random_rule(draw: st.DrawFn, index: int) -> dict[str, Any]:
    devices = draw(st.sampled_from([["*"], ["d1"], ["d2"], ["d1", "d2"]]))
    out: dict[str, Any] = {
        "id": f"r{index}",
        "tool": draw(st.sampled_from(TOOLS)),
        "versions": draw(st.sampled_from(VERSIONS)),
        "effect": draw(st.sampled_from(["allow", "deny"])),
        "devices": devices,
    }
    if draw(st.booleans()):
        out["paths"] = draw(st.lists(st.sampled_from(GLOBS), min_size=1, max_size=3, unique=True))
    if draw(st.booleans()):
        out["caps"] = {
            "timeoutMs": draw(st.integers(1, 100_000)),
            "maxBytes": draw(st.integers(1, 10_000_000)),
        }
    return out


@st.composite
def random_bundle(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(0, 6))
    return [draw(random_rule(i)) for i in range(count)]


def _covers(raw: dict[str, Any], request: CallRequest) -> bool:
    from actors.policy import VersionRange

    return (
        raw["tool"] in ("*", request.tool)
        and ("*" in raw["devices"] or request.device_id in raw["devices"])
        and VersionRange(raw["versions"]).matches(request.version)
    )


def _matches(raw: dict[str, Any], request: CallRequest, *, deny: bool) -> bool:
    """A reference model, written apart from the engine: does this rule match the call?"""
    from actors.policy import PathGlob, PathRefused, VersionRange, normalize_path

    if raw["tool"] not in ("*", request.tool):
        return False
    if "*" not in raw["devices"] and request.device_id not in raw["devices"]:
        return False
    if not VersionRange(raw["versions"]).matches(request.version):
        return False
    if "paths" not in raw:
        return True
    globs = [PathGlob(g) for g in raw["paths"]]
    normalized = []
    for path in request.paths:
        try:
            normalized.append(normalize_path(path))
        except PathRefused:
            return deny  # an allow cannot admit it; a deny with paths catches it
    if deny:
        return any(g.matches(p, ignore_case=True) for p in normalized for g in globs)
    return bool(normalized) and all(any(g.matches(p) for g in globs) for p in normalized)


class TestProperties:
    """For random bundles and requests the engine agrees with the rules as written."""

    @settings(max_examples=400, deadline=None)
    @given(
        rules=random_bundle(),
        tool=st.sampled_from(["fs.read", "write_file"]),
        version=st.sampled_from(["1.0.0", "1.6.0", "2.0.0", "0.0.0"]),
        device=st.sampled_from(["d1", "d2", "d3"]),
        path=st.sampled_from(PATHS),
    )
    def test_allowed_only_when_an_allow_matches_and_no_deny_does(
        self, rules: list[dict[str, Any]], tool: str, version: str, device: str, path: str
    ) -> None:
        request = call(path, tool=tool, version=version, device=device)
        decision = decide(bundle(*rules), request)
        any_deny = any(_matches(r, request, deny=True) for r in rules if r["effect"] == "deny")
        allows = [r for r in rules if r["effect"] == "allow" and _matches(r, request, deny=False)]
        if decision.allowed:
            assert allows
            assert not any_deny
            chosen = next(r for r in rules if r["id"] == decision.rule_id)
            assert chosen in allows
            # A rule naming the device beats one for every device.
            for_device = [
                r
                for r in rules
                if r["effect"] == "allow" and "*" not in r["devices"] and _covers(r, request)
            ]
            if for_device:
                assert chosen in for_device
        else:
            assert decision.code == "tool.denied"
            if any_deny:
                denier = next((r for r in rules if r["id"] == decision.rule_id), None)
                assert denier is not None
                assert denier["effect"] == "deny"
            elif not allows:
                assert decision.rule_id == DEFAULT_DENY

    @settings(max_examples=300, deadline=None)
    @given(
        rules=random_bundle(),
        host=st.tuples(st.integers(1, 100_000), st.integers(1, 10_000_000)),
        path=st.sampled_from(PATHS),
    )
    def test_caps_never_exceed_any_source(
        self, rules: list[dict[str, Any]], host: tuple[int, int], path: str
    ) -> None:
        decision = decide(bundle(*rules), call(path))
        if not decision.allowed:
            return
        contract = tool_contracts()["fs.read"]
        caps = ToolsConfig(timeout_ms=host[0], max_bytes=host[1]).caps_for(contract, decision.caps)
        manifest = contract.default_caps
        sources = [
            Caps(timeout_ms=host[0], max_bytes=host[1]),
            Caps(timeout_ms=manifest.timeout_ms, max_bytes=manifest.max_bytes),
        ]
        if decision.caps is not None:
            sources.append(decision.caps)
        for source in sources:
            assert caps.timeout_ms <= source.timeout_ms
            assert caps.max_bytes <= source.max_bytes
        tightest = tightest_caps(*sources)
        assert (caps.timeout_ms, caps.max_bytes) == (tightest.timeout_ms, tightest.max_bytes)
