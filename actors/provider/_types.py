"""The provider interface that the mock and every real adapter implement.

A provider streams one completion into a bounded channel that the turn owns. Using a
channel (not an async generator) keeps back-pressure and cancellation structured: when
the turn's reader is slow, ``send`` waits and the provider stops reading its upstream;
when the turn is cancelled, the provider's task is cancelled with it and closes the
upstream connection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol

import attrs

Role = Literal["system", "user", "assistant", "tool"]


@attrs.frozen(kw_only=True)
class ToolCallRequest:
    """A tool call the model made, as it goes back into the conversation history."""

    call_id: str
    name: str
    arguments_json: str


@attrs.frozen(kw_only=True)
class ChatMessage:
    role: Role
    content: str | None = None
    tool_calls: tuple[ToolCallRequest, ...] = ()
    # Set on role="tool" messages: which call this message answers.
    tool_call_id: str | None = None


@attrs.frozen(kw_only=True)
class ToolSpec:
    """A tool offered to the model: name, description and the JSON Schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


@attrs.frozen(kw_only=True)
class CompletionRequest:
    model: str
    messages: tuple[ChatMessage, ...]
    tools: tuple[ToolSpec, ...] = ()
    max_output_tokens: int | None = None


@attrs.frozen(kw_only=True)
class Usage:
    input_tokens: int
    output_tokens: int
    # True when the upstream sent no usage and the figures were estimated.
    estimated: bool = False
    cost_usd: float | None = None


@attrs.frozen(kw_only=True)
class TextDelta:
    text: str


@attrs.frozen(kw_only=True)
class ToolCallRequested:
    """The model asked for a tool; fragments are already assembled into one call."""

    call: ToolCallRequest


@attrs.frozen(kw_only=True)
class Finished:
    finish_reason: str
    usage: Usage


ProviderEvent = TextDelta | ToolCallRequested | Finished


class ProviderEventSink(Protocol):
    """Where a provider puts its events: a bounded memory channel, or a consumer that
    handles each event as it is sent (the turn does, saving a task switch per token).

    ``send`` waits while the consumer is behind (back-pressure) and may raise the
    consumer's own error (a guardrail), which the provider lets through.

    A sink may also have ``send_nowait(value)``, as Trio's memory channels do: take the event
    at once, or raise ``trio.WouldBlock`` having taken nothing. A provider tries it first
    (``nowait_of``): an event taken at once needs none of the bookkeeping around a wait.
    """

    async def send(self, value: ProviderEvent) -> None: ...


def nowait_of(events: ProviderEventSink) -> Callable[[ProviderEvent], None] | None:
    """The sink's ``send_nowait``, if it has one."""
    send_nowait: Callable[[ProviderEvent], None] | None = getattr(events, "send_nowait", None)
    return send_nowait


class LlmProvider(Protocol):
    """Streams one completion.

    ``stream`` sends zero or more ``TextDelta`` / ``ToolCallRequested`` events and then
    exactly one ``Finished`` into ``events``, and returns. It does not close ``events``
    (the caller owns it). It raises ``actors.errors.ProviderError`` on upstream failure.
    On cancellation it closes the upstream stream promptly and re-raises ``trio.Cancelled``.
    """

    name: str

    async def stream(self, request: CompletionRequest, events: ProviderEventSink) -> None: ...
