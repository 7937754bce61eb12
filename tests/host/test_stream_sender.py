"""The session's events reach the client in order, whichever way each one takes.

The outbox offers every event to the edge's sender first (sent at once, in the emitting
task); what the stream cannot take now goes through the outbox's channel and the sender's
own task. These tests drive that switch with a stream whose window is opened and shut by
hand.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import trio
import trio.testing

from actors.session import ClientGone, Outbox, open_outbox
from actors.session.messages import AssistantDeltaEvent, SessionEvent
from contracts.generated import agent_pb2
from supervisors.host._chat_edge import _StreamSender

STEP_S = 5


class ShutterStream:
    """The two sending calls of a ``ServerStream``, with a window opened and shut by hand."""

    def __init__(self) -> None:
        self.window_open = True
        self.sent: list[tuple[str, agent_pb2.ChatEvent]] = []  # (how, event)
        self.window_opened = trio.Event()

    def try_send(self, message: agent_pb2.ChatEvent) -> bool:
        if not self.window_open:
            return False
        self.sent.append(("at once", message))
        return True

    async def send(self, message: agent_pb2.ChatEvent) -> None:
        await self.window_opened.wait()
        self.sent.append(("queued", message))

    def open_window(self) -> None:
        self.window_open = True
        self.window_opened.set()

    def texts(self) -> list[str]:
        return [event.assistant_delta.text for _, event in self.sent]


def delta(text: str, turn: str = "t1") -> SessionEvent:
    return AssistantDeltaEvent(turn_id=turn, text=text)


@contextlib.asynccontextmanager
async def sending(stream: ShutterStream) -> AsyncIterator[Outbox]:
    """An outbox whose events go to ``stream`` through the edge's sender; closed at the end."""
    sender = _StreamSender(stream)  # type: ignore[arg-type]
    outbox, events = open_outbox(direct=sender)
    with trio.fail_after(STEP_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sender.run, events)
            yield outbox
            outbox.close()


async def test_events_go_at_once_while_the_stream_takes_them() -> None:
    stream = ShutterStream()
    async with sending(stream) as outbox:
        with trio.testing.assert_no_checkpoints():
            for text in ("a", "b", "c"):
                await outbox.emit(delta(text))
    assert [how for how, _ in stream.sent] == ["at once"] * 3
    assert stream.texts() == ["a", "b", "c"]
    assert [event.seq for _, event in stream.sent] == [1, 2, 3]


async def test_nothing_overtakes_an_event_waiting_in_the_channel() -> None:
    stream = ShutterStream()
    async with sending(stream) as outbox:
        await outbox.emit(delta("1"))
        stream.window_open = False
        await outbox.emit(delta("2", turn="t2"))  # refused: into the channel
        # The window is back, but "2" has not gone yet: "3" must queue behind it.
        stream.window_open = True
        await outbox.emit(delta("3", turn="t3"))
        await trio.testing.wait_all_tasks_blocked()
        assert stream.texts() == ["1"]
        stream.open_window()
        await trio.testing.wait_all_tasks_blocked()
        # The channel is drained: the direct way is open again.
        await outbox.emit(delta("4", turn="t4"))
    assert stream.texts() == ["1", "2", "3", "4"]
    assert [how for how, _ in stream.sent] == ["at once", "queued", "queued", "at once"]
    assert [event.seq for _, event in stream.sent] == [1, 2, 3, 4]


async def test_queued_deltas_of_one_turn_are_merged() -> None:
    stream = ShutterStream()
    stream.window_open = False
    async with sending(stream) as outbox:
        await outbox.emit(delta("a"))
        await trio.testing.wait_all_tasks_blocked()  # "a" is in the sender's hands
        for text in ("b", "c", "d"):
            await outbox.emit(delta(text))
        stream.open_window()
        await trio.testing.wait_all_tasks_blocked()
    assert stream.texts() == ["a", "bcd"]
    assert [event.seq for _, event in stream.sent] == [1, 2]


async def test_a_closed_outbox_sends_nothing_more() -> None:
    stream = ShutterStream()
    sender = _StreamSender(stream)  # type: ignore[arg-type]
    outbox, events = open_outbox(direct=sender)
    outbox.close()
    events.close()
    try:
        await outbox.emit(delta("late"))
    except ClientGone:
        pass
    else:
        raise AssertionError("emit after close did not report the client gone")
    assert stream.sent == []
