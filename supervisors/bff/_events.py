"""The host's ``ChatEvent`` as the JSON the BFF's clients see, and as SSE.

One event per SSE message: ``event:`` is the catalog name (``assistant.delta``,
``assistant.done``, ``tool.call.started``, ``tool.call.delta``, ``error``), ``id:`` the
host's per-session sequence number (so a client can tell what it has seen), ``data:`` one
line of JSON::

    event: tool.call.delta
    id: 7
    data: {"type": "tool.call.delta", "session_id": "…", "turn_id": "t1", "seq": 7,
           "call_id": "call_1", "status": "ok", "result": {…}, "receipt_id": "…"}
"""

from __future__ import annotations

import json
from typing import Any, Final

from actors.strict_json import StrictJsonError
from actors.strict_json import loads as strict_loads
from contracts.generated import agent_pb2

#: Tool arguments and results larger than this are passed on as text, not parsed.
MAX_EMBEDDED_JSON_BYTES: Final = 1024 * 1024

TERMINAL_KINDS: Final = frozenset({"assistant_done", "error"})


def kind_of(event: agent_pb2.ChatEvent) -> str:
    return event.WhichOneof("event") or ""


def catalog_name(event: agent_pb2.ChatEvent) -> str:
    """``tool_call_started`` -> ``tool.call.started`` (the rule in agent.proto)."""
    return kind_of(event).replace("_", ".")


def _embedded(text: str) -> Any:
    """A JSON text from the host, as a value (the host validated it; we still bound it)."""
    if not text:
        return None
    try:
        return strict_loads(text, max_bytes=MAX_EMBEDDED_JSON_BYTES)
    except StrictJsonError:
        return text


def error_json(error: agent_pb2.Error) -> dict[str, Any]:
    return {"code": error.code, "message": error.message, "retryable": error.retryable}


def usage_json(usage: agent_pb2.Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "estimated": usage.estimated,
        "cost_usd": usage.cost_usd,
    }


def event_json(event: agent_pb2.ChatEvent) -> dict[str, Any]:
    """The event as JSON: its type, ids and sequence number, and its payload's fields."""
    kind = kind_of(event)
    out: dict[str, Any] = {
        "type": kind.replace("_", "."),
        "session_id": event.session_id,
        "turn_id": event.turn_id,
        "seq": event.seq,
    }
    if kind == "assistant_delta":
        out["text"] = event.assistant_delta.text
    elif kind == "assistant_done":
        out["finish_reason"] = event.assistant_done.finish_reason
        out["usage"] = usage_json(event.assistant_done.usage)
    elif kind == "tool_call_started":
        started = event.tool_call_started
        out.update(
            call_id=started.call_id,
            tool=started.tool,
            version=started.version,
            args=_embedded(started.args_json),
            device_id=started.device_id,
        )
    elif kind == "tool_call_delta":
        delta = event.tool_call_delta
        out.update(call_id=delta.call_id, status=delta.status)
        if delta.result_json:
            out["result"] = _embedded(delta.result_json)
        if delta.HasField("error"):
            out["error"] = error_json(delta.error)
        if delta.receipt_id:
            out["receipt_id"] = delta.receipt_id
    elif kind == "error":
        out["error"] = error_json(event.error)
    elif kind == "session_started":
        limits = event.session_started.limits
        out["limits"] = {
            "max_turn_ms": limits.max_turn_ms,
            "token_budget": limits.token_budget,
            "max_message_bytes": limits.max_message_bytes,
        }
    return out


def sse_message(name: str, data: dict[str, Any], *, event_id: int | None = None) -> bytes:
    """One SSE message; ``data`` is one line of JSON (JSON never holds a raw newline)."""
    head = f"event: {name}\n"
    if event_id is not None:
        head += f"id: {event_id}\n"
    return (head + "data: " + json.dumps(data, separators=(",", ":")) + "\n\n").encode()


def sse_event(event: agent_pb2.ChatEvent) -> bytes:
    # seq 0: an event the BFF made (the host's stream ended); it has no host id.
    return sse_message(catalog_name(event), event_json(event), event_id=event.seq or None)


#: Sent on a quiet stream so that proxies keep it open (a comment line: clients ignore it).
SSE_HEARTBEAT: Final = b": keep-alive\n\n"
