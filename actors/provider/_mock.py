"""The scripted mock provider: the embedded default, deterministic and offline.

It answers like a model would, token by token at a configured rate after a configured
first-token delay, and follows a small script:

- ``read <path>`` (anywhere in the user's message) makes the model request the tool
  ``fs.read`` with ``{"path": <path>}``, if that tool is offered;
- ``tool <name> <json object>`` (at the end of the message) calls that tool with exactly
  those arguments, if it is offered (tests use it to send bad arguments);
- after a tool result, it answers with what the tool returned (or the tool's error);
- otherwise it echoes the message and continues with filler text up to ``answer_tokens``.

Usage is counted exactly (one token per streamed piece; input tokens by whitespace
words), so budgets and accounting can be tested end to end.
"""

from __future__ import annotations

import json
import re

import attrs
import trio

from ._pacer import Pacer
from ._types import (
    ChatMessage,
    CompletionRequest,
    Finished,
    ProviderEventSink,
    TextDelta,
    ToolCallRequest,
    ToolCallRequested,
    Usage,
    nowait_of,
)

_FILLER_TEXT = (
    "Zero Latency streams this answer token by token over gRPC, with back-pressure from the "
    "client's socket to the model, a receipt for every tool call, and a supervisor for every "
    "actor that does the work."
)
_FILLER = _FILLER_TEXT.split()

_READ = re.compile(r"\bread\s+(\S+)", re.IGNORECASE)
# ``tool NAME {json}``: call any offered tool with exactly these arguments (for tests).
_TOOL = re.compile(r"\btool\s+(\S+)\s+(\{.*\})\s*$", re.DOTALL)
# How much of a file the scripted answer quotes.
_QUOTE_CHARS = 300


@attrs.frozen(kw_only=True)
class MockProviderConfig:
    """How the mock behaves: timing, length and the tool it asks for."""

    first_token_delay_s: float = attrs.field(default=0.05, validator=attrs.validators.ge(0))
    tokens_per_s: float = attrs.field(default=50.0, validator=attrs.validators.gt(0))
    answer_tokens: int = attrs.field(default=24, validator=attrs.validators.ge(1))
    tool_name: str = "fs.read"


def _tokens(text: str) -> list[str]:
    words = text.split()
    return [word if index == 0 else " " + word for index, word in enumerate(words)]


def _count_words(messages: tuple[ChatMessage, ...]) -> int:
    return sum(len((message.content or "").split()) + 1 for message in messages)


def scripted_reply(
    request: CompletionRequest, config: MockProviderConfig
) -> tuple[list[str], ToolCallRequest | None]:
    """What the mock says to ``request``: the text tokens, or a tool call to make.

    Pure and deterministic: the same request always gives the same answer.
    """
    last = request.messages[-1] if request.messages else ChatMessage(role="user", content="")
    if last.role == "tool":
        return _tokens(_describe_tool_result(last.content or "")), None
    text = last.content or ""
    offered = {tool.name for tool in request.tools}
    turn_calls = sum(len(m.tool_calls) for m in request.messages)
    explicit = _TOOL.search(text)
    if explicit and explicit.group(1) in offered:
        return [], ToolCallRequest(
            call_id=f"call_{turn_calls + 1}",
            name=explicit.group(1),
            arguments_json=explicit.group(2),
        )
    match = _READ.search(text)
    if match and config.tool_name in offered:
        call = ToolCallRequest(
            call_id=f"call_{turn_calls + 1}",
            name=config.tool_name,
            arguments_json=json.dumps({"path": match.group(1)}),
        )
        return [], call
    lead = _tokens(f'You said: "{text.strip()}".')
    filler = [" " + word for word in _FILLER]
    tokens = lead[: config.answer_tokens]
    while len(tokens) < config.answer_tokens:
        tokens.extend(filler[: config.answer_tokens - len(tokens)])
    if request.max_output_tokens is not None:
        tokens = tokens[: max(0, request.max_output_tokens)]
    return tokens, None


def _describe_tool_result(content: str) -> str:
    try:
        payload = json.loads(content)
    except ValueError:
        return f"The tool answered: {content[:_QUOTE_CHARS]}"
    if isinstance(payload, dict) and "error" in payload:
        error = payload["error"]
        code = error.get("code", "error") if isinstance(error, dict) else "error"
        message = error.get("message", "") if isinstance(error, dict) else str(error)
        return f"I could not read it ({code}): {message}"
    if isinstance(payload, dict) and isinstance(payload.get("content"), str):
        quoted = payload["content"][:_QUOTE_CHARS].strip()
        size = payload.get("fileSize", len(payload["content"]))
        cut = " (truncated)" if payload.get("truncated") else ""
        return f"The file has {size} bytes{cut}. It says: {quoted}"
    return f"The tool answered: {content[:_QUOTE_CHARS]}"


class ScriptedMockProvider:
    """An ``LlmProvider`` that follows the script above (see module docstring)."""

    name = "mock"

    def __init__(
        self, config: MockProviderConfig | None = None, *, pacer: Pacer | None = None
    ) -> None:
        """Args:
        config: the script's delays, pace and length.
        pacer: paces the tokens of all streams from one timer (``_pacer.py``); without
            one (or before its driver runs) each stream sleeps on its own.
        """
        self.config = config or MockProviderConfig()
        self._sleep_until = pacer.sleep_until if pacer is not None else trio.sleep_until
        #: Text tokens handed to consumers so far, over all streams (shows back-pressure).
        self.tokens_streamed = 0

    async def stream(self, request: CompletionRequest, events: ProviderEventSink) -> None:
        """Stream the scripted answer; cancellation stops it at the next token."""
        config = self.config
        tokens, call = scripted_reply(request, config)
        input_tokens = _count_words(request.messages)
        sleep_until = self._sleep_until
        await sleep_until(trio.current_time() + config.first_token_delay_s)
        if call is not None:
            await events.send(ToolCallRequested(call=call))
            usage = Usage(input_tokens=input_tokens, output_tokens=1)
            await events.send(Finished(finish_reason="tool_calls", usage=usage))
            return
        interval = 1.0 / config.tokens_per_s
        # Tokens leave on a fixed schedule from the first one, so a slow consumer does not
        # make the model's own pace drift (and a fast one does not speed it up).
        start = trio.current_time()
        send_nowait = nowait_of(events)
        for index, token in enumerate(tokens):
            if index:
                await sleep_until(start + index * interval)
            delta = TextDelta(text=token)
            if send_nowait is None:
                await events.send(delta)
            else:
                try:
                    send_nowait(delta)
                except trio.WouldBlock:
                    await events.send(delta)
            self.tokens_streamed += 1
        reason = "stop"
        if request.max_output_tokens is not None and len(tokens) >= request.max_output_tokens:
            reason = "length"
        usage = Usage(input_tokens=input_tokens, output_tokens=len(tokens))
        await events.send(Finished(finish_reason=reason, usage=usage))
