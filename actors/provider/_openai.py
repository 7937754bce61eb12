"""The OpenAI-compatible adapter: one streamed chat completion per ``stream`` call.

It posts to ``{base_url}/chat/completions`` over the streaming HTTP/1.1 client of
``_stream_http.py`` (h11 under a keep-alive pool of its own), splits the server-sent events
there, decodes every chunk with msgspec, forwards every text piece as a ``TextDelta`` the
moment it is parsed, assembles tool-call fragments, and ends with one ``Finished``.

Every failure leaves as ``actors.errors.ProviderError`` with one of these codes::

    ProviderError
     ├── provider.timeout        connect timeout, first-token timeout, idle timeout, total timeout
     ├── provider.unavailable    connection refused/reset/cut, 5xx, 4xx other than 429,
     │                           an ``error`` object inside the stream, missing API key
     ├── provider.rate_limited   429 (after retries, or when Retry-After exceeds the cap)
     └── provider.bad_response   a chunk that is not JSON or not a chunk, a body that is not an
                                 event stream, a stream that ends without finish_reason

Retries: only while nothing has been forwarded to the caller, only for connection errors,
connect timeouts, 5xx and 429 (waiting ``Retry-After`` when given), with exponential backoff
and full jitter, within ``total_timeout``. A first-token timeout is not retried: the caller's
wait is already spent. Once an event was forwarded, any failure is final (a retry would
repeat text the user already saw).
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Final, Literal

import attrs
import msgspec
import trio

from actors.errors import ProviderError

from ._credentials import ApiKey, load_api_key
from ._openai_config import OpenAIProviderConfig
from ._openai_wire import ChunkAssembler, ToolNames, build_request_body, make_usage, parse_chunk
from ._retry import backoff_delay, parse_retry_after
from ._stream_http import (
    ConnectTimeout,
    EventStreamError,
    HttpError,
    StreamingHttpClient,
    StreamingResponse,
    open_streaming_http_client,
)
from ._types import (
    CompletionRequest,
    Finished,
    ProviderEvent,
    ProviderEventSink,
    TextDelta,
    ToolCallRequested,
    Usage,
    nowait_of,
)

logger = logging.getLogger(__name__)

# How much of an error body is read to quote the upstream's message; the rest is dropped.
_ERROR_BODY_LIMIT = 16_384
# How much of the upstream's error message goes into ours.
_ERROR_QUOTE_LIMIT = 200
# Statuses that mean "try again": overloaded or briefly broken upstreams.
_RETRYABLE_STATUS = frozenset({408, 500, 502, 503, 504})

Outcome = Literal["finished", "cancelled", "failed"]
#: Request bodies are encoded with msgspec (chunks are decoded with it: ``parse_chunk``).
_encode_body: Final = msgspec.json.Encoder().encode
UsageObserver = Callable[[Outcome, Usage], None]


class _Retryable(Exception):
    """Internal: an attempt failed in a way a new attempt may fix."""

    def __init__(self, error: ProviderError, retry_after: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.retry_after = retry_after


@attrs.define
class _Progress:
    """What one ``stream`` call has done so far, across attempts."""

    forwarded: bool = False
    assembler: ChunkAssembler | None = None


class OpenAICompatibleProvider:
    """An ``LlmProvider`` for any OpenAI-compatible chat-completions endpoint.

    Made by :func:`open_openai_provider`, which owns the HTTP client; construct it directly
    only with a client you close yourself.

    Args:
        config: endpoint, deadlines, retries and prices.
        client: the HTTP client (its connection pools are shared by all calls).
        api_key: the bearer token, or None for a keyless server.
        rng: the jitter source (seeded in tests).
        usage_observer: called once per ``stream`` call that reached the upstream, with the
            outcome and the usage (upstream figures, or estimated ones for a cancelled or
            failed call), so usage already spent is recorded even when the turn is cancelled.
    """

    def __init__(
        self,
        config: OpenAIProviderConfig,
        client: StreamingHttpClient,
        api_key: ApiKey | None,
        *,
        rng: random.Random | None = None,
        usage_observer: UsageObserver | None = None,
    ) -> None:
        self.name = config.name
        self.config = config
        self._client = client
        self._api_key = api_key
        self._rng = rng if rng is not None else random.Random()
        self._usage_observer = usage_observer
        # The same for every request: built once.
        self._headers = self._request_headers()

    def __repr__(self) -> str:
        return f"OpenAICompatibleProvider(name={self.name!r}, base_url={self.config.base_url!r})"

    async def stream(self, request: CompletionRequest, events: ProviderEventSink) -> None:
        """Stream one completion into ``events``; see ``LlmProvider``.

        Args:
            request: the conversation, tools and model.
            events: the caller's channel; ``send`` waiting on it (back-pressure) does not count
                against the idle or first-token deadlines, only against the total one.

        Raises:
            ProviderError: with the codes listed in this module's docstring.

        Cancellation: the upstream HTTP response is closed at once (its connection is dropped,
        not pooled), the usage observer gets the usage so far, and ``trio.Cancelled`` re-raises.
        """
        names = ToolNames(tuple(t.name for t in request.tools))
        body = _encode_body(build_request_body(request, names))
        progress = _Progress()
        outcome: Outcome = "failed"
        finished_usage: Usage | None = None
        try:
            with trio.move_on_after(self.config.total_timeout) as total:
                finished_usage = await self._attempts(request, body, names, events, progress)
                outcome = "finished"
            if total.cancelled_caught:
                raise ProviderError(
                    "provider.timeout",
                    f"{self.name}: no complete answer within the total timeout "
                    f"({self.config.total_timeout:g}s)",
                )
        except trio.Cancelled:
            outcome = "cancelled"
            raise
        finally:
            self._observe(outcome, finished_usage, progress, request)

    def _observe(
        self,
        outcome: Outcome,
        usage: Usage | None,
        progress: _Progress,
        request: CompletionRequest,
    ) -> None:
        if self._usage_observer is None or progress.assembler is None:
            return
        if usage is None:
            price = self.config.prices.get(request.model)
            usage = make_usage(progress.assembler, request, price)
        self._usage_observer(outcome, usage)

    async def _attempts(
        self,
        request: CompletionRequest,
        body: bytes,
        names: ToolNames,
        events: ProviderEventSink,
        progress: _Progress,
    ) -> Usage:
        retry = self.config.retry
        deadline = trio.current_time() + self.config.total_timeout
        attempt = 1
        while True:
            try:
                return await self._attempt(request, body, names, events, progress)
            except _Retryable as failure:
                error = failure.error
                if progress.forwarded or attempt >= retry.max_attempts:
                    raise error from None
                delay = failure.retry_after
                if delay is None:
                    delay = backoff_delay(retry, attempt, self._rng)
                if trio.current_time() + delay >= deadline:
                    raise error from None
                logger.warning(
                    "%s: attempt %d failed (%s); retrying in %.3fs",
                    self.name,
                    attempt,
                    error.code,
                    delay,
                )
                await trio.sleep(delay)
                attempt += 1

    def _request_headers(self) -> dict[str, str]:
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream",
            "cache-control": "no-store",
        }
        if self._api_key is not None:
            headers["authorization"] = f"Bearer {self._api_key.reveal()}"
        return headers

    def _redact(self, text: str) -> str:
        return self._api_key.redact(text) if self._api_key is not None else text

    async def _attempt(
        self,
        request: CompletionRequest,
        body: bytes,
        names: ToolNames,
        events: ProviderEventSink,
        progress: _Progress,
    ) -> Usage:
        assembler = ChunkAssembler(names)
        progress.assembler = assembler
        done = False
        calls_sent = False
        send_nowait = nowait_of(events)
        # One scope is the watchdog for both waits: until content arrives its deadline is the
        # first-token one; after that it is the idle clock's (_IdleClock). While the caller
        # has not taken an event it is lifted, so a slow reader is not an idle upstream.
        with trio.CancelScope(
            deadline=trio.current_time() + self.config.first_token_timeout
        ) as watchdog:
            clock = _IdleClock(watchdog, self.config.idle_timeout)
            try:
                async with self._client.stream(
                    self.config.completions_url, body, self._headers
                ) as response:
                    if response.status_code != 200:
                        await self._refuse(response)
                    while (batch := await response.receive_events()) is not None:
                        for data in batch:
                            if done:
                                # Only the body's end may follow [DONE]; reading to it lets
                                # the connection go back to the pool.
                                continue
                            if data == b"[DONE]":
                                done = True
                                continue
                            text = self._feed(assembler, data)
                            if text:
                                await _forward(TextDelta(text=text), events, send_nowait, clock)
                                progress.forwarded = True
                            elif assembler.got_content:
                                clock.chunk()
                            if assembler.finish_reason is not None and not calls_sent:
                                calls_sent = True
                                for call in assembler.tool_calls():
                                    await _forward(
                                        ToolCallRequested(call=call), events, send_nowait, clock
                                    )
                                    progress.forwarded = True
            except ConnectTimeout as exc:
                raise _Retryable(
                    ProviderError(
                        "provider.timeout", f"{self.name}: {type(exc).__name__} to the upstream"
                    )
                ) from None
            except EventStreamError as exc:
                raise ProviderError(
                    "provider.bad_response",
                    f"{self.name}: the response is not an event stream ({exc})",
                ) from None
            except HttpError as exc:
                raise _Retryable(
                    ProviderError(
                        "provider.unavailable",
                        f"{self.name}: connection failed ({type(exc).__name__})",
                    )
                ) from None
        if watchdog.cancelled_caught:
            if assembler.got_content:
                what = f"no chunk for the idle timeout ({self.config.idle_timeout:g}s)"
            else:
                what = f"no first token within {self.config.first_token_timeout:g}s"
            raise ProviderError("provider.timeout", f"{self.name}: {what}")
        if assembler.finish_reason is None:
            ending = "[DONE]" if done else "the end of the body"
            raise ProviderError(
                "provider.bad_response", f"{self.name}: {ending} came before any finish_reason"
            )
        price = self.config.prices.get(request.model)
        usage = make_usage(assembler, request, price)
        await events.send(Finished(finish_reason=assembler.finish_reason, usage=usage))
        progress.forwarded = True
        return usage

    def _feed(self, assembler: ChunkAssembler, data: bytes) -> str:
        try:
            return assembler.feed(parse_chunk(data))
        except ProviderError as exc:
            raise ProviderError(exc.code, f"{self.name}: {self._redact(exc.message)}") from None

    async def _refuse(self, response: StreamingResponse) -> None:
        """Turn a non-200 answer into the right error; always raises."""
        quoted = await self._error_message(response)
        status = response.status_code
        what = f"{self.name}: upstream answered {status}{quoted}"
        if status == 429:
            error = ProviderError("provider.rate_limited", what)
            wait = parse_retry_after(response.headers.get("retry-after"))
            if wait is not None and wait > self.config.retry.max_retry_after:
                # Waiting longer than the cap would hold the turn hostage; report it now.
                raise error
            raise _Retryable(error, wait)
        error = ProviderError("provider.unavailable", what)
        if status in _RETRYABLE_STATUS or status >= 500:
            raise _Retryable(error)
        raise error

    async def _error_message(self, response: StreamingResponse) -> str:
        raw = await response.read(_ERROR_BODY_LIMIT)
        try:
            parsed = json.loads(raw)
            message = parsed["error"]["message"]
        except (ValueError, KeyError, TypeError):
            return ""
        if not isinstance(message, str) or not message:
            return ""
        return f" ({self._redact(message)[:_ERROR_QUOTE_LIMIT]})"


#: How far past ``idle_timeout`` the idle deadline may be set, as a share of it. Moving a
#: Trio deadline is a heap operation of the run loop; set this much further it needs moving
#: about once per ``IDLE_SLACK * idle_timeout`` rather than on every chunk (measured with
#: ``python -m bench.adapter_cpu``). A silent upstream is therefore cut between
#: ``idle_timeout`` and ``(1 + IDLE_SLACK) * idle_timeout`` after its last chunk.
IDLE_SLACK: Final = 0.25


class _IdleClock:
    """The idle deadline of one response, kept on the attempt's watchdog scope."""

    __slots__ = ("_idle", "_running", "_scope")

    def __init__(self, scope: trio.CancelScope, idle_timeout: float) -> None:
        self._scope = scope
        self._idle = idle_timeout
        # False until the first chunk with content (the first-token deadline holds until
        # then) and while the caller holds an event.
        self._running = False

    def chunk(self) -> None:
        """A chunk arrived (or the caller took one): the upstream is not idle."""
        now = trio.current_time()
        if not self._running or self._scope.deadline - now < self._idle:
            self._running = True
            self._scope.deadline = now + self._idle * (1 + IDLE_SLACK)

    def pause(self) -> None:
        """The caller is slow to take an event: its slowness is not the upstream's."""
        self._running = False
        self._scope.deadline = math.inf


