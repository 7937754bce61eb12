"""The OpenAI chat-completions wire format: request bodies out, stream chunks in.

Pure logic, no I/O, so it is tested without Trio:

- :func:`build_request_body` serialises a :class:`CompletionRequest`, including assistant
  ``tool_calls`` and ``tool`` result messages, so the model can finish an answer after a tool.
- :class:`ToolNames` maps tool names that OpenAI's API refuses (it allows only
  ``[A-Za-z0-9_-]{1,64}``; MCP names such as ``fs.read`` have dots) to safe ones and back.
- :class:`ChunkAssembler` takes parsed ``chat.completion.chunk`` objects one by one, returns the
  text to forward at once, and assembles ``tool_calls`` fragments by index.
- :func:`estimate_tokens` is the fallback when an upstream sends no usage.

Errors: a chunk that does not have the stream's shape raises
``ProviderError("provider.bad_response")`` (see ``_openai.py`` for the whole mapping).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Final, NoReturn

import attrs
import msgspec

from actors.errors import ProviderError

from ._types import ChatMessage, CompletionRequest, ToolCallRequest, ToolSpec, Usage

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_UNSAFE_CHAR = re.compile(r"[^A-Za-z0-9_-]")
# The estimator's characters-per-token ratio: OpenAI's published rule of thumb for English.
CHARS_PER_TOKEN = 4
# Tokens a chat format spends on each message's role and separators (OpenAI's cookbook figure).
TOKENS_PER_MESSAGE = 4


@attrs.frozen(kw_only=True)
class ModelPrice:
    """A model's list price in US dollars per million tokens."""

    input_usd_per_mtok: float
    output_usd_per_mtok: float

    def cost(self, usage_in: int, usage_out: int) -> float:
        return (usage_in * self.input_usd_per_mtok + usage_out * self.output_usd_per_mtok) / 1e6


class ToolNames:
    """A reversible mapping between the project's tool names and ones upstreams accept.

    Safe names pass unchanged; others have each unsafe character replaced by ``_`` and, if
    that collides, a numeric suffix. Built once per request from the offered tools.
    """

    def __init__(self, names: tuple[str, ...]) -> None:
        self._out: dict[str, str] = {}
        self._back: dict[str, str] = {}
        for name in names:
            self._add(name)

    def _add(self, name: str) -> str:
        if name in self._out:
            return self._out[name]
        wire = name if _SAFE_NAME.match(name) else _UNSAFE_CHAR.sub("_", name)[:60] or "tool"
        candidate, n = wire, 1
        while candidate in self._back:
            n += 1
            candidate = f"{wire[:60]}_{n}"
        self._out[name] = candidate
        self._back[candidate] = name
        return candidate

    def to_wire(self, name: str) -> str:
        return self._add(name)

    def from_wire(self, wire: str) -> str:
        return self._back.get(wire, wire)


def _message_json(message: ChatMessage, names: ToolNames) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role}
    if message.role == "tool":
        out["tool_call_id"] = message.tool_call_id or ""
        out["content"] = message.content or ""
        return out
    if message.role == "assistant" and message.tool_calls:
        # OpenAI wants content null (not "") beside tool_calls when the model said nothing.
        out["content"] = message.content or None
        out["tool_calls"] = [
            {
                "id": call.call_id,
                "type": "function",
                "function": {"name": names.to_wire(call.name), "arguments": call.arguments_json},
            }
            for call in message.tool_calls
        ]
        return out
    out["content"] = message.content or ""
    return out


def _tool_json(tool: ToolSpec, names: ToolNames) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": names.to_wire(tool.name),
            "description": tool.description,
            "parameters": tool.parameters,
        },
    }


def build_request_body(request: CompletionRequest, names: ToolNames) -> dict[str, Any]:
    """The JSON body of ``POST /chat/completions`` for a streamed completion with usage.

    Args:
        request: what to complete.
        names: the tool-name mapping for this request (see :class:`ToolNames`).

    Returns:
        A JSON-ready dict with ``stream: true`` and ``stream_options.include_usage: true``.
    """
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [_message_json(m, names) for m in request.messages],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if request.tools:
        body["tools"] = [_tool_json(t, names) for t in request.tools]
    if request.max_output_tokens is not None:
        # max_tokens, not max_completion_tokens: every OpenAI-compatible server knows it.
        body["max_tokens"] = request.max_output_tokens
    return body


