"""The soak's load: N StreamChat sessions, each asking for a tool call turn after turn.

``python -m bench._soak_load --port P --sessions N --device D`` runs in its own process
(the grpcio asyncio client), so that its CPU and memory are not the processes under test.
Each session is one stream: ``start_session``, then ``read notes.txt`` turns, one at a
time with a pause between them; after ``--turns`` turns it ends and a new one starts in its
place (so 100 sessions are open at any time, as users come and go). Sessions are spread
over the ``--device`` ids (comma-separated). On every line read from stdin it prints one
JSON line of its counters; it ends when stdin closes (the sessions are closed first).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import sys
from typing import Any

import grpc

from contracts.generated import agent_pb2

STREAM_CHAT = "/zl.agent.v0.Agent/StreamChat"
#: A turn that takes longer than this counts as an error (and its session starts again).
TURN_TIMEOUT_S = 30.0
PAUSE_S = 0.5


class Counters:
    def __init__(self) -> None:
        self.turns = 0
        self.ok = 0
        self.tool_calls = 0
        self.errors: collections.Counter[str] = collections.Counter()
        self.sessions_open = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "turns": self.turns,
            "ok": self.ok,
            "tool_calls": self.tool_calls,
            "errors": dict(self.errors),
            "sessions_open": self.sessions_open,
        }


async def session(
    channel: grpc.aio.Channel,
    device: str,
    counters: Counters,
    stop: asyncio.Event,
    turns_per_session: int,
    token: str,
) -> None:
    """Sessions one after another, each of ``turns_per_session`` turns (a chat ends)."""
    call = channel.stream_stream(
        STREAM_CHAT,
        request_serializer=agent_pb2.ChatRequest.SerializeToString,
        response_deserializer=agent_pb2.ChatEvent.FromString,
    )
    while not stop.is_set():
        stream = call(metadata=(("authorization", f"Bearer {token}"),))
        counters.sessions_open += 1
        try:
            start = agent_pb2.StartSession(tenant="soak", user="u1", device_id=device)
            await stream.write(agent_pb2.ChatRequest(start_session=start))
            first = await asyncio.wait_for(stream.read(), TURN_TIMEOUT_S)
            if first is grpc.aio.EOF or first.WhichOneof("event") != "session_started":
                code = "EOF" if first is grpc.aio.EOF else first.error.code
                counters.errors[f"no session: {code}"] += 1
                await asyncio.sleep(PAUSE_S)  # a refused session is not retried in a spin
                continue
            for _ in range(turns_per_session):
                if stop.is_set():
                    break
                message = agent_pb2.UserMessage(text="read notes.txt")
                await stream.write(agent_pb2.ChatRequest(user_message=message))
                counters.turns += 1
                if not await asyncio.wait_for(turn(stream, counters), TURN_TIMEOUT_S):
                    break
                await asyncio.sleep(PAUSE_S)
        except (TimeoutError, grpc.aio.AioRpcError) as exc:
            code = exc.code().name if isinstance(exc, grpc.aio.AioRpcError) else "turn timeout"
            counters.errors[code] += 1
        finally:
            counters.sessions_open -= 1
            stream.cancel()


async def turn(stream: Any, counters: Counters) -> bool:
    """Read one turn's events; whether the session may go on."""
    while True:
        event = await stream.read()
        if event is grpc.aio.EOF:
            counters.errors["stream ended"] += 1
            return False
        kind = event.WhichOneof("event")
        if kind == "tool_call_delta":
            counters.tool_calls += 1
            if event.tool_call_delta.HasField("error"):
                # Counted; the turn goes on (the model answers) until it is done.
                counters.errors[f"tool: {event.tool_call_delta.error.code}"] += 1
        elif kind == "assistant_done":
            counters.ok += 1
            return True
        elif kind == "error":
            counters.errors[event.error.code] += 1
            return True


async def main_async(args: argparse.Namespace) -> None:
    counters = Counters()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    # One channel per 25 sessions, as a BFF spreads its users over a few connections.
    channels = [
        grpc.aio.insecure_channel(f"127.0.0.1:{args.port}")
        for _ in range(max(1, args.sessions // 25))
    ]
    devices = args.device.split(",")
    tasks = [
        asyncio.create_task(
            session(
                channels[n % len(channels)],
                devices[n % len(devices)],
                counters,
                stop,
                args.turns,
                args.token,
            )
        )
        for n in range(args.sessions)
    ]
    while await reader.readline():
        print(json.dumps(counters.to_json()), flush=True)
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in channels:
        await channel.close()
    print(json.dumps(counters.to_json()), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench._soak_load")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--device", default="laptop-1", help="device ids, comma-separated")
    parser.add_argument("--turns", type=int, default=20, help="turns per session before it ends")
    parser.add_argument("--token", required=True, help="the caller token every session sends")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
