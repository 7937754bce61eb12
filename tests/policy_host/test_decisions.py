"""The host decides every call before it leaves: offered tools, allowed and denied reads,
caps from the rule, each with a receipt naming the policy, revision, decision and rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import trio

from actors.audit import verify_audit
from supervisors.host import AuditSection, ToolsSection
from tests._policy import make_test_policy
from tests.host.conftest import host_config, kind, start_host
from tests.tools.test_tool_turns import ToolHost, receipts, run_turns

READ_NOTES = {
    "id": "read-notes",
    "tool": "fs.read",
    "versions": "^1.0.0",
    "effect": "allow",
    "devices": ["local"],
    "caps": {"timeoutMs": 3000, "maxBytes": 1000},
    "paths": ["notes/**"],
}


async def tool_host(
    nursery: trio.Nursery, tmp_path: Path, *, rules: list[dict[str, Any]] | None
) -> ToolHost:
    root = tmp_path / "files"
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "a.txt").write_text("inside the allow-list\n")
    (root / "secret.txt").write_text("outside\n")
    policy = make_test_policy(tmp_path, "nobody")
    if rules is not None:
        policy.write(rules=rules, revision=7, policy_id="acme-policy")
    audit = tmp_path / "audit.jsonl"
    config = host_config(
        tmp_path,
        tls=False,
        tools=ToolsSection(mode="stdio", roots=[str(root)]),
        audit=AuditSection(path=str(audit), fsync_every_records=1),
        policy=policy.section(),
    )
    return ToolHost(await start_host(nursery, config), audit, tmp_path)


def deltas(events: list[Any]) -> list[Any]:
    return [e.tool_call_delta for e in events if kind(e) == "tool_call_delta"]


class TestHostDecisions:
    """Allowed, denied outside the allow-list, and the rule's caps, with receipts."""

    async def test_allowed_and_denied_reads(self, tmp_path: Path) -> None:
        async with trio.open_nursery() as nursery:
            th = await tool_host(nursery, tmp_path, rules=[READ_NOTES])
            allowed, denied = await run_turns(th, "read notes/a.txt", "read secret.txt")
        (ok,) = deltas(allowed)
        assert ok.status == "ok"
        (no,) = deltas(denied)
        assert (no.status, no.error.code) == ("denied", "tool.denied")
        assert "allow-list" in no.error.message
        answer = "".join(e.assistant_delta.text for e in denied if kind(e) == "assistant_delta")
        assert "tool.denied" in answer, "the model is told why"
        first, second = receipts(th.audit)
        assert first["decision"] == "allow"
        assert (first["policy_id"], first["policy_revision"], first["rule_id"]) == (
            "acme-policy",
            7,
            "read-notes",
        )
        assert first["caps"] == {"timeoutMs": 3000, "maxBytes": 1000}, "the rule's caps are tighter"
        assert second["outcome"] == "denied"
        assert (second["decision"], second["rule_id"], second["error_code"]) == (
            "deny",
            "default-deny",
            "tool.denied",
        )
        assert second["result_digest"] is None
        assert verify_audit(th.audit).ok

    async def test_no_bundle_offers_no_tools(self, tmp_path: Path) -> None:
        async with trio.open_nursery() as nursery:
            th = await tool_host(nursery, tmp_path, rules=None)
            (events,) = await run_turns(th, "read notes/a.txt")
        assert not [e for e in events if kind(e).startswith("tool_call")]
        assert kind(events[-1]) == "assistant_done"
        assert not th.audit.exists() or receipts(th.audit) == []

    async def test_a_denied_tool_is_not_offered(self, tmp_path: Path) -> None:
        never = {
            "id": "never",
            "tool": "fs.read",
            "versions": "*",
            "effect": "deny",
            "devices": ["local"],
        }
        async with trio.open_nursery() as nursery:
            th = await tool_host(nursery, tmp_path, rules=[READ_NOTES, never])
            (events,) = await run_turns(th, "read notes/a.txt")
        assert not [e for e in events if kind(e).startswith("tool_call")]

    async def test_arguments_are_capped_by_the_rule(self, tmp_path: Path) -> None:
        async with trio.open_nursery() as nursery:
            th = await tool_host(nursery, tmp_path, rules=[READ_NOTES])
            (events,) = await run_turns(
                th, 'tool fs.read {"path": "notes/a.txt", "maxBytes": 5000}'
            )
        started = next(e.tool_call_started for e in events if kind(e) == "tool_call_started")
        assert json.loads(started.args_json)["maxBytes"] == 1000, "arguments capped by the rule"
