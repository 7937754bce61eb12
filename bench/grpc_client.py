"""Which gRPC client a Trio BFF should use: CPU per received token and time to first token.

    python -m bench.grpc_client [--quick]

One host process (TLS, mock model); each client runs in its own process so that its CPU
(``/proc``) is its own, and streams the same load (``concurrency`` sessions, each running
turns back to back):

- ``project``: ``supervisors.edges.grpc.open_grpc_channel`` in Trio (what the BFF uses);
- ``grpcio_thread``: grpcio's asyncio client on an event loop in a second thread, each event
  handed to the Trio thread (``trio.from_thread.run``) — the way grpcio can serve a Trio
  program;
- ``grpcio_asyncio``: grpcio's asyncio client in a plain asyncio program (a floor for what
  grpcio costs; a Trio BFF cannot run it in its own thread).

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from contracts.generated import agent_pb2

from ._host_process import host_process
from ._stats import emit, median, percentile, progress

STREAM_CHAT = "/zl.agent.v0.Agent/StreamChat"
CLIENTS = ("project", "grpcio_thread", "grpcio_asyncio")
#: The host's caller token reaches each client process in its environment, not its argv.
TOKEN_VARIABLE = "BENCH_CALLER_TOKEN"


def _metadata() -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {os.environ[TOKEN_VARIABLE]}"),)


def _start() -> agent_pb2.ChatRequest:
    return agent_pb2.ChatRequest(start_session=agent_pb2.StartSession(tenant="bench", user="u"))


def _say(turn: int) -> agent_pb2.ChatRequest:
    return agent_pb2.ChatRequest(user_message=agent_pb2.UserMessage(text=f"turn {turn}"))


# --- the clients (each runs in a process of its own) ---------------------------------------


async def _project(port: int, ca: str, sessions: int, turns: int, out: dict[str, Any]) -> None:
    import trio

    from supervisors.edges.grpc import GrpcClientConfig, open_grpc_channel
    from supervisors.tls import client_ssl_context

    config = GrpcClientConfig(target=f"localhost:{port}", ssl_context=client_ssl_context(ca))
    async with open_grpc_channel(config) as channel:

        async def one() -> None:
            stream = await channel.open_stream(
                STREAM_CHAT, agent_pb2.ChatEvent, metadata=_metadata(), timeout_s=300
            )
            await stream.send(_start())
            await stream.receive()
            for turn in range(turns):
                sent = time.perf_counter()
                await stream.send(_say(turn))
                first = True
                while True:
                    event = await stream.receive()
                    kind = event.WhichOneof("event")
                    if kind == "assistant_delta":
                        out["tokens"] += 1
                        if first:
                            out["ttft_ms"].append((time.perf_counter() - sent) * 1000)
                            first = False
                    elif kind == "assistant_done":
                        break
            stream.close_send()
            while True:
                try:
                    await stream.receive()
                except trio.EndOfChannel:
                    break

        async with trio.open_nursery() as nursery:
            for _ in range(sessions):
                nursery.start_soon(one)


async def _grpcio_session(channel: Any, turns: int, on_event: Any, out: dict[str, Any]) -> None:
    import grpc.aio

    call = channel.stream_stream(
        STREAM_CHAT,
        request_serializer=agent_pb2.ChatRequest.SerializeToString,
        response_deserializer=agent_pb2.ChatEvent.FromString,
    )(timeout=300, metadata=_metadata())
    await call.write(_start())
    await call.read()
    for turn in range(turns):
        sent = time.perf_counter()
        await call.write(_say(turn))
        first = True
        while True:
            event = await call.read()
            kind = await on_event(event)
            if kind == "assistant_delta" and first:
                out["ttft_ms"].append((time.perf_counter() - sent) * 1000)
                first = False
            if kind == "assistant_done":
                break
    await call.done_writing()
    while await call.read() is not grpc.aio.EOF:
        pass


def _grpcio_channel(port: int, ca: str) -> Any:
    import grpc
    import grpc.aio

    credentials = grpc.ssl_channel_credentials(root_certificates=Path(ca).read_bytes())
    return grpc.aio.secure_channel(f"localhost:{port}", credentials)


async def _grpcio_asyncio(
    port: int, ca: str, sessions: int, turns: int, out: dict[str, Any]
) -> None:
    async def count(event: agent_pb2.ChatEvent) -> str:
        kind = event.WhichOneof("event") or ""
        if kind == "assistant_delta":
            out["tokens"] += 1
        return kind

    async with _grpcio_channel(port, ca) as channel:
        await asyncio.gather(
            *(_grpcio_session(channel, turns, count, out) for _ in range(sessions))
        )


async def _grpcio_thread(
    port: int, ca: str, sessions: int, turns: int, out: dict[str, Any]
) -> None:
    """grpcio's asyncio client on its own loop and thread; events cross into Trio."""
    import trio

    token = trio.lowlevel.current_trio_token()
    send, receive = trio.open_memory_channel[agent_pb2.ChatEvent](64)

    async def consume() -> None:
        async for event in receive:
            if event.WhichOneof("event") == "assistant_delta":
                out["tokens"] += 1

    async def handed_over(event: agent_pb2.ChatEvent) -> str:
        # Each event goes to the Trio thread and waits there for room (back-pressure).
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: trio.from_thread.run(send.send, event, trio_token=token)
        )
        return event.WhichOneof("event") or ""

    def loop_thread() -> None:
        async def main() -> None:
            async with _grpcio_channel(port, ca) as channel:
                await asyncio.gather(
                    *(_grpcio_session(channel, turns, handed_over, out) for _ in range(sessions))
                )

        asyncio.run(main())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        await trio.to_thread.run_sync(loop_thread)
        await send.aclose()


