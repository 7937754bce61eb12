"""The session starts a turn in the sender's task when it is idle (``Session.handle_inline``)."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from actors.provider import MockProviderConfig, ScriptedMockProvider
from actors.session import LimitPolicy, Session, SessionDeps, open_outbox
from actors.session.messages import (
    AssistantDeltaEvent,
    AssistantDoneEvent,
    ErrorEvent,
    RequestedLimits,
    SessionInbound,
    SessionLimits,
    SessionStartedEvent,
    StartSession,
    UserMessage,
)
from zl_actors import ActorRef, ActorSpec, Restart, open_actor_system

LIMITS = SessionLimits(max_turn_ms=10_000, token_budget=10_000, max_message_bytes=1024)
# A slow answer: the turn is still running when the test sends its next message.
PROVIDER = MockProviderConfig(first_token_delay_s=0.0, tokens_per_s=100.0, answer_tokens=5)


async def new_session(system: Any) -> tuple[ActorRef[SessionInbound], Any]:
    """A session actor, idle and not started; its events."""
    outbox, events = open_outbox()
    deps = SessionDeps(
        provider=ScriptedMockProvider(PROVIDER),
        limits=LimitPolicy(default=LIMITS, maximum=LIMITS),
    )
    session: ActorRef[SessionInbound] = await system.spawn(
        ActorSpec(
            name="session",
            factory=lambda: Session(session_id="s1", deps=deps, outbox=outbox),
            restart=Restart.TEMPORARY,
        )
    )
    await trio.testing.wait_all_tasks_blocked()
    return session, events


async def started_session(system: Any) -> tuple[ActorRef[SessionInbound], Any]:
    session, events = await new_session(system)
    session.send_nowait(
        StartSession(tenant="t", user="u", device_id="d", model="m", limits=RequestedLimits())
    )
    with trio.fail_after(5):
        assert isinstance(await events.receive(), SessionStartedEvent)
    await trio.testing.wait_all_tasks_blocked()
    return session, events


def turns(system: Any) -> list[str]:
    (session,) = system.snapshot().children
    return [child.name for child in session.children]


class TestInlineTurnStart:
    """A user message starts its turn before the sender yields; refusals still answer."""

    async def test_the_turn_starts_in_the_senders_task(self) -> None:
        async with open_actor_system("t") as system:
            session, events = await started_session(system)
            with trio.testing.assert_no_checkpoints():
                session.send_nowait(UserMessage(text="hello"))
                assert turns(system) == ["t1"]  # no hand-over to the session's task
            with trio.fail_after(5):
                kinds = []
                while not kinds or kinds[-1] is not AssistantDoneEvent:
                    kinds.append(type(await events.receive()))
            assert set(kinds[:-1]) == {AssistantDeltaEvent}

    async def test_a_refused_message_is_answered_by_the_session(self) -> None:
        async with open_actor_system("t") as system:
            session, events = await started_session(system)
            session.send_nowait(UserMessage(text="first"))
            session.send_nowait(UserMessage(text="second, while the first runs"))
            with trio.fail_after(5):
                event = await events.receive()
                while not isinstance(event, ErrorEvent):
                    event = await events.receive()
            assert event.error.code == "session.busy"
            assert event.turn_id == "t1"

    async def test_a_message_before_the_start_is_refused(self) -> None:
        async with open_actor_system("t") as system:
            session, events = await new_session(system)
            session.send_nowait(UserMessage(text="too early"))
            with trio.fail_after(5):
                event = await events.receive()
            assert isinstance(event, ErrorEvent)
            assert event.error.code == "session.not_started"
            assert turns(system) == []
