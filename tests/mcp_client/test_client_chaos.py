"""The client against a misbehaving legacy-only server: fallback, deadlines, cancels, crashes."""

from __future__ import annotations

import logging
from functools import partial

import pytest
import trio

from actors.errors import Overloaded, ToolError
from actors.mcp import (
    CallTool,
    CancelCall,
    Era,
    GetClientStatus,
    ListTools,
    McpClientConfig,
    McpClientLimits,
    call_tool,
)
from zl_actors import AskTimeout

from ._support import DEADLINE_S, LegacyServer, open_client


def config(legacy: LegacyServer, *flags: str, **limits: object) -> McpClientConfig:
    return McpClientConfig(command=legacy.command(*flags), limits=McpClientLimits(**limits))  # type: ignore[arg-type]


class TestNegotiation:
    """A legacy-only server refuses server/discover; the client falls back to initialize."""

    async def test_fallback_to_initialize(self, legacy: LegacyServer) -> None:
        async with open_client(config(legacy)) as ref:
            catalog = await ref.ask(ListTools())
        assert catalog.era is Era.LEGACY
        assert catalog.server_info is not None
        assert catalog.server_info.name == "legacy-test-server"
        methods = [e["message"].get("method") for e in legacy.events("received")]
        assert methods[:4] == [
            "server/discover",
            "initialize",
            "notifications/initialized",
            "tools/list",
        ]
        assert legacy.received("initialize")[0]["params"]["protocolVersion"] == "2025-11-25"

    async def test_catalog_follows_next_cursor(self, legacy: LegacyServer) -> None:
        async with open_client(config(legacy, "--extra-tools", "25", "--page-size", "7")) as ref:
            catalog = await ref.ask(ListTools())
        assert len(catalog.tools) == 8 + 25
        assert catalog.names[-1] == "extra24"
        assert len(legacy.received("tools/list")) == 5
        assert legacy.received("tools/list")[1]["params"] == {"cursor": "7"}


class TestCalls:
    """Results, tool-level errors, JSON-RPC errors, concurrency and its bound."""

    async def test_echo_passes_arguments_and_traceparent(self, legacy: LegacyServer) -> None:
        async with open_client(config(legacy)) as ref:
            result = await call_tool(
                ref,
                CallTool(
                    call_id="a",
                    tool="echo",
                    arguments={"x": [1, "y"]},
                    timeout_s=5,
                    traceparent="tp",
                ),
            )
        assert result.structured_content == {
            "arguments": {"x": [1, "y"]},
            "meta": {"traceparent": "tp"},
        }

    async def test_is_error_and_rpc_error(self, legacy: LegacyServer) -> None:
        async with open_client(config(legacy)) as ref:
            result = await call_tool(ref, CallTool(call_id="a", tool="is_error", timeout_s=5))
            with pytest.raises(ToolError) as caught:
                await call_tool(ref, CallTool(call_id="b", tool="rpc_error", timeout_s=5))
        assert result.is_error is True
        assert caught.value.code == "tool.failed"
        assert "internal trouble" in caught.value.message

    async def test_calls_run_concurrently(self, legacy: LegacyServer) -> None:
        # 20 calls of 1 s each: one after the other they would need 20 s.
        async with open_client(config(legacy)) as ref:
            with trio.fail_after(10):
                async with trio.open_nursery() as nursery:
                    for i in range(20):
                        request = CallTool(
                            call_id=f"s{i}", tool="sleep", arguments={"seconds": 1}, timeout_s=15
                        )
                        nursery.start_soon(call_tool, ref, request)

    async def test_over_the_bound_is_overloaded(self, legacy: LegacyServer) -> None:
        async with (
            open_client(config(legacy, max_concurrent_calls=2)) as ref,
            trio.open_nursery() as nursery,
        ):
            for i in range(2):
                request = CallTool(
                    call_id=f"s{i}", tool="sleep", arguments={"seconds": 30}, timeout_s=30
                )
                nursery.start_soon(call_tool, ref, request)
            with trio.fail_after(DEADLINE_S):
                while (await ref.ask(GetClientStatus())).calls_in_flight < 2:
                    await trio.sleep(0.01)
            with pytest.raises(Overloaded) as caught:
                await call_tool(ref, CallTool(call_id="third", tool="echo", timeout_s=5))
            assert caught.value.code == "overloaded"
            nursery.cancel_scope.cancel()


