"""Time to first token that the host adds in front of an OpenAI-compatible upstream.

    python -m bench.provider [--quick]

Three processes: the fake upstream (``python -m actors.provider.fake_upstream``, first-token
delay 50 ms, then 25 tokens at 50 tokens/s, the pace ``bench.ttft`` gives the mock), the host
(``kind = "openai"`` pointing at it) and this one, the load generator (the grpcio client of
``bench.ttft``: 100 concurrent sessions, every one open before the turns start, each sending
its turns back to back from a random offset). In the same run a bare client (raw HTTP/1.1 over
asyncio streams, no HTTP library) streams the same completions straight from the fake
upstream with the same concurrency and the same offsets. ``added_ttft_ms_*`` is host minus
direct. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import attrs

from ._host_process import EXIT_TIMEOUT_S, HostProcess, host_process
from ._proc import core_sets, cpu_s, pin_load_generator, pin_server
from ._stats import emit, median, percentile, progress
from .ttft import RunSpec, Samples, cpu_us_per_token, run_load

FIRST_TOKEN_DELAY_S = 0.05
TOKENS_PER_S = 50
ANSWER_TOKENS = 25
CONCURRENCY = 100
MODEL = "bench-model"
_LISTENING = re.compile(r"listening on (\S+)")


@contextmanager
def _listening_process(what: str, module: str, *args: str) -> Iterator[tuple[int, str]]:
    """``python -m module args`` until the block ends; yields its pid and where it listens.

    The process prints ``listening on WHERE`` first; it is stopped with SIGINT.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = _LISTENING.search(line)
        if match is None:
            raise RuntimeError(f"the {what} did not start: {line!r}")
        yield process.pid, match.group(1)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def fake_upstream_process() -> Iterator[tuple[int, str]]:
    """The fake upstream in its own process; yields its pid and base URL."""
    with _listening_process(
        "fake upstream",
        "actors.provider.fake_upstream",
        "--first-token-delay",
        str(FIRST_TOKEN_DELAY_S),
        "--token-interval",
        str(1 / TOKENS_PER_S),
        "--answer-tokens",
        str(ANSWER_TOKENS),
    ) as (pid, url):
        yield pid, url


@contextmanager
def floor_process(upstream_url: str, concurrency: int, keepalive: int) -> Iterator[HostProcess]:
    """``bench._floor_server`` in front of the upstream, with the host's pool settings."""
    with _listening_process(
        "floor server",
        "bench._floor_server",
        "--upstream",
        upstream_url,
        "--max-connections",
        str(concurrency * 2),
        "--keepalive",
        str(keepalive),
    ) as (pid, port):
        pin_server(pid)
        yield HostProcess(pid=pid, grpc_port=int(port), debug_url=None)


@attrs.define
class _CpuShare:
    pct: float = 0.0


@contextmanager
def _cpu_pct(pid: int) -> Iterator[_CpuShare]:
    """The share of one core that ``pid`` used during the block (set when it ends)."""
    share = _CpuShare()
    started, cpu_before = time.perf_counter(), cpu_s(pid)
    yield share
    elapsed = time.perf_counter() - started
    share.pct = 100 * (cpu_s(pid) - cpu_before) / elapsed if elapsed > 0 else 0.0


def _host_load(
    host: HostProcess, spec: RunSpec, upstream_pid: int
) -> tuple[Samples, float, float, float, float, float]:
    """``run_load`` on the host; also what else used the machine's cores meanwhile.

    Returns:
        The samples, the elapsed seconds, the host's peak RSS and CPU share, the fake
        upstream's CPU share and this process's (the load generator's).
    """
    with _cpu_pct(upstream_pid) as upstream, _cpu_pct(os.getpid()) as load_generator:
        samples, elapsed, rss, host_cpu_pct = asyncio.run(run_load(host, spec))
    return samples, elapsed, rss, host_cpu_pct, upstream.pct, load_generator.pct


def provider_settings(upstream_url: str, concurrency: int, keepalive: int) -> dict[str, str]:
    """``ZL_*`` settings for a host whose provider is the OpenAI-compatible stack."""
    return {
        "ZL_SESSIONS__MAX_SESSIONS": "2000",
        "ZL_PROVIDER__KIND": "openai",
        "ZL_PROVIDER__DEFAULT_MODEL": MODEL,
        "ZL_PROVIDER__OPENAI__BASE_URL": upstream_url,
        "ZL_PROVIDER__OPENAI__MAX_CONNECTIONS": str(concurrency * 2),
        "ZL_PROVIDER__OPENAI__MAX_KEEPALIVE_CONNECTIONS": str(keepalive),
    }


