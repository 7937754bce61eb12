"""What the fake upstream answers: scripts, and the OpenAI streaming chunks they turn into.

A :class:`Script` describes one response: its status, its timing, its text or tool call,
and at most one :class:`Fault`. :func:`plan_response` turns a script and the parsed request
body into a list of :class:`Step` objects that the server plays back over the socket. Keeping
the chunk building here (pure, no sockets) lets the exact wire format be read in one place.

The chunks follow OpenAI's ``chat.completion.chunk`` stream: a first chunk with
``delta.role``, content pieces, ``tool_calls`` fragments (the first with ``index``, ``id``,
``type`` and ``function.name``, the later ones with ``function.arguments`` pieces only), a
chunk with ``finish_reason``, a usage chunk with empty ``choices`` when the request set
``stream_options.include_usage``, then ``data: [DONE]``.
"""

from __future__ import annotations

import enum
import json
import re
from typing import Any

import attrs

# A fixed creation time keeps the chunks byte-for-byte reproducible across runs.
_CREATED = 1_700_000_000
# Splits text into word-sized pieces that keep their trailing spaces, like a tokenizer's output.
_PIECE = re.compile(r"\S+\s*|\s+")


class Fault(enum.Enum):
    """One way for the upstream to misbehave.

    ``HANG_BEFORE_RESPONSE``: accept the request and never send a status line.
    ``HANG_MID_STREAM``: stop sending after ``fault_after`` content chunks, keep the socket open.
    ``MALFORMED_CHUNK``: after ``fault_after`` content chunks, send a ``data:`` line that is
    not JSON.
    ``CUT_MID_STREAM``: after ``fault_after`` content chunks, close the TCP connection.
    ``NO_DONE``: end the HTTP body cleanly without a finish chunk and without ``[DONE]``.
    """

    HANG_BEFORE_RESPONSE = "hang_before_response"
    HANG_MID_STREAM = "hang_mid_stream"
    MALFORMED_CHUNK = "malformed_chunk"
    CUT_MID_STREAM = "cut_mid_stream"
    NO_DONE = "no_done"


@attrs.frozen(kw_only=True)
class ScriptedToolCall:
    """A tool call the fake model makes, streamed as ``fragments`` argument pieces."""

    call_id: str = "call_0001"
    # None: call the first tool the request offers, under the name the request gave it.
    name: str | None = None
    arguments: str = '{"path": "notes/todo.txt"}'
    fragments: int = 4


@attrs.frozen(kw_only=True)
class Script:
    """One scripted response.

    Args:
        status: the HTTP status; anything but 200 sends a JSON error body instead of a stream.
        retry_after: the ``Retry-After`` header value sent with a non-200 status, if any.
        error_message: the ``error.message`` of a non-200 body (default: names the status).
        first_token_delay: seconds between the request and the first content chunk.
        token_interval: seconds between content chunks (the token rate is its inverse).
        text: the answer, streamed one word-sized piece per chunk.
        tool_call: if set, and the conversation's last message is not a ``tool`` result,
            the model calls this tool after ``text`` and finishes with ``tool_calls``.
        answer_prefix: when the last message is a ``tool`` result, the model answers with this
            prefix followed by the tool's content, so tests can see the result reached it.
        send_usage: send the usage chunk when the request asks for it; False simulates an
            upstream that never reports usage.
        pieces_per_chunk: word-sized pieces (tokens) per content chunk; real servers often
            send several tokens in one chunk.
        completion_tokens: the usage chunk's ``completion_tokens``; by default one per piece
            and per tool-call fragment (the upstream's own count, whatever its chunking).
        fault: at most one misbehaviour (see :class:`Fault`).
        fault_after: how many content chunks are sent before the fault.
        extra_headers: more response headers (``Set-Cookie``, say), sent with any status.
    """

    status: int = 200
    retry_after: str | None = None
    error_message: str | None = None
    first_token_delay: float = 0.0
    token_interval: float = 0.0
    text: str = "Hello from the fake upstream."
    tool_call: ScriptedToolCall | None = None
    answer_prefix: str = "The tool said: "
    send_usage: bool = True
    pieces_per_chunk: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    completion_tokens: int | None = None
    fault: Fault | None = None
    fault_after: int = 1
    extra_headers: tuple[tuple[str, str], ...] = ()


@attrs.frozen(kw_only=True)
class Send:
    """Write these bytes (one SSE event or a whole error body) after sleeping ``delay``."""

    data: bytes
    delay: float = 0.0


@attrs.frozen(kw_only=True)
class Hang:
    """Send nothing more and keep the connection open until the client leaves."""


@attrs.frozen(kw_only=True)
class Cut:
    """Close the TCP connection without finishing the HTTP message."""


Step = Send | Hang | Cut


@attrs.frozen(kw_only=True)
class ResponsePlan:
    """The status line, headers and body steps of one response."""

    status: int
    headers: tuple[tuple[str, str], ...]
    steps: tuple[Step, ...]
    # An error body has a Content-Length; a stream is chunked and may be cut or hang.
    streaming: bool