async def _forward(
    event: ProviderEvent,
    events: ProviderEventSink,
    send_nowait: Callable[[ProviderEvent], None] | None,
    clock: _IdleClock,
) -> None:
    """Give ``event`` to the caller: at once if it takes it, else waiting with the clock paused."""
    if send_nowait is not None:
        try:
            send_nowait(event)
        except trio.WouldBlock:
            pass
        else:
            clock.chunk()
            return
    clock.pause()
    await events.send(event)
    clock.chunk()


@asynccontextmanager
async def open_openai_provider(
    config: OpenAIProviderConfig,
    *,
    rng: random.Random | None = None,
    usage_observer: UsageObserver | None = None,
) -> AsyncIterator[OpenAICompatibleProvider]:
    """Open the adapter with its own connection pool; closing it closes every connection.

    Args:
        config: the adapter's configuration; the API key is resolved here.
        rng: the jitter source for retries (seed it in tests).
        usage_observer: see :class:`OpenAICompatibleProvider`.

    Yields:
        The provider, usable from any number of concurrent tasks.

    Raises:
        ProviderError: ``provider.unavailable`` when a configured key source is missing.

    Cancellation: the pool is closed on the way out.
    """
    api_key = load_api_key(key=config.api_key, env_var=config.api_key_env, file=config.api_key_file)
    async with open_streaming_http_client(
        max_connections=config.max_connections,
        max_keepalive_connections=config.max_keepalive_connections,
        # Only the connect timeout is the client's; the stream's deadlines are Trio scopes
        # above, which (unlike per-read timeouts) also bound a server that trickles bytes.
        connect_timeout=config.connect_timeout,
    ) as client:
        yield OpenAICompatibleProvider(
            config, client, api_key, rng=rng, usage_observer=usage_observer
        )