class TestDeadlinesAndCancels:
    """Expiry, CancelCall and a caller giving up all send the server notifications/cancelled."""

    async def test_deadline_sends_cancel_and_times_out(self, legacy: LegacyServer) -> None:
        async with open_client(config(legacy)) as ref:
            with trio.fail_after(DEADLINE_S), pytest.raises(ToolError) as caught:
                await call_tool(
                    ref,
                    CallTool(call_id="a", tool="sleep", arguments={"seconds": 60}, timeout_s=0.3),
                )
            cancels = await legacy.wait_for(lambda: legacy.received("notifications/cancelled"))
            await legacy.wait_for(lambda: legacy.events("cancelled"))
        assert caught.value.code == "tool.timeout"
        call_id = legacy.received("tools/call")[0]["id"]
        assert cancels[0]["params"]["requestId"] == call_id
        assert "timeout" in cancels[0]["params"]["reason"]
        assert legacy.events("cancelled")[0]["id"] == call_id

    async def test_cancel_call_message(self, legacy: LegacyServer) -> None:
        async with open_client(config(legacy)) as ref:
            async with trio.open_nursery() as nursery:
                outcome: list[BaseException] = []

                async def run() -> None:
                    try:
                        await call_tool(
                            ref,
                            CallTool(
                                call_id="a", tool="sleep", arguments={"seconds": 60}, timeout_s=60
                            ),
                        )
                    except ToolError as exc:
                        outcome.append(exc)

                nursery.start_soon(run)
                await legacy.wait_for(lambda: legacy.received("tools/call"))
                await ref.send(CancelCall(call_id="a", reason="user pressed stop"))
            cancels = await legacy.wait_for(lambda: legacy.received("notifications/cancelled"))
        assert isinstance(outcome[0], ToolError)
        assert outcome[0].code == "tool.cancelled"
        assert cancels[0]["params"]["reason"] == "user pressed stop"

    async def test_caller_cancelled(self, legacy: LegacyServer) -> None:
        async with open_client(config(legacy)) as ref:
            async with trio.open_nursery() as nursery:
                request = CallTool(
                    call_id="a", tool="sleep", arguments={"seconds": 60}, timeout_s=60
                )
                nursery.start_soon(call_tool, ref, request)
                await legacy.wait_for(lambda: legacy.received("tools/call"))
                nursery.cancel_scope.cancel()
            cancels = await legacy.wait_for(lambda: legacy.received("notifications/cancelled"))
            await legacy.wait_for(lambda: legacy.events("cancelled"))
            assert (await ref.ask(GetClientStatus())).calls_in_flight == 0
        assert cancels[0]["params"]["reason"] == "the caller gave up"

    async def test_bare_ask_abandoned(self, legacy: LegacyServer) -> None:
        # A plain ask sends no CancelCall: the client notices the abandoned ask by itself.
        async with open_client(config(legacy)) as ref:
            request = CallTool(call_id="a", tool="sleep", arguments={"seconds": 60}, timeout_s=60)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(partial(ref.ask, request, timeout=60))
                await legacy.wait_for(lambda: legacy.received("tools/call"))
                nursery.cancel_scope.cancel()
            cancels = await legacy.wait_for(lambda: legacy.received("notifications/cancelled"))
            await legacy.wait_for(lambda: legacy.events("cancelled"))
        assert cancels[0]["params"]["reason"] == "the caller gave up"

    async def test_bare_ask_that_times_out(self, legacy: LegacyServer) -> None:
        async with open_client(config(legacy)) as ref:
            request = CallTool(call_id="a", tool="sleep", arguments={"seconds": 60}, timeout_s=60)
            with pytest.raises(AskTimeout):
                await ref.ask(request, timeout=0.5)
            # Whether the call reached the server before the ask gave up depends on timing;
            # either way nothing stays in flight.
            with trio.fail_after(DEADLINE_S):
                while (await ref.ask(GetClientStatus())).calls_in_flight:
                    await trio.sleep(0.02)
            if legacy.received("tools/call"):
                await legacy.wait_for(lambda: legacy.received("notifications/cancelled"))

    async def test_hung_tool_times_out_and_the_next_call_works(self, legacy: LegacyServer) -> None:
        async with open_client(config(legacy)) as ref:
            with pytest.raises(ToolError) as caught:
                await call_tool(ref, CallTool(call_id="a", tool="hang", timeout_s=0.3))
            result = await call_tool(ref, CallTool(call_id="b", tool="echo", timeout_s=5))
        assert caught.value.code == "tool.timeout"
        assert result.is_error is False


class TestCrashAndGarbage:
    """A crash fails calls at once and the supervisor restarts the server; garbage is survived."""

    async def test_crash_mid_call(
        self, legacy: LegacyServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="actors.mcp.client")
        async with open_client(config(legacy, "--stderr-lines", "2")) as ref:
            first_pid = (await ref.ask(GetClientStatus())).pid
            errors: list[ToolError] = []

            async def expect_unavailable(request: CallTool) -> None:
                with pytest.raises(ToolError) as caught:
                    await call_tool(ref, request)
                errors.append(caught.value)

            # Both calls have 60 s deadlines: the errors must come from the crash, at once.
            with trio.fail_after(5):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(
                        expect_unavailable,
                        CallTool(
                            call_id="bystander",
                            tool="sleep",
                            arguments={"seconds": 60},
                            timeout_s=60,
                        ),
                    )
                    await legacy.wait_for(lambda: legacy.received("tools/call"))
                    nursery.start_soon(
                        expect_unavailable, CallTool(call_id="boom", tool="crash", timeout_s=60)
                    )
            with trio.fail_after(DEADLINE_S):
                result = await call_tool(ref, CallTool(call_id="after", tool="echo", timeout_s=5))
            second_pid = (await ref.ask(GetClientStatus())).pid
        assert [e.code for e in errors] == ["tool.unavailable", "tool.unavailable"]
        assert "exit status 3" in errors[0].message or "exited with status 3" in errors[0].message
        assert "stderr line 1" in errors[0].message  # the stderr tail explains the crash
        assert result.is_error is False
        assert first_pid != second_pid

    async def test_garbage_lines_are_survived(self, legacy: LegacyServer) -> None:
        async with open_client(config(legacy)) as ref:
            pid = (await ref.ask(GetClientStatus())).pid
            result = await call_tool(ref, CallTool(call_id="g", tool="garbage", timeout_s=5))
            status = await ref.ask(GetClientStatus())
        assert result.is_error is False
        assert status.garbage_lines == 3
        assert status.unmatched_responses == 1
        assert status.pid == pid

    async def test_unparseable_response_is_a_typed_error(self, legacy: LegacyServer) -> None:
        async with open_client(config(legacy)) as ref:
            with trio.fail_after(5), pytest.raises(ToolError) as caught:
                await call_tool(ref, CallTool(call_id="b", tool="bad_response", timeout_s=60))
            after = await call_tool(ref, CallTool(call_id="c", tool="echo", timeout_s=5))
        assert caught.value.code == "tool.failed"
        assert after.is_error is False
