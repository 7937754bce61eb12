"""A turn takes a provider's event at once only when its outbox does; otherwise nothing changes."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from actors.errors import GuardrailBreached
from actors.provider import ChatMessage, ScriptedMockProvider, TextDelta
from actors.session import ClientGone, open_outbox
from actors.session._turn import Turn, TurnPlan, TurnProgress, _RoundSink
from actors.session.messages import AssistantDeltaEvent, SessionLimits

LIMITS = SessionLimits(max_turn_ms=10_000, token_budget=100, max_message_bytes=1024)


def turn_with(capacity: int, *, budget: int = 100) -> tuple[Turn, Any]:
    outbox, events = open_outbox(capacity)
    plan = TurnPlan(
        turn_id="t1",
        session_id="s1",
        tenant="t",
        model="m",
        history=(ChatMessage(role="user", content="hi"),),
        limits=LIMITS,
        budget_remaining=budget,
    )
    turn = Turn(
        plan=plan,
        provider=ScriptedMockProvider(),
        outbox=outbox,
        session=None,  # type: ignore[arg-type]  # not reached: the turn never ends here
        progress=TurnProgress(),
        tool_runner=None,
    )
    return turn, events


class TestOutboxTryEmit:
    """Send or queue without waiting, or say no."""

    async def test_room_takes_it_and_full_refuses(self) -> None:
        outbox, events = open_outbox(1)
        first = AssistantDeltaEvent(turn_id="t1", text="a")
        assert outbox.try_emit(first)
        assert not outbox.try_emit(AssistantDeltaEvent(turn_id="t1", text="b"))
        assert events.receive_nowait() == first
        with pytest.raises(trio.WouldBlock):
            events.receive_nowait()  # the refused one was not queued

    async def test_a_gone_client_is_client_gone(self) -> None:
        outbox, events = open_outbox(1)
        events.close()
        with pytest.raises(ClientGone):
            outbox.try_emit(AssistantDeltaEvent(turn_id="t1", text="a"))


class TestTurnNowait:
    """``on_provider_event_nowait``: all or nothing."""

    async def test_a_taken_delta_is_sent_and_counted(self) -> None:
        turn, events = turn_with(4)
        sink = _RoundSink(turn=turn, before=0)
        sink.send_nowait(TextDelta(text="hello"))
        assert events.receive_nowait() == AssistantDeltaEvent(turn_id="t1", text="hello")
        assert turn.progress.output_tokens == 1
        assert turn.progress.text_parts == ["hello"]

    async def test_a_full_outbox_refuses_and_counts_nothing(self) -> None:
        turn, _events = turn_with(0)  # no room, and no direct way to the client
        sink = _RoundSink(turn=turn, before=0)
        with pytest.raises(trio.WouldBlock):
            sink.send_nowait(TextDelta(text="hello"))
        assert turn.progress.output_tokens == 0
        assert turn.progress.text_parts == []

    async def test_the_budget_still_holds(self) -> None:
        turn, _ = turn_with(4, budget=1)
        sink = _RoundSink(turn=turn, before=0)
        sink.send_nowait(TextDelta(text="one"))
        with pytest.raises(GuardrailBreached):
            sink.send_nowait(TextDelta(text="two"))
        assert turn.progress.output_tokens == 1