def _event(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


def _chunk(
    model: str,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    *,
    with_usage_field: bool,
) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    # OpenAI puts "usage": null on every chunk but the last when include_usage is on.
    if with_usage_field:
        chunk["usage"] = None
    return chunk


def _split(text: str, parts: int) -> list[str]:
    """Cut ``text`` into ``parts`` pieces of near-equal length (some may be empty)."""
    parts = max(1, parts)
    size = -(-len(text) // parts) if text else 0
    return [text[i * size : (i + 1) * size] for i in range(parts)] if size else [text]


def _tool_name(call: ScriptedToolCall, body: dict[str, Any]) -> str:
    if call.name is not None:
        return call.name
    tools = body.get("tools") or []
    try:
        return str(tools[0]["function"]["name"])
    except (IndexError, KeyError, TypeError):
        return "fs_read"


def _prompt_tokens(messages: list[Any]) -> int:
    chars = sum(len(str(m.get("content") or "")) for m in messages if isinstance(m, dict))
    return max(1, chars // 4)


def plan_response(script: Script, body: dict[str, Any]) -> ResponsePlan:
    """Turn a script and the request's JSON body into the bytes to send, step by step.

    Args:
        script: the scripted behaviour for this request.
        body: the parsed request body (``model``, ``messages``, ``stream_options``...).

    Returns:
        The response plan; the server plays it back without further decisions.
    """
    if script.status != 200:
        message = script.error_message or f"scripted status {script.status}"
        error = {"error": {"message": message, "type": "fake_error"}}
        payload = json.dumps(error).encode()
        headers = [("content-type", "application/json"), ("content-length", str(len(payload)))]
        if script.retry_after is not None:
            headers.append(("retry-after", script.retry_after))
        return ResponsePlan(
            status=script.status,
            headers=(*headers, *script.extra_headers),
            steps=(Send(data=payload, delay=script.first_token_delay),),
            streaming=False,
        )

    model = str(body.get("model", "fake-model"))
    messages = body.get("messages") or []
    stream_options = body.get("stream_options") or {}
    want_usage = bool(stream_options.get("include_usage")) and script.send_usage
    last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
    answering_tool = last.get("role") == "tool"

    text = script.text
    if answering_tool:
        text = script.answer_prefix + str(last.get("content") or "")
    pieces = _PIECE.findall(text)
    calling = script.tool_call if not answering_tool else None

    # Content deltas (text pieces, then tool-call fragments) are what `fault_after` counts.
    size = script.pieces_per_chunk
    content: list[dict[str, Any]] = [
        {"content": "".join(pieces[i : i + size])} for i in range(0, len(pieces), size)
    ]
    tokens = len(pieces) + (calling.fragments if calling is not None else 0)
    if script.completion_tokens is not None:
        tokens = script.completion_tokens
    if calling is not None:
        for i, part in enumerate(_split(calling.arguments, calling.fragments)):
            fragment: dict[str, Any] = {"index": 0, "function": {"arguments": part}}
            if i == 0:
                fragment = {
                    "index": 0,
                    "id": calling.call_id,
                    "type": "function",
                    "function": {"name": _tool_name(calling, body), "arguments": part},
                }
            content.append({"tool_calls": [fragment]})

    steps: list[Step] = [
        Send(
            data=_event(
                _chunk(model, {"role": "assistant", "content": ""}, with_usage_field=want_usage)
            )
        )
    ]
    for n, delta in enumerate(content):
        if script.fault is not None and n == script.fault_after:
            break
        delay = script.first_token_delay if n == 0 else script.token_interval
        steps.append(
            Send(data=_event(_chunk(model, delta, with_usage_field=want_usage)), delay=delay)
        )

    fault = script.fault
    if fault is Fault.HANG_BEFORE_RESPONSE:
        return ResponsePlan(status=200, headers=(), steps=(Hang(),), streaming=True)
    if fault is Fault.HANG_MID_STREAM:
        steps.append(Hang())
    elif fault is Fault.CUT_MID_STREAM:
        steps.append(Cut())
    elif fault is Fault.MALFORMED_CHUNK:
        steps.append(Send(data=b'data: {"id": "chatcmpl-fake", "choices": [\n\n'))
        steps.append(Send(data=_event("[DONE]")))
    elif fault is Fault.NO_DONE:
        pass
    else:
        finish = "tool_calls" if calling is not None else "stop"
        steps.append(Send(data=_event(_chunk(model, {}, finish, with_usage_field=want_usage))))
        if want_usage:
            prompt = _prompt_tokens(messages)
            usage_chunk = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": _CREATED,
                "model": model,
                "system_fingerprint": None,
                "choices": [],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": tokens,
                    "total_tokens": prompt + tokens,
                },
            }
            steps.append(Send(data=_event(usage_chunk)))
        steps.append(Send(data=_event("[DONE]")))

    sse_headers = (
        ("content-type", "text/event-stream; charset=utf-8"),
        ("cache-control", "no-cache"),
    )
    return ResponsePlan(
        status=200,
        headers=(*sse_headers, *script.extra_headers),
        steps=tuple(steps),
        streaming=True,
    )