async def direct_load(url: str, turns: int, concurrency: int, *, keepalive: bool) -> list[float]:
    """The baseline: ``concurrency`` bare clients streaming ``turns`` completions each.

    Each client starts at a random offset within one turn's length (the same offsets as the
    host's sessions), then streams its completions back to back: on one kept-alive
    connection when ``keepalive`` (as the host's pool does then), else on a fresh connection
    per completion. Read with asyncio streams and no HTTP library: a client this cheap is not
    the bottleneck itself, so the figure is the upstream's own time to first token.
    """
    samples: list[float] = []
    host, port, request = raw_completion_request(
        url, [{"role": "user", "content": "turn"}], keepalive=keepalive
    )

    async def one(offset: float) -> None:
        await asyncio.sleep(offset)
        streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        for _ in range(turns):
            sent = time.perf_counter()
            if streams is None:
                streams = await asyncio.open_connection(host, port)
            reader, writer = streams
            writer.write(request)
            first: float | None = None
            seen = b""
            while chunk := await reader.read(65_536):
                seen += chunk
                # The first chunk with text (the role chunk before it carries none).
                if first is None and b'"content":"' in seen.replace(b'"content":""', b""):
                    first = time.perf_counter()
                # The chunked body's last chunk: the response is complete.
                if keepalive and seen.endswith(b"\r\n0\r\n\r\n"):
                    break
            if not keepalive:
                writer.close()
                await writer.wait_closed()
                streams = None
            if first is not None:
                samples.append((first - sent) * 1000)
        if streams is not None:
            streams[1].close()
            await streams[1].wait_closed()

    await asyncio.gather(*(one(offset) for offset in turn_offsets(concurrency)))
    return samples


def raw_completion_request(
    url: str, messages: list[dict[str, str]], *, keepalive: bool = True
) -> tuple[str, int, bytes]:
    """A streamed chat-completions request written by hand, for the bare clients.

    Returns:
        The upstream's host and port (from ``url``, the ``.../v1`` base URL), and the
        request's bytes.
    """
    authority = url.split("//", 1)[1].split("/", 1)[0]
    host, port = authority.rsplit(":", 1)
    path = "/" + url.split("//", 1)[1].split("/", 1)[1].rstrip("/") + "/chat/completions"
    body = json.dumps(
        {
            "model": MODEL,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    ).encode()
    connection = "keep-alive" if keepalive else "close"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: {connection}\r\n\r\n"
    )
    return host, int(port), head.encode() + body


def turn_offsets(concurrency: int) -> list[float]:
    """The start offsets ``bench.ttft.run_load`` gives its sessions (same seed, same spread)."""
    rng = random.Random(1)
    turn_s = FIRST_TOKEN_DELAY_S + ANSWER_TOKENS / TOKENS_PER_S
    return [rng.uniform(0, turn_s) for _ in range(concurrency)]


