"""The chat page in headless Chromium, end to end over real sockets:

browser ─HTTPS/SSE─▶ BFF ─gRPC/TLS─▶ host ─WSS─▶ relay ◀─WSS─ bridge ─stdio─▶ MCP server

One session: a turn whose model reads a file on the device (fs.read through the relay and
the bridge) shows the call, its result and its receipt id, which is in the host's audit; a
long answer streams and is cancelled from the keyboard. A screenshot stays in tmp_path.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import trio

from actors.audit import verify_audit
from supervisors.host import AuditSection
from tests.relay._support import Bridge, make_env, start_relay
from tests.relay_host._support import DEVICE, NOTES, TENANT, device_root, relay_host_config

from ._support import STEP_S, Stack, chromium_page, create_session, mock_section, open_stack

# The long answer: 600 tokens at 40/s (15 s) is still streaming when it is cancelled.
MOCK = {"tokens_per_s": 40, "answer_tokens": 600, "first_token_delay_ms": 5}


def _wait_longer(locator: Any, chars: int) -> int:
    """Wait until ``locator``'s text is longer than ``chars``; its length then."""
    deadline = time.monotonic() + STEP_S
    while time.monotonic() < deadline:
        length = len(locator.inner_text())
        if length > chars:
            return length
        time.sleep(0.05)
    raise AssertionError(f"the answer did not grow past {chars} characters")


def _drive_page(stack: Stack, tmp_path: Path, token: str) -> dict[str, Any]:
    """What the page showed (run in a worker thread: Playwright's API here is blocking)."""
    seen: dict[str, Any] = {}
    with chromium_page(tmp_path, trust_cert=stack.certs / "server.pem") as page:
        page.goto(f"{stack.bff.url}/#token={token}&device={DEVICE}")
        page.wait_for_selector("body[data-ready=true]")
        # Labels name every control (what a screen reader announces).
        for control in ("Caller token", "Device", "Message"):
            assert page.get_by_label(control, exact=True).count() == 1, control
        message = page.get_by_label("Message", exact=True)
        message.fill("Please read notes.txt")
        message.press("Enter")
        receipt = page.wait_for_selector("[data-testid=receipt]")
        seen["receipt_id"] = receipt.get_attribute("data-receipt")
        seen["tool"] = page.inner_text("li.tool")
        page.wait_for_selector("[data-testid=done]")
        seen["answer"] = page.locator("li.assistant").last.inner_text()
        # A long answer: it streams (the text grows), then Escape cancels it.
        message.fill("tell me everything")
        message.press("Enter")
        answer = page.locator("li.assistant").nth(1)
        answer.wait_for()
        # (Polled from here: the page's CSP refuses the eval that wait_for_function needs.)
        first = _wait_longer(answer, 40)
        _wait_longer(answer, first + 20)
        seen["grew"] = (first, len(answer.inner_text()))
        message.press("Escape")
        done = page.wait_for_selector("li.assistant >> nth=1 >> [data-testid=done]")
        seen["finish"] = done.get_attribute("data-finish")
        seen["status"] = page.inner_text("#status")
        page.screenshot(path=str(tmp_path / "chat-page.png"), full_page=True)
        # Keyboard focus returns to the message box for the next turn.
        seen["focused"] = page.evaluate("document.activeElement.id")
    return seen


async def _tool_turn(client: httpx.AsyncClient, sid: str) -> bool:
    """Whether a "read notes.txt" turn used the tool (else it is cancelled at once)."""
    body = {"session_id": sid, "message": "read notes.txt"}
    used = False
    async with client.stream("POST", "/v1/chat/stream", json=body) as response:
        async for line in response.aiter_lines():
            if line.startswith("event: tool.call.started"):
                used = True
            elif line.startswith("event: assistant.delta") and not used:
                await client.post(f"/v1/sessions/{sid}/cancel")
                used = False
    return used


class TestChatPageEndToEnd:
    """A person's turn from the browser reaches the device's MCP server and back."""

    async def test_browser_to_mcp_server_through_relay(self, tmp_path: Path) -> None:
        env = make_env(tmp_path)
        root = device_root(tmp_path)
        audit = tmp_path / "audit.jsonl"
        config = relay_host_config(
            env,
            tmp_path,
            audit=AuditSection(path=str(audit), fsync_every_records=1),
            provider=mock_section(**MOCK),
        )
        async with trio.open_nursery() as nursery:
            scopes = [(await start_relay(nursery, env.config(s.shard_id)))[1] for s in env.shards]
            bridge = Bridge(env, env.shards[0].url, TENANT, DEVICE, root=root)
            try:
                (tmp_path / "bff").mkdir()
                async with open_stack(tmp_path / "bff", host=config) as stack:
                    token = stack.keys.token(tenant=TENANT, devices=(DEVICE,))
                    # Until the bridge has announced itself the device offers no tools: wait
                    # for one tool turn through the API before the browser's.
                    async with stack.client(token=token) as client:
                        sid = await create_session(client, device_id=DEVICE)
                        with trio.fail_after(STEP_S):
                            while not await _tool_turn(client, sid):
                                await trio.sleep(0.2)
                    seen = await trio.to_thread.run_sync(_drive_page, stack, tmp_path, token)
            finally:
                bridge.stop()
                for scope in scopes:
                    scope.cancel()
        assert "fs.read" in seen["tool"]
        assert '"path":"notes.txt"' in seen["tool"].replace(" ", "")
        assert "ok" in seen["tool"]
        assert NOTES.strip() in seen["answer"]
        assert seen["grew"][1] > seen["grew"][0]
        assert seen["finish"] == "cancelled"
        assert seen["focused"] == "message"
        receipts = [
            json.loads(line)["payload"]
            for line in audit.read_text().splitlines()
            if json.loads(line)["kind"] == "tool.receipt"
        ]
        shown = [r for r in receipts if r["receipt_id"] == seen["receipt_id"]]
        assert len(shown) == 1, (seen["receipt_id"], receipts)
        assert shown[0]["device_id"] == DEVICE
        assert shown[0]["outcome"] == "ok"
        assert verify_audit(audit).ok
        assert (tmp_path / "chat-page.png").stat().st_size > 0