def _client_main(argv: list[str]) -> None:
    kind, port, ca, sessions, turns = argv[0], int(argv[1]), argv[2], int(argv[3]), int(argv[4])
    out: dict[str, Any] = {"tokens": 0, "ttft_ms": []}
    began_cpu, began = time.process_time(), time.perf_counter()
    if kind == "project":
        import trio

        trio.run(_project, port, ca, sessions, turns, out)
    elif kind == "grpcio_thread":
        import trio

        trio.run(_grpcio_thread, port, ca, sessions, turns, out)
    else:
        asyncio.run(_grpcio_asyncio(port, ca, sessions, turns, out))
    out["cpu_s"] = time.process_time() - began_cpu
    out["elapsed_s"] = time.perf_counter() - began
    print(json.dumps(out))


# --- the run -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--client", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        _client_main(args.client)
        return
    sessions, turns, rounds = (100, 2, 1) if args.quick else (100, 4, 3)
    settings = {
        "ZL_PROVIDER__MOCK__FIRST_TOKEN_DELAY_MS": "20",
        "ZL_PROVIDER__MOCK__TOKENS_PER_S": "50",
        "ZL_PROVIDER__MOCK__ANSWER_TOKENS": "20",
        "ZL_SESSIONS__MAX_SESSIONS": "2000",
    }
    results: dict[str, list[dict[str, Any]]] = {kind: [] for kind in CLIENTS}
    with host_process(settings, tls=True) as host:
        for round_ in range(rounds):
            for kind in CLIENTS:
                progress(f"round {round_ + 1}: {kind} ...")
                done = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "bench.grpc_client",
                        "--client",
                        kind,
                        str(host.grpc_port),
                        str(host.ca_cert),
                        str(sessions),
                        str(turns),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                    timeout=600,
                    env=dict(os.environ, **{TOKEN_VARIABLE: str(host.caller_token)}),
                )
                results[kind].append(json.loads(done.stdout.strip().splitlines()[-1]))
    summary: dict[str, Any] = {"bench": "grpc_client", "sessions": sessions, "quick": args.quick}
    for kind, runs in results.items():
        summary[f"{kind}_cpu_us_per_token"] = round(
            median([1e6 * r["cpu_s"] / max(1, r["tokens"]) for r in runs]), 1
        )
        summary[f"{kind}_ttft_ms_p50"] = round(median([median(r["ttft_ms"]) for r in runs]), 2)
        summary[f"{kind}_ttft_ms_p95"] = round(
            median([percentile(r["ttft_ms"], 95) for r in runs]), 2
        )
        progress(
            f"  {kind}: {summary[f'{kind}_cpu_us_per_token']} us CPU per token, "
            f"TTFT p50 {summary[f'{kind}_ttft_ms_p50']} ms"
        )
    emit(summary)


if __name__ == "__main__":
    main()
