"""CPU the OpenAI-compatible adapter spends per completion, against a bare client.

    python -m bench.adapter_cpu [--quick]

What the host's event loop pays for the provider leg alone: the adapter (the streaming
HTTP/1.1 client of ``actors/provider/_stream_http.py`` on h11, msgspec for chunks, the chunk
assembler) streams completions from the fake upstream (its own process; the pace of
``bench.provider``: first token after 50 ms, then 25 tokens at 50 tokens/s, so every chunk
arrives on its own, as from a real model). The baseline, in the same process and the same
Trio loop, is a bare client: one raw socket per stream, the request written by hand, the
chunked body and the SSE lines split by hand and every chunk decoded with ``json.loads``,
which is about the least a client can do with that stream.

Both stream the same completions with the same concurrency, alternating, ``--repeats``
times; the figure is the CPU time of this process (``time.process_time``) per completion
and per token, medians over the repeats, and the ratio adapter / bare. Only CPU is measured:
unlike latency it does not depend on what else the machine is doing.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from actors.provider import ChatMessage, CompletionRequest, Finished, ProviderEvent, TextDelta
from actors.provider._openai import open_openai_provider
from actors.provider._openai_config import OpenAIProviderConfig

from ._proc import core_sets, pin, pin_server
from ._stats import emit, median, progress
from .provider import ANSWER_TOKENS, MODEL, fake_upstream_process, raw_completion_request

CONCURRENCY = 100
_BODY_END = b"\r\n0\r\n\r\n"
# Messages in each request: a conversation some turns in, as the host sends it.
HISTORY_MESSAGES = 9


def _history() -> tuple[ChatMessage, ...]:
    return tuple(
        ChatMessage(role="user" if i % 2 == 0 else "assistant", content=f"message {i} of the chat")
        for i in range(HISTORY_MESSAGES)
    )


class _Counter:
    """The adapter's event sink: counts what arrives."""

    def __init__(self) -> None:
        self.tokens = 0
        self.finished = 0

    async def send(self, event: ProviderEvent) -> None:
        self.send_nowait(event)

    def send_nowait(self, event: ProviderEvent) -> None:
        # Takes every event at once, as the host's turns do while the client keeps up.
        if isinstance(event, TextDelta):
            self.tokens += 1
        elif isinstance(event, Finished):
            self.finished += 1


async def _concurrently(streams: int, one: Callable[[], Awaitable[None]]) -> None:
    async with trio.open_nursery() as nursery:
        for _ in range(streams):
            nursery.start_soon(one)


async def adapter_round(url: str, streams: int, per_stream: int) -> tuple[float, int]:
    """CPU seconds and tokens for ``streams`` x ``per_stream`` completions via the adapter."""
    config = OpenAIProviderConfig(
        base_url=url, max_connections=streams * 2, max_keepalive_connections=streams
    )
    request = CompletionRequest(model=MODEL, messages=_history())
    sink = _Counter()
    async with open_openai_provider(config) as provider:

        async def one() -> None:
            for _ in range(per_stream):
                await provider.stream(request, sink)

        await _concurrently(streams, one)  # warm: connections, imports, caches
        sink.tokens = sink.finished = 0
        started = time.process_time()
        await _concurrently(streams, one)
        used = time.process_time() - started
    if sink.finished != streams * per_stream:
        raise RuntimeError(f"the adapter finished {sink.finished} of {streams * per_stream}")
    return used, sink.tokens


async def bare_round(url: str, streams: int, per_stream: int) -> tuple[float, int]:
    """The same completions through a bare client on kept-alive raw sockets."""
    host, port, request = raw_completion_request(
        url, [{"role": m.role, "content": m.content or ""} for m in _history()]
    )
    tokens = 0

    async def completion(stream: trio.SocketStream) -> None:
        nonlocal tokens
        await stream.send_all(request)
        pending = b""  # the last, incomplete line
        tail = b""  # the response's last bytes: the chunked body ends with an empty chunk
        while not tail.endswith(_BODY_END):
            chunk = await stream.receive_some(65_536)
            if not chunk:
                raise RuntimeError("the upstream closed the connection mid-response")
            tail = (tail + chunk)[-len(_BODY_END) :]
            # Every complete line so far (the chunk sizes are lines too): decode each SSE
            # data line as any client must.
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                if line.startswith(b"data: {"):
                    decoded: dict[str, Any] = json.loads(line[6:])
                    for choice in decoded.get("choices") or ():
                        if choice.get("delta", {}).get("content"):
                            tokens += 1

    async def one() -> None:
        stream = await trio.open_tcp_stream(host, port)
        async with stream:
            for _ in range(per_stream):
                await completion(stream)

    await _concurrently(streams, one)  # warm
    tokens = 0
    started = time.process_time()
    await _concurrently(streams, one)
    return time.process_time() - started, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer repeats; under 30 s")
    parser.add_argument("--repeats", type=int, default=None, help="rounds of each (default 5)")
    parser.add_argument(
        "--concurrency", type=int, default=CONCURRENCY, help=f"streams (default {CONCURRENCY})"
    )
    args = parser.parse_args()
    repeats = args.repeats or (2 if args.quick else 5)
    per_stream = 2
    completions = args.concurrency * per_stream
    adapter_us: list[float] = []
    bare_us: list[float] = []
    adapter_tokens = bare_tokens = 0
    # This process is the one measured: it gets the server cores, the fake upstream the others.
    server_cores = pin_server(os.getpid())
    with fake_upstream_process() as (upstream_pid, url):
        pin(upstream_pid, core_sets()[1])
        for repeat in range(repeats):
            progress(f"round {repeat + 1}/{repeats}: {completions} completions each way ...")
            used, adapter_tokens = trio.run(adapter_round, url, args.concurrency, per_stream)
            adapter_us.append(used / completions * 1e6)
            used, bare_tokens = trio.run(bare_round, url, args.concurrency, per_stream)
            bare_us.append(used / completions * 1e6)
    if adapter_tokens != bare_tokens or adapter_tokens != completions * ANSWER_TOKENS:
        raise RuntimeError(f"tokens differ: adapter {adapter_tokens}, bare {bare_tokens}")
    adapter, bare = median(adapter_us), median(bare_us)
    progress(f"  adapter {adapter:.0f} us/completion, bare client {bare:.0f} us/completion")
    emit(
        {
            "bench": "adapter_cpu",
            "concurrency": args.concurrency,
            "completions_per_round": completions,
            "tokens_per_completion": ANSWER_TOKENS,
            "repeats": repeats,
            "adapter_cpu_us_per_completion": round(adapter),
            "adapter_cpu_us_per_token": round(adapter / ANSWER_TOKENS, 1),
            "bare_cpu_us_per_completion": round(bare),
            "bare_cpu_us_per_token": round(bare / ANSWER_TOKENS, 1),
            "adapter_over_bare": round(adapter / bare, 2),
            "adapter_cpu_us_per_completion_range": [round(min(adapter_us)), round(max(adapter_us))],
            "bare_cpu_us_per_completion_range": [round(min(bare_us)), round(max(bare_us))],
            "quick": args.quick,
            "server_cores": server_cores,
        }
    )


if __name__ == "__main__":
    main()
