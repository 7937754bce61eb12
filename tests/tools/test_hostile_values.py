"""Values that break code further in are refused where they enter, and a call's end cannot
fail silently: every call that started ends with a typed ``tool.call.delta``, one receipt
and, if its end failed inside the host, a log line and the outcome ``internal``.

Arguments come from the model (the mock, or the OpenAI-compatible adapter against the fake
upstream), results from a real MCP server subprocess.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import trio

from actors.audit import verify_audit
from actors.provider.fake_upstream import Script, ScriptedToolCall, open_fake_upstream
from supervisors.host import AuditSection, DebugSection, HostAddresses, ToolsSection, run_host
from supervisors.host._provider import open_host_provider
from tests._policy import bearer, caller_token, with_metadata
from tests.host.conftest import (
    STEP_S,
    Conversation,
    host_config,
    in_thread,
    kind,
    say,
    start_host,
    start_request,
)
from tests.host_provider.conftest import provider_section

from .test_tool_turns import ROGUE, receipts, run_turns, start_tool_host


def deltas(events: list[Any]) -> list[Any]:
    return [e.tool_call_delta for e in events if kind(e) == "tool_call_delta"]


class TestRefusedWhereTheyEnter:
    """Out-of-range integers and lone surrogates: a typed error and a receipt, at once."""

    @pytest.mark.parametrize(
        ("message", "code"),
        [
            pytest.param(
                'tool fs.read {"path": "a", "offset": 9007199254740993}',
                "tool.invalid_args",
                id="model-integer-past-2**53",
            ),
            pytest.param(
                'tool fs.read {"path": "a\\ud800"}', "tool.invalid_args", id="model-lone-surrogate"
            ),
            pytest.param(
                'tool fs.read {"path": "a", "path": "b"}',
                "tool.invalid_args",
                id="model-duplicate-key",
            ),
            pytest.param("read hugeint", "tool.invalid_result", id="server-integer-past-2**53"),
            pytest.param("read surrogate", "tool.invalid_result", id="server-lone-surrogate"),
        ],
    )
    async def test_typed_error_and_receipt(self, tmp_path: Path, message: str, code: str) -> None:
        async with trio.open_nursery() as nursery:
            th = await start_tool_host(
                nursery, tmp_path, command=[sys.executable, str(ROGUE)], timeout_ms=30_000
            )
            with trio.fail_after(STEP_S):  # far below the turn's 60 s and the call's 30 s
                events, again = await run_turns(th, message, "read hello.txt")
        [delta] = deltas(events)
        assert (delta.status, delta.error.code) == ("error", code)
        assert kind(events[-1]) == "assistant_done", "the model answers after a refused call"
        assert deltas(again)[0].status == "ok"
        first, second = receipts(th.audit)
        assert (first["outcome"], first["error_code"]) == ("error", code)
        assert second["outcome"] == "ok"
        assert verify_audit(th.audit).ok


class TestTheCallsEndCannotFailSilently:
    """Arguments with no canonical form: outcome ``internal``, a delta, and a log line."""

    async def test_unparsed_arguments_with_a_lone_surrogate(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        # The adapter's JSON decodes "\ud800" inside the arguments string to a lone surrogate
        # character: the arguments are refused, and their raw text has no canonical JSON.
        root = tmp_path / "root"
        root.mkdir()
        audit = tmp_path / "audit.jsonl"
        script = Script(text="", tool_call=ScriptedToolCall(arguments='{"path": "a\ud800"}'))
        async with open_fake_upstream(script) as upstream:
            config = host_config(
                tmp_path,
                tls=False,
                tools=ToolsSection(mode="stdio", roots=[str(root)]),
                audit=AuditSection(path=str(audit), fsync_every_records=1),
            )
            async with (
                open_host_provider(provider_section(upstream.url)) as stack,
                trio.open_nursery() as nursery,
            ):
                shutdown = trio.Event()
                addresses: HostAddresses = await nursery.start(
                    lambda task_status: run_host(
                        config, shutdown=shutdown, provider=stack.provider, task_status=task_status
                    )
                )
                with with_metadata(
                    grpc.insecure_channel(f"127.0.0.1:{addresses.grpc_port}"),
                    bearer(caller_token()),
                ) as channel:
                    talk = Conversation(channel)
                    talk.send(start_request())
                    await in_thread(talk.next_event)
                    talk.send(say("read it"))
                    with trio.fail_after(STEP_S):
                        events = await in_thread(
                            lambda: talk.until(lambda e: kind(e) == "tool_call_delta")
                        )
                    talk.close()
                    await in_thread(talk.rest)
                shutdown.set()
        started = events[0].tool_call_started
        assert "\ufffd" in started.args_json  # shown, as UTF-8 can carry it
        [delta] = deltas(events)
        assert (delta.status, delta.error.code) == ("internal", "internal")
        [receipt] = receipts(audit)
        assert (receipt["outcome"], receipt["error_code"]) == ("internal", "internal")
        assert receipt["args_digest"].startswith("sha256:")
        assert verify_audit(audit).ok
        assert any(
            r.levelno >= logging.ERROR and "receipt cannot be made" in r.getMessage()
            for r in caplog.records
        )


class TestArgumentsAsRead:
    """What the model's arguments become: strict JSON text in the started event."""

    async def test_args_json_is_json(self, tmp_path: Path) -> None:
        async with trio.open_nursery() as nursery:
            th = await start_tool_host(nursery, tmp_path, command=[sys.executable, str(ROGUE)])
            (events,) = await run_turns(th, 'tool fs.read {"path": "zoë.txt"}')
        started = events[0].tool_call_started
        assert json.loads(started.args_json)["path"] == "zoë.txt"


def find_path(node: dict[str, Any], prefix: str) -> str | None:
    if node["name"].startswith(prefix):
        return str(node["path"])
    for child in node["children"]:
        found = find_path(child, prefix)
        if found is not None:
            return found
    return None


class TestADeadCallIsSeen:
    """A tool call actor that dies is seen by its turn at once (run_child), never waited on."""

    async def test_crashed_call_ends_the_turn_with_a_typed_error(self, tmp_path: Path) -> None:
        audit = tmp_path / "audit.jsonl"
        config = host_config(
            tmp_path,
            tls=False,
            debug=DebugSection(port=0, faults=True),
            tools=ToolsSection(mode="stdio", command=[sys.executable, str(ROGUE)]),
            audit=AuditSection(path=str(audit), fsync_every_records=1),
        )
        async with trio.open_nursery() as nursery:
            host = await start_host(nursery, config)
            with host.channel() as channel:
                talk = Conversation(channel)
                talk.send(start_request())
                await in_thread(talk.next_event)
                talk.send(say("read hang"))
                await in_thread(lambda: talk.until(lambda e: kind(e) == "tool_call_started"))
                path = find_path(await host.tree(), "tool_call-")
                assert path is not None
                async with httpx.AsyncClient(timeout=5) as client:
                    response = await client.post(
                        f"{host.addresses.debug_url}/debug/faults",
                        params={"action": "crash", "path": path},
                    )
                assert response.status_code == 200
                with trio.fail_after(STEP_S):
                    events = await in_thread(
                        lambda: talk.until(lambda e: kind(e) in ("assistant_done", "error"))
                    )
                talk.close()
                await in_thread(talk.rest)
            host.shutdown.set()
        assert [kind(e) for e in events] == ["tool_call_delta", "error"]
        assert events[-1].error.code == "internal"
        [receipt] = receipts(audit)
        assert receipt["outcome"] == "cancelled"