def run(
    turns: int, concurrency: int, keepalive: int, *, tls: bool = False, floor: bool = False
) -> dict[str, Any]:
    spec = RunSpec(
        concurrency=concurrency,
        tokens_per_s=TOKENS_PER_S,
        answer_tokens=ANSWER_TOKENS,
        turns=turns,
    )
    floor_samples: Samples | None = None
    floor_cpu_pct = floor_elapsed = 0.0
    with fake_upstream_process() as (upstream_pid, url):
        # Warm both paths (imports, pools, first connections) before measuring.
        asyncio.run(direct_load(url, 1, concurrency, keepalive=keepalive > 0))
        direct = asyncio.run(direct_load(url, turns, concurrency, keepalive=keepalive > 0))
        with host_process(provider_settings(url, concurrency, keepalive), tls=tls) as host:
            samples, elapsed, rss, host_cpu_pct, upstream_cpu_pct, load_cpu_pct = _host_load(
                host, spec, upstream_pid
            )
        if floor:
            with floor_process(url, concurrency, keepalive) as floor_server:
                floor_samples, floor_elapsed, _, floor_cpu_pct = asyncio.run(
                    run_load(floor_server, spec)
                )
        direct_after = asyncio.run(direct_load(url, turns, concurrency, keepalive=keepalive > 0))
    direct += direct_after
    host_ttft = samples.ttft_ms
    floor_figures: dict[str, Any] = {}
    if floor_samples is not None:
        floor_ttft = floor_samples.ttft_ms
        floor_figures = {
            "floor_ttft_ms_p50": round(median(floor_ttft), 2),
            "floor_ttft_ms_p95": round(percentile(floor_ttft, 95), 2),
            "floor_added_ttft_ms_p50": round(median(floor_ttft) - median(direct), 2),
            "floor_added_ttft_ms_p95": round(
                percentile(floor_ttft, 95) - percentile(direct, 95), 2
            ),
            "floor_cpu_pct": round(floor_cpu_pct, 1),
            "floor_cpu_us_per_token": round(
                cpu_us_per_token(floor_cpu_pct, floor_elapsed, floor_samples.tokens), 1
            ),
            "floor_errors": floor_samples.errors + concurrency * turns - len(floor_ttft),
        }
    return {
        **floor_figures,
        "bench": "provider",
        "concurrency": concurrency,
        "first_token_delay_ms": FIRST_TOKEN_DELAY_S * 1000,
        "turns": len(host_ttft),
        "turns_expected": concurrency * turns,
        "errors": samples.errors + concurrency * turns - len(host_ttft),
        "host_ttft_ms_p50": round(median(host_ttft), 2),
        "host_ttft_ms_p95": round(percentile(host_ttft, 95), 2),
        "direct_ttft_ms_p50": round(median(direct), 2),
        "direct_ttft_ms_p95": round(percentile(direct, 95), 2),
        "added_ttft_ms_p50": round(median(host_ttft) - median(direct), 2),
        "added_ttft_ms_p95": round(percentile(host_ttft, 95) - percentile(direct, 95), 2),
        "server_rss_mb": round(rss, 1),
        "host_cpu_pct": round(host_cpu_pct, 1),
        # CPU per streamed token from /proc, the host alone on the server core.
        "host_cpu_us_per_token": round(cpu_us_per_token(host_cpu_pct, elapsed, samples.tokens), 1),
        "upstream_cpu_us_per_token": round(
            cpu_us_per_token(upstream_cpu_pct, elapsed, samples.tokens), 1
        ),
        # Beside the host, on the same cores: the fake upstream and this process (the client).
        "upstream_cpu_pct": round(upstream_cpu_pct, 1),
        "load_generator_cpu_pct": round(load_cpu_pct, 1),
        "keepalive_connections": keepalive,
        "grpc_tls": tls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer turns; under 30 s")
    parser.add_argument(
        "--concurrency", type=int, default=CONCURRENCY, help=f"sessions (default {CONCURRENCY})"
    )
    parser.add_argument(
        "--keepalive",
        type=int,
        default=CONCURRENCY,
        help=(
            f"idle connections the host's pool keeps for reuse (default {CONCURRENCY}); "
            "0: a connection per completion, for the host and the direct client alike"
        ),
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="the host serves gRPC over TLS (development certificates), as in production",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help=(
            "also measure bench._floor_server (the gRPC edge and the adapter, nothing between "
            "them; plaintext) in the same run: what the stack itself adds"
        ),
    )
    args = parser.parse_args()
    server_cores, _ = core_sets()
    # The fake upstream and the direct client inherit the load cores; the host and the floor
    # are moved to the server cores when they start.
    load_cores = pin_load_generator()
    turns = 3 if args.quick else 10
    over = "TLS" if args.tls else "plaintext"
    progress(f"{args.concurrency} sessions x {turns} turns over {over} gRPC, host vs direct ...")
    result = run(turns, args.concurrency, args.keepalive, tls=args.tls, floor=args.floor)
    result["quick"] = args.quick
    result["server_cores"] = ",".join(map(str, sorted(server_cores)))
    result["load_cores"] = load_cores
    progress(
        f"  host ttft p50 {result['host_ttft_ms_p50']} / p95 {result['host_ttft_ms_p95']} ms; "
        f"direct p50 {result['direct_ttft_ms_p50']} / p95 {result['direct_ttft_ms_p95']} ms; "
        f"errors {result['errors']}"
    )
    if args.floor:
        progress(
            f"  floor ttft p50 {result['floor_ttft_ms_p50']} / "
            f"p95 {result['floor_ttft_ms_p95']} ms; errors {result['floor_errors']}"
        )
    emit(result)


if __name__ == "__main__":
    main()
