"""What the BFF adds to time to first token, and its CPU per streamed token.

    python -m bench.bff [--quick] [--rounds N]

One host process (TLS, mock model: first token after 50 ms, then 50 tokens/s) and one BFF
process (``zl bff``, HTTPS, in front of that host). This process is the load generator
(asyncio): in each round it runs the same load twice, once straight to the host with the
standard grpcio client and once through the BFF (``POST /v1/chat/stream``, SSE, with httpx),
at 1 and at 100 concurrent sessions. TTFT is from sending the user message to its first
``assistant.delta``; ``added_ttft_ms_*`` is the BFF's run minus the direct run, taken per
round and reported as the median over rounds (robust to a busy machine).

The BFF is pinned to one core, the host and this load generator to the other
(``os.sched_setaffinity``; on a one-core machine nothing is pinned), so the BFF's CPU is
its own: ``bff_cpu_us_per_token`` is the BFF's CPU time (``/proc``) during its runs at 100
sessions divided by the tokens it streamed.

``disconnect_cancel_ms_*``: a client drops its SSE stream mid-answer; the time until the
host's model stream is cancelled. Host, BFF and client run in one Trio process for this
(the moment of cancellation is inside the host), over real loopback TLS sockets.

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import ssl
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import grpc
import grpc.aio
import httpx

from actors.relay import generate_signing_key, save_public_key
from contracts.generated import agent_pb2

from ._host_process import HostProcess, host_process, zl_process
from ._proc import cpu_s
from ._stats import emit, median, percentile, progress

FIRST_TOKEN_DELAY_MS = 50.0
STREAM_CHAT = "/zl.agent.v0.Agent/StreamChat"
#: Direct gRPC streams share a few HTTP/2 connections, as the BFF's own channel does.
CHANNELS = 4
RAMP_S = 1.0
BFF_CORE = 1
OTHER_CORE = 0


@attrs.frozen(kw_only=True)
class RunSpec:
    concurrency: int
    tokens_per_s: float
    answer_tokens: int
    turns: int


@attrs.define
class Samples:
    ttft_ms: list[float] = attrs.Factory(list)
    tokens: int = 0
    errors: int = 0


@attrs.frozen(kw_only=True)
class BffProcess:
    pid: int
    url: str
    ca_cert: Path
    token: str


def _pin(pid: int, core: int) -> None:
    if len(os.sched_getaffinity(0)) >= 2 and os.cpu_count() and os.cpu_count() >= 2:  # type: ignore[operator]
        os.sched_setaffinity(pid, {core})


@contextmanager
def bff_process(host: HostProcess, scratch: Path, *, max_sessions: int) -> Iterator[BffProcess]:
    """``zl bff`` in front of ``host`` (HTTPS with development certificates).

    It trusts the caller key the host trusts, and the load generator sends the host's token
    (the BFF forwards it, and the host checks it again).
    """
    ready = scratch / "bff-ready.json"
    assert host.ca_cert is not None
    assert host.caller_public_key is not None
    assert host.caller_token is not None
    env = dict(
        os.environ,
        ZL_HTTP__PORT="0",
        ZL_HTTP__DEV_CERTS_DIR=str(scratch / "bff-certs"),
        ZL_HOST__TARGET=f"localhost:{host.grpc_port}",
        ZL_HOST__CA=str(host.ca_cert),
        ZL_AUTH__PUBLIC_KEYS=str(host.caller_public_key),
        ZL_SESSIONS__MAX_SESSIONS=str(max_sessions),
        ZL_SESSIONS__MAX_SESSIONS_PER_USER=str(max_sessions),
    )
    with zl_process("bff", env, ready) as (pid, addresses):
        _pin(pid, BFF_CORE)
        yield BffProcess(
            pid=pid,
            url=addresses["url"],
            ca_cert=Path(addresses["ca_cert"]),
            token=host.caller_token,
        )


# --- direct gRPC -------------------------------------------------------------------------


def _channel(host: HostProcess) -> grpc.aio.Channel:
    assert host.ca_cert is not None
    credentials = grpc.ssl_channel_credentials(root_certificates=host.ca_cert.read_bytes())
    options: list[tuple[str, str | int]] = [
        ("grpc.use_local_subchannel_pool", 1),
        ("grpc.ssl_target_name_override", "localhost"),
    ]
    return grpc.aio.secure_channel(f"127.0.0.1:{host.grpc_port}", credentials, options=options)


async def _direct_session(
    channel: grpc.aio.Channel,
    spec: RunSpec,
    samples: Samples,
    delay: float,
    offset: float,
    all_started: asyncio.Barrier,
    token: str | None,
) -> None:
    await asyncio.sleep(delay)
    metadata = None if token is None else (("authorization", f"Bearer {token}"),)
    call = channel.stream_stream(
        STREAM_CHAT,
        request_serializer=agent_pb2.ChatRequest.SerializeToString,
        response_deserializer=agent_pb2.ChatEvent.FromString,
    )(timeout=300, metadata=metadata)
    try:
        await call.write(
            agent_pb2.ChatRequest(start_session=agent_pb2.StartSession(tenant="bench", user="u"))
        )
        ok = (await call.read()).WhichOneof("event") == "session_started"
        await all_started.wait()
        if not ok:
            samples.errors += 1
            return
        await asyncio.sleep(offset)
        for turn in range(spec.turns):
            sent = time.perf_counter()
            await call.write(
                agent_pb2.ChatRequest(user_message=agent_pb2.UserMessage(text=f"turn {turn}"))
            )
            first = True
            while True:
                event = await call.read()
                kind = event.WhichOneof("event")
                if kind == "assistant_delta":
                    if first:
                        samples.ttft_ms.append((time.perf_counter() - sent) * 1000)
                        first = False
                    samples.tokens += max(1, len(event.assistant_delta.text.split()))
                elif kind == "assistant_done":
                    break
                else:
                    samples.errors += 1
                    return
        await call.done_writing()
        while await call.read() is not grpc.aio.EOF:
            pass
    except grpc.aio.AioRpcError:
        samples.errors += 1


async def run_direct(host: HostProcess, spec: RunSpec) -> Samples:
    samples = Samples()
    channels = [_channel(host) for _ in range(CHANNELS)]
    barrier = asyncio.Barrier(spec.concurrency)
    turn_s = FIRST_TOKEN_DELAY_MS / 1000 + spec.answer_tokens / spec.tokens_per_s
    rng = random.Random(1)
    try:
        await asyncio.gather(
            *(
                _direct_session(
                    channels[i % CHANNELS],
                    spec,
                    samples,
                    RAMP_S * i / max(1, spec.concurrency),
                    rng.uniform(0, turn_s),
                    barrier,
                    host.caller_token,
                )
                for i in range(spec.concurrency)
            )
        )
    finally:
        for channel in channels:
            await channel.close()
    return samples


# --- through the BFF ---------------------------------------------------------------------


class _RawSession:
    """One keep-alive HTTPS connection to the BFF, spoken by hand (no HTTP library).

    Why: an HTTP library's per-line work in this process would be measured as the BFF's
    latency (httpx's pool alone cost milliseconds per event at 100 streams here); this
    client does one ``read`` per chunk and a substring search.
    """

    def __init__(self, bff: BffProcess, context: ssl.SSLContext) -> None:
        self.bff = bff
        self.context = context
        authority = bff.url.split("//", 1)[1]
        self.host, port = authority.rsplit(":", 1)
        self.port = int(port)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.session_id = ""

    def _request(self, method: str, path: str, body: dict[str, Any] | None) -> bytes:
        payload = json.dumps(body).encode() if body is not None else b""
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {self.bff.token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        )
        return head.encode() + payload

    async def _whole_response(self) -> tuple[int, bytes]:
        assert self.reader is not None
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        return status, await self.reader.readexactly(length) if length else b""

    async def open(self) -> bool:
        self.reader, self.writer = await asyncio.open_connection(
            "127.0.0.1", self.port, ssl=self.context, server_hostname="localhost"
        )
        self.writer.write(self._request("POST", "/v1/sessions", {}))
        status, body = await self._whole_response()
        if status != 201:
            return False
        self.session_id = json.loads(body)["session_id"]
        return True

    async def turn(self, text: str, samples: Samples) -> None:
        assert self.reader is not None
        assert self.writer is not None
        body = {"session_id": self.session_id, "message": text}
        sent = time.perf_counter()
        self.writer.write(self._request("POST", "/v1/chat/stream", body))
        seen = b""
        first = True
        while chunk := await self.reader.read(65_536):
            seen += chunk
            if first and b"event: assistant.delta" in seen:
                samples.ttft_ms.append((time.perf_counter() - sent) * 1000)
                first = False
            if seen.endswith(b"\r\n0\r\n\r\n"):
                break
        done = seen.rfind(b'"output_tokens":')
        if first or done < 0 or b"event: error" in seen:
            samples.errors += 1
            return
        samples.tokens += int(seen[done + 16 :].split(b",", 1)[0])

    async def close(self) -> None:
        if self.writer is None:
            return
        if self.session_id:
            self.writer.write(self._request("DELETE", f"/v1/sessions/{self.session_id}", None))
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                await self._whole_response()
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


async def run_bff(bff: BffProcess, spec: RunSpec) -> tuple[Samples, float]:
    """All sessions open first (ramped); the BFF's CPU is read around the turns only."""
    samples = Samples()
    context = ssl.create_default_context(cafile=str(bff.ca_cert))
    sessions = [_RawSession(bff, context) for _ in range(spec.concurrency)]

    async def open_one(index: int, session: _RawSession) -> None:
        await asyncio.sleep(RAMP_S * index / max(1, spec.concurrency))
        if not await session.open():
            samples.errors += 1

    async def turns(session: _RawSession, offset: float) -> None:
        await asyncio.sleep(offset)
        for turn in range(spec.turns):
            await session.turn(f"turn {turn}", samples)

    turn_s = FIRST_TOKEN_DELAY_MS / 1000 + spec.answer_tokens / spec.tokens_per_s
    rng = random.Random(1)
    try:
        await asyncio.gather(*(open_one(i, s) for i, s in enumerate(sessions)))
        cpu_before = cpu_s(bff.pid)
        await asyncio.gather(*(turns(s, rng.uniform(0, turn_s)) for s in sessions if s.session_id))
        cpu = cpu_s(bff.pid) - cpu_before
    finally:
        await asyncio.gather(*(s.close() for s in sessions))
    return samples, cpu


# --- disconnect → cancel ------------------------------------------------------------------


class _WatchedMock:
    """The scripted mock provider, noting when a stream is cancelled (Trio's clock)."""

    name = "mock"

    def __init__(self, inner: Any) -> None:
        import trio

        self.inner = inner
        self.cancelled = trio.Event()
        self.cancelled_at = 0.0

    async def stream(self, request: Any, events: Any) -> None:
        import trio

        try:
            await self.inner.stream(request, events)
        except trio.Cancelled:
            self.cancelled_at = trio.current_time()
            self.cancelled.set()
            raise


def measure_disconnect_cancel(rounds: int) -> list[float]:
    """Milliseconds from a client dropping its SSE stream to the host cancelling the model."""
    import trio

    from actors.policy import mint_caller_token
    from actors.provider import MockProviderConfig, ScriptedMockProvider
    from supervisors.bff import AuthSection, BffConfig, HostSection, HttpSection
    from supervisors.bff import run_bff as serve_bff
    from supervisors.host import AuditSection, DebugSection, GrpcSection, HostConfig, run_host
    from supervisors.host import AuthSection as HostAuthSection

    times: list[float] = []
    provider = _WatchedMock(
        ScriptedMockProvider(
            MockProviderConfig(first_token_delay_s=0.005, tokens_per_s=50, answer_tokens=10_000)
        )
    )

    async def main(scratch: Path) -> None:
        key = generate_signing_key()
        save_public_key(key.public_key(), scratch / "caller.pub")
        token = mint_caller_token(key, tenant="bench", user="u", devices=["*"], ttl_s=600)
        host_config = HostConfig(
            auth=HostAuthSection(trusted_keys=[str(scratch / "caller.pub")]),
            grpc=GrpcSection(port=0, dev_certs_dir=str(scratch / "certs")),
            debug=DebugSection(enabled=False),
            audit=AuditSection(path=str(scratch / "audit.jsonl")),
        )
        async with trio.open_nursery() as nursery:
            stop = trio.Event()
            host = await nursery.start(
                lambda task_status: run_host(
                    host_config, shutdown=stop, provider=provider, task_status=task_status
                )
            )
            bff_config = BffConfig(
                http=HttpSection(port=0, dev_certs_dir=str(scratch / "certs")),
                host=HostSection(target=f"localhost:{host.grpc_port}", ca=host.ca_cert),
                auth=AuthSection(public_keys=[str(scratch / "caller.pub")]),
            )
            bff = await nursery.start(
                lambda task_status: serve_bff(bff_config, shutdown=stop, task_status=task_status)
            )
            context = ssl.create_default_context(cafile=bff.ca_cert)
            headers = {"authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(
                base_url=bff.url, verify=context, headers=headers, timeout=30
            ) as client:
                for _ in range(rounds):
                    provider.cancelled = trio.Event()
                    sid = (await client.post("/v1/sessions", json={})).json()["session_id"]
                    body = {"session_id": sid, "message": "talk"}
                    async with client.stream("POST", "/v1/chat/stream", json=body) as response:
                        async for line in response.aiter_lines():
                            if line.startswith("event: assistant.delta"):
                                break
                        dropped = trio.current_time()
                        await response.aclose()
                    with trio.fail_after(10):
                        await provider.cancelled.wait()
                    times.append((provider.cancelled_at - dropped) * 1000)
                    await client.delete(f"/v1/sessions/{sid}")
            stop.set()

    with tempfile.TemporaryDirectory(prefix="zl-bench-bff-") as scratch:
        trio.run(main, Path(scratch))
    return times


# --- the run -----------------------------------------------------------------------------


def _round(host: HostProcess, bff: BffProcess, spec: RunSpec) -> dict[str, Any]:
    direct = asyncio.run(run_direct(host, spec))
    through, cpu = asyncio.run(run_bff(bff, spec))
    return {
        "direct_p50": median(direct.ttft_ms),
        "direct_p95": percentile(direct.ttft_ms, 95),
        "bff_p50": median(through.ttft_ms),
        "bff_p95": percentile(through.ttft_ms, 95),
        "cpu_us_per_token": 1e6 * cpu / max(1, through.tokens),
        "tokens": through.tokens,
        "errors": direct.errors + through.errors,
        "turns": (len(direct.ttft_ms), len(through.ttft_ms)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="one short round; under a minute")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 3; quick 1)")
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    turns = (5, 2) if args.quick else (20, 5)
    specs = [
        RunSpec(concurrency=1, tokens_per_s=50, answer_tokens=10, turns=turns[0]),
        RunSpec(concurrency=100, tokens_per_s=50, answer_tokens=10, turns=turns[1]),
    ]
    _pin(0, OTHER_CORE)
    settings = {
        "ZL_PROVIDER__MOCK__FIRST_TOKEN_DELAY_MS": str(FIRST_TOKEN_DELAY_MS),
        "ZL_PROVIDER__MOCK__TOKENS_PER_S": "50",
        "ZL_PROVIDER__MOCK__ANSWER_TOKENS": "10",
        "ZL_SESSIONS__MAX_SESSIONS": "2000",
    }
    result: dict[str, Any] = {"bench": "bff", "quick": args.quick, "rounds": rounds, "runs": []}
    with (
        tempfile.TemporaryDirectory(prefix="zl-bench-bff-") as scratch,
        host_process(settings, tls=True) as host,
        bff_process(host, Path(scratch), max_sessions=2000) as bff,
    ):
        _pin(host.pid, OTHER_CORE)
        for spec in specs:
            progress(f"run: {spec.concurrency} sessions, {rounds} round(s) (direct, then BFF) ...")
            per_round = [_round(host, bff, spec) for _ in range(rounds)]
            run = {
                "concurrency": spec.concurrency,
                "direct_ttft_ms_p50": round(median([r["direct_p50"] for r in per_round]), 2),
                "direct_ttft_ms_p95": round(median([r["direct_p95"] for r in per_round]), 2),
                "bff_ttft_ms_p50": round(median([r["bff_p50"] for r in per_round]), 2),
                "bff_ttft_ms_p95": round(median([r["bff_p95"] for r in per_round]), 2),
                "added_ttft_ms_p50": round(
                    median([r["bff_p50"] - r["direct_p50"] for r in per_round]), 2
                ),
                "added_ttft_ms_p95": round(
                    median([r["bff_p95"] - r["direct_p95"] for r in per_round]), 2
                ),
                "bff_cpu_us_per_token": round(
                    median([r["cpu_us_per_token"] for r in per_round]), 1
                ),
                "errors": sum(r["errors"] for r in per_round),
            }
            progress(
                f"  TTFT direct p50 {run['direct_ttft_ms_p50']} ms, through the BFF "
                f"{run['bff_ttft_ms_p50']} ms: added p50 {run['added_ttft_ms_p50']} ms, "
                f"p95 {run['added_ttft_ms_p95']} ms; "
                f"BFF CPU {run['bff_cpu_us_per_token']} us/token"
            )
            result["runs"].append(run)
    progress("disconnect -> host cancel ...")
    cancels = measure_disconnect_cancel(5 if args.quick else 20)
    by_level = {run["concurrency"]: run for run in result["runs"]}
    for level in (1, 100):
        result[f"added_ttft_ms_p50_at_{level}"] = by_level[level]["added_ttft_ms_p50"]
        result[f"added_ttft_ms_p95_at_{level}"] = by_level[level]["added_ttft_ms_p95"]
    result["bff_cpu_us_per_token"] = by_level[100]["bff_cpu_us_per_token"]
    result["disconnect_cancel_ms_p50"] = round(median(cancels), 2)
    result["disconnect_cancel_ms_p95"] = round(percentile(cancels, 95), 2)
    result["disconnect_cancel_ms_max"] = round(max(cancels), 2)
    emit(result)


if __name__ == "__main__":
    main()
