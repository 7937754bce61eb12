"""``POST /v1/chat/completions``: the OpenAI chat API in front of the host.

Each request is a session of its own (opened with the caller's token, closed after the
answer) and one turn. The host keeps no history across requests here, so earlier messages
of the request go to the host as a transcript before the last user message.

Streaming answers are ``chat.completion.chunk`` objects: a first chunk with the role, one
per text delta, tool events in the extension field ``zl`` (``{"event": {...}}``, the same
JSON as ``/v1/chat/stream``'s), then a chunk with ``finish_reason`` and ``usage``, then
``[DONE]``. With ``stream_options.include_usage`` the usage also comes, as OpenAI sends it,
in one more chunk with no choices. An error mid-stream is ``data: {"error": {...}}``, which
the OpenAI SDKs raise as an ``APIError``.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from contracts.generated import agent_pb2
from zl_actors import ActorRef, ActorStopped, MailboxFull

from ._app import (
    ASK_TIMEOUT_S,
    TurnEventStream,
    _state,
    ask_session,
    authenticate,
    read_json,
    start_session,
    traceparent_of,
)
from ._events import event_json, kind_of
from ._problems import Problem, known_code
from ._session import SessionRequest
from .messages import CloseSession, Refusal, SessionMessage, StartTurn, TurnStream

_FINISH: Final = {"stop": "stop", "length": "length", "tool_calls": "tool_calls"}
_TOOL_KINDS: Final = frozenset({"tool_call_started", "tool_call_delta"})


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if part.get("type") == "text")
    return ""


def conversation_text(messages: list[dict[str, Any]]) -> str:
    """What the host is sent: the last user message, after a transcript of the rest.

    Raises:
        Problem: ``invalid_request`` when no user message has text.
    """
    turns = [(m["role"], _text_of(m.get("content"))) for m in messages]
    last = max((i for i, (role, text) in enumerate(turns) if role == "user" and text), default=-1)
    if last < 0:
        raise Problem("invalid_request", "body.messages: no user message with text")
    earlier = [f"{role}: {text}" for role, text in turns[:last] + turns[last + 1 :] if text]
    if not earlier:
        return turns[last][1]
    return "Conversation so far:\n" + "\n".join(earlier) + "\n\n" + turns[last][1]


def _usage(done: agent_pb2.AssistantDone) -> dict[str, int]:
    usage = done.usage
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


class ChunkRenderer:
    """Turns the host's events into ``chat.completion.chunk`` SSE lines (see module doc)."""

    def __init__(self, *, model: str, include_usage: bool) -> None:
        self.id = "chatcmpl-" + uuid.uuid4().hex
        self.model = model
        self.created = int(time.time())
        self.include_usage = include_usage
        self.first = True

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        chunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }
        return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"

    def __call__(self, event: agent_pb2.ChatEvent) -> bytes:
        out = b""
        if self.first:
            self.first = False
            role = {"role": "assistant", "content": ""}
            out += self._chunk([{"index": 0, "delta": role, "finish_reason": None}])
        kind = kind_of(event)
        if kind == "assistant_delta":
            delta = {"content": event.assistant_delta.text}
            out += self._chunk([{"index": 0, "delta": delta, "finish_reason": None}])
        elif kind in _TOOL_KINDS:
            empty = [{"index": 0, "delta": {}, "finish_reason": None}]
            out += self._chunk(empty, zl={"event": event_json(event)})
        elif kind == "assistant_done":
            done = event.assistant_done
            finish = _FINISH.get(done.finish_reason, "stop")
            usage = _usage(done)
            final = [{"index": 0, "delta": {}, "finish_reason": finish}]
            out += self._chunk(final, usage=usage, zl={"event": event_json(event)})
            if self.include_usage:
                out += self._chunk([], usage=usage)
        elif kind == "error":
            error = {
                "message": event.error.message,
                "type": event.error.code,
                "code": event.error.code,
                "retryable": event.error.retryable,
            }
            out += b"data: " + json.dumps({"error": error}).encode() + b"\n\n"
        return out


def _close_soon(ref: ActorRef[SessionMessage]) -> None:
    with contextlib.suppress(MailboxFull, ActorStopped):
        ref.send_nowait(CloseSession())


class _ClosingStream(TurnEventStream):
    """The chunk stream; the request's session is closed when it ends."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            _close_soon(self.session)


async def _collect(turn: TurnStream) -> list[agent_pb2.ChatEvent]:
    events = []
    async with turn.events:
        async for event in turn.events:
            events.append(event)
    return events


async def chat_completions(request: Request) -> Response | TurnEventStream:
    state = _state(request)
    caller = authenticate(state, request)
    body = await read_json(request, "ChatCompletionRequest", state.config.http.max_body_bytes)
    text = conversation_text(body["messages"])
    extension = body.get("zl") or {}
    limits = extension.get("limits") or {}
    wanted = SessionRequest(
        device_id=extension.get("device_id", caller.default_device()),
        model=body["model"],
        max_turn_ms=int(limits.get("max_turn_ms", 0)),  # JSON Schema integers include 1.0
        token_budget=int(limits.get("token_budget", 0)),
        max_message_bytes=int(limits.get("max_message_bytes", 0)),
    )
    ref, info = await start_session(state, caller, wanted, traceparent_of(request))
    handed_over = False
    try:
        answer = await ask_session(ref, StartTurn(text=text), timeout=ASK_TIMEOUT_S)
        if isinstance(answer, Refusal):
            raise Problem(answer.code, answer.detail)
        if body.get("stream"):
            options = body.get("stream_options") or {}
            renderer = ChunkRenderer(
                model=body["model"], include_usage=bool(options.get("include_usage"))
            )
            handed_over = True
            return _ClosingStream(
                answer,
                ref,
                heartbeat_s=state.config.sessions.sse_heartbeat_s,
                render=renderer,
                closing=b"data: [DONE]\n\n",
            )
        events = await _collect(answer)
    finally:
        if not handed_over:
            _close_soon(ref)
    return JSONResponse(_completion(body["model"], info.session_id, events))


def _completion(model: str, session_id: str, events: list[agent_pb2.ChatEvent]) -> dict[str, Any]:
    text = "".join(e.assistant_delta.text for e in events if kind_of(e) == "assistant_delta")
    done = next((e for e in events if kind_of(e) == "assistant_done"), None)
    error = next((e for e in events if kind_of(e) == "error"), None)
    if done is None:
        if error is not None:
            raise Problem(known_code(error.error.code), error.error.message, status=502)
        raise Problem("unavailable", "the turn ended without an answer", status=502)
    return {
        "id": "chatcmpl-" + uuid.uuid4().hex,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": _FINISH.get(done.assistant_done.finish_reason, "stop"),
            }
        ],
        "usage": _usage(done.assistant_done),
        "zl": {
            "session_id": session_id,
            "events": [event_json(e) for e in events if kind_of(e) in _TOOL_KINDS | {"error"}],
        },
    }
