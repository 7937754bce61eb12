"""Time to first token that the host adds in front of an OpenAI-compatible upstream.

    python -m bench.provider [--quick]

Three processes: the fake upstream (``python -m actors.provider.fake_upstream``, first-token
delay 50 ms), the host (``kind = "openai"`` pointing at it) and this one, the load generator
(the grpcio client of ``bench.ttft``: 100 concurrent sessions, every one open before the turns
start). In the same run a bare httpx client streams the same completions straight from the
fake upstream at the same concurrency. ``added_ttft_ms_*`` is host minus direct. The last
line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ._host_process import EXIT_TIMEOUT_S, host_process
from ._stats import emit, median, percentile, progress
from .ttft import RunSpec, run_load

FIRST_TOKEN_DELAY_S = 0.05
CONCURRENCY = 100
MODEL = "bench-model"
# Connections kept for reuse, by both the host's pool and the direct client. Measured: the fake
# upstream answers reused keep-alive connections with multi-second stalls at 100 concurrent
# streams (fresh connections do not stall), so both sides open a connection per completion.
KEEPALIVE_CONNECTIONS = 0
_LISTENING = re.compile(r"listening on (\S+)")


@contextmanager
def fake_upstream_process() -> Iterator[str]:
    """The fake upstream in its own process; yields its base URL."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "actors.provider.fake_upstream",
            "--first-token-delay",
            str(FIRST_TOKEN_DELAY_S),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = _LISTENING.search(line)
        if match is None:
            raise RuntimeError(f"the fake upstream did not start: {line!r}")
        yield match.group(1)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def provider_settings(upstream_url: str) -> dict[str, str]:
    """``ZL_*`` settings for a host whose provider is the OpenAI-compatible stack."""
    return {
        "ZL_SESSIONS__MAX_SESSIONS": "2000",
        "ZL_PROVIDER__KIND": "openai",
        "ZL_PROVIDER__DEFAULT_MODEL": MODEL,
        "ZL_PROVIDER__OPENAI__BASE_URL": upstream_url,
        "ZL_PROVIDER__OPENAI__MAX_CONNECTIONS": str(CONCURRENCY * 2),
        "ZL_PROVIDER__OPENAI__MAX_KEEPALIVE_CONNECTIONS": str(KEEPALIVE_CONNECTIONS),
    }


async def direct_load(url: str, turns: int) -> list[float]:
    """The baseline: ``CONCURRENCY`` bare clients streaming ``turns`` completions each.

    Each completion is one HTTP/1.1 request on a fresh connection (as the host's pool is
    configured here), read with asyncio streams and no HTTP library: a client this cheap
    is not the bottleneck itself, so the figure is the upstream's own time to first token.
    """
    samples: list[float] = []
    authority = url.split("//", 1)[1].split("/", 1)[0]
    host, port = authority.rsplit(":", 1)
    path = "/" + url.split("//", 1)[1].split("/", 1)[1].rstrip("/") + "/chat/completions"
    body = json.dumps(
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": "turn"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    ).encode()
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body

    async def one() -> None:
        for _ in range(turns):
            sent = time.perf_counter()
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(request)
            first: float | None = None
            seen = b""
            while chunk := await reader.read(65_536):
                if first is None:
                    seen += chunk
                    # The first chunk with text (the role chunk before it carries none).
                    if b'"content": "' in seen.replace(b'"content": ""', b"") or (
                        b'"content":"' in seen.replace(b'"content":""', b"")
                    ):
                        first = time.perf_counter()
            writer.close()
            await writer.wait_closed()
            if first is not None:
                samples.append((first - sent) * 1000)

    await asyncio.gather(*(one() for _ in range(CONCURRENCY)))
    return samples


def run(turns: int) -> dict[str, Any]:
    # Turn starts spread over half a second (a 25-token answer at 50 tokens/s), not one burst.
    spec = RunSpec(concurrency=CONCURRENCY, tokens_per_s=50, answer_tokens=25, turns=turns)
    with fake_upstream_process() as url:
        # Warm both paths (imports, pools, first connections) before measuring.
        asyncio.run(direct_load(url, 1))
        direct = asyncio.run(direct_load(url, turns))
        with host_process(provider_settings(url)) as host:
            samples, _, rss, _ = asyncio.run(run_load(host, spec))
        direct_after = asyncio.run(direct_load(url, turns))
    direct += direct_after
    host_ttft = samples.ttft_ms
    return {
        "bench": "provider",
        "concurrency": CONCURRENCY,
        "first_token_delay_ms": FIRST_TOKEN_DELAY_S * 1000,
        "turns": len(host_ttft),
        "turns_expected": CONCURRENCY * turns,
        "errors": samples.errors + CONCURRENCY * turns - len(host_ttft),
        "host_ttft_ms_p50": round(median(host_ttft), 2),
        "host_ttft_ms_p95": round(percentile(host_ttft, 95), 2),
        "direct_ttft_ms_p50": round(median(direct), 2),
        "direct_ttft_ms_p95": round(percentile(direct, 95), 2),
        "added_ttft_ms_p50": round(median(host_ttft) - median(direct), 2),
        "added_ttft_ms_p95": round(percentile(host_ttft, 95) - percentile(direct, 95), 2),
        "server_rss_mb": round(rss, 1),
        "keepalive_connections": KEEPALIVE_CONNECTIONS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer turns; under 30 s")
    args = parser.parse_args()
    turns = 3 if args.quick else 10
    progress(f"{CONCURRENCY} sessions x {turns} turns, host vs direct ...")
    result = run(turns)
    result["quick"] = args.quick
    progress(
        f"  host ttft p50 {result['host_ttft_ms_p50']} / p95 {result['host_ttft_ms_p95']} ms; "
        f"direct p50 {result['direct_ttft_ms_p50']} / p95 {result['direct_ttft_ms_p95']} ms; "
        f"errors {result['errors']}"
    )
    emit(result)


if __name__ == "__main__":
    main()