def estimate_tokens(text_chars: int, messages: int = 0) -> int:
    """Estimate tokens from characters: ``ceil(chars / 4) + 4 * messages``.

    The 4-characters-per-token ratio is OpenAI's rule of thumb for English text; it over-counts
    code a little and under-counts CJK text. Good enough to keep budgets and costs honest when
    an upstream (older vLLM, some Ollama versions) sends no usage; marked ``estimated``.
    """
    return math.ceil(text_chars / CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * messages


def request_chars(request: CompletionRequest) -> int:
    """The characters of the prompt that the estimator counts (messages and tool specs)."""
    chars = 0
    for m in request.messages:
        chars += len(m.content or "")
        chars += sum(len(c.name) + len(c.arguments_json) for c in m.tool_calls)
    for t in request.tools:
        chars += len(t.name) + len(t.description) + len(json.dumps(t.parameters))
    return chars


def _bad(message: str) -> ProviderError:
    return ProviderError("provider.bad_response", message)


def _utf8(text: str, what: str) -> str:
    """``text``, refused if it holds a lone UTF-16 surrogate (from a ``\\ud800`` escape).

    Such text cannot be sent on as UTF-8 (to the client, in a receipt): a stream that sends
    it is broken. Tool-call arguments are left to the tool path's strict reader.
    """
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise _bad(f"{what} holds a lone UTF-16 surrogate") from None
    return text


#: Chunks are decoded with msgspec: in C, straight from the event's bytes (no text decode
#: first), about three times faster than ``json.loads`` on a chunk; plain dicts and lists
#: come out, so the assembler checks their shape.
_decode_chunk: Final = msgspec.json.Decoder().decode
#: A ``\\uD800``-``\\uDFFF`` escape: a UTF-16 surrogate, lone or half of a pair.
_SURROGATE_ESCAPE: Final = re.compile(rb"\\u[dD][89a-fA-F]")


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError("number out of range")
    return value


def parse_chunk(data: bytes | str) -> object:
    """One SSE ``data:`` payload as JSON.

    Read with msgspec, which refuses what is not UTF-8 or not JSON, ``NaN`` and
    ``Infinity``, numbers beyond a double's range and nesting past its recursion limit. A
    lone UTF-16 surrogate escape (``"\\ud800"``) is the one thing msgspec refuses that a
    chunk may still carry: that rare chunk is read again with ``json`` (NaN and infinities
    refused the same way), and the assembler refuses the surrogate in the text it forwards
    and in a tool call's name or id; in a tool call's arguments it is left to the tool path,
    whose strict reader refuses it with a receipt (as an integer past 2**53 or a duplicate
    key there).

    Raises:
        ProviderError: ``provider.bad_response`` when it is not a JSON value we can read.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    try:
        return _decode_chunk(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        if not _SURROGATE_ESCAPE.search(raw):
            raise _bad("a stream chunk is not valid JSON") from None
    try:
        return json.loads(
            raw.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite_float
        )
    except (ValueError, RecursionError):
        raise _bad("a stream chunk is not valid JSON") from None


@attrs.define
class _PartialCall:
    call_id: str = ""
    name: str = ""
    arguments: list[str] = attrs.Factory(list)


class ChunkAssembler:
    """Folds a stream of parsed chunks into text deltas, tool calls, a finish reason and usage.

    Args:
        names: the request's tool-name mapping, to give tool calls back their real names.
    """

    def __init__(self, names: ToolNames) -> None:
        self._names = names
        self._calls: dict[int, _PartialCall] = {}
        self.finish_reason: str | None = None
        self.usage: tuple[int, int] | None = None
        self.output_chars = 0
        # Whether any content (text or a tool-call fragment) has arrived: the "first token".
        self.got_content = False

    def feed(self, chunk: object) -> str:
        """Take one parsed chunk (JSON objects are dicts); return its text to forward at once.

        The shape checks are ``isinstance(..., dict)``: a decoder's objects are dicts, and the
        ABC check of ``Mapping`` was about a seventh of this method's time in a profile.

        Raises:
            ProviderError: ``provider.bad_response`` for a chunk without the stream's shape;
                ``provider.unavailable`` for an ``error`` object sent inside the stream.
        """
        if not isinstance(chunk, dict):
            raise _bad("a stream chunk is not a JSON object")
        error = chunk.get("error")
        if error:
            detail = error.get("message") if isinstance(error, dict) else error
            raise ProviderError("provider.unavailable", f"upstream error in stream: {detail!s}")
        usage = chunk.get("usage")
        if usage is not None:
            self.usage = _parse_usage(usage)
        choices = chunk.get("choices")
        if choices is None and usage is not None:
            return ""
        if not isinstance(choices, list):
            raise _bad("a stream chunk has no choices list")
        text = ""
        for choice in choices:
            if not isinstance(choice, dict):
                raise _bad("a choice is not a JSON object")
            # Only the first choice is asked for (n defaults to 1); others are not ours.
            if choice.get("index", 0) != 0:
                continue
            text += self._feed_choice(choice)
        return text

    def _feed_choice(self, choice: dict[str, Any]) -> str:
        delta = choice.get("delta") or {}
        if not isinstance(delta, dict):
            raise _bad("a choice's delta is not a JSON object")
        content = delta.get("content")
        if content is not None and not isinstance(content, str):
            raise _bad("delta.content is not a string")
        text = _utf8(content or "", "delta.content")
        if text:
            self.got_content = True
            self.output_chars += len(text)
        tool_calls = delta.get("tool_calls")
        if tool_calls is not None:
            if not isinstance(tool_calls, list):
                raise _bad("delta.tool_calls is not a list")
            for fragment in tool_calls:
                self._feed_fragment(fragment)
        finish = choice.get("finish_reason")
        if finish is not None:
            if not isinstance(finish, str):
                raise _bad("finish_reason is not a string")
            self.finish_reason = finish
        return text

    def _feed_fragment(self, fragment: object) -> None:
        if not isinstance(fragment, dict):
            raise _bad("a tool_calls fragment is not a JSON object")
        index = fragment.get("index", 0)
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise _bad("a tool_calls fragment has no valid index")
        call = self._calls.setdefault(index, _PartialCall())
        call_id = fragment.get("id")
        if isinstance(call_id, str) and call_id and not call.call_id:
            call.call_id = _utf8(call_id, "a tool call's id")
        function = fragment.get("function") or {}
        if not isinstance(function, dict):
            raise _bad("a tool_calls fragment's function is not a JSON object")
        name = function.get("name")
        # The name arrives whole in one fragment; a server that repeats it is tolerated.
        if isinstance(name, str) and name and name != call.name:
            call.name += _utf8(name, "a tool call's name")
        arguments = function.get("arguments")
        if arguments is not None:
            if not isinstance(arguments, str):
                raise _bad("function.arguments is not a string")
            call.arguments.append(arguments)
            self.output_chars += len(arguments)
        self.got_content = True

    def tool_calls(self) -> tuple[ToolCallRequest, ...]:
        """The assembled tool calls in index order.

        Raises:
            ProviderError: ``provider.bad_response`` when a call never got a name.
        """
        calls = []
        for index in sorted(self._calls):
            partial = self._calls[index]
            if not partial.name:
                raise _bad(f"tool call {index} has no function name")
            calls.append(
                ToolCallRequest(
                    # A few servers (older llama.cpp) omit ids; the tool message needs one.
                    call_id=partial.call_id or f"call_{index}",
                    name=self._names.from_wire(partial.name),
                    arguments_json="".join(partial.arguments),
                )
            )
        return tuple(calls)


def _parse_usage(usage: object) -> tuple[int, int]:
    if not isinstance(usage, dict):
        raise _bad("usage is not a JSON object")
    return _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))


def _count(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _bad("usage token counts are not non-negative integers")
    return value


def make_usage(
    assembler: ChunkAssembler,
    request: CompletionRequest,
    price: ModelPrice | None,
) -> Usage:
    """Usage from the upstream's figures, or estimated when it sent none; with cost if priced."""
    if assembler.usage is not None:
        tokens_in, tokens_out = assembler.usage
        estimated = False
    else:
        tokens_in = estimate_tokens(request_chars(request), len(request.messages))
        tokens_out = estimate_tokens(assembler.output_chars)
        estimated = True
    cost = price.cost(tokens_in, tokens_out) if price is not None else None
    return Usage(
        input_tokens=tokens_in, output_tokens=tokens_out, estimated=estimated, cost_usd=cost
    )
