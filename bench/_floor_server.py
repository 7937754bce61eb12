"""The floor: the least a host can be on this stack, for ``python -m bench.provider --floor``.

    python -m bench._floor_server --upstream URL [--max-connections N] [--keepalive N]

StreamChat on the host's own gRPC edge (h2), each call answered by the host's own
OpenAI-compatible adapter (its h11 streaming client and msgspec chunk decoder), and nothing
else: no actors, sessions, turns, outbox, audit or telemetry, no request validation. The
handler streams each completion straight onto its gRPC stream in its own task. Whatever TTFT
this adds over a bare client is what the libraries and the event loop cost on this machine;
the host can approach it, not beat it. Prints ``listening on PORT`` once it serves; stops on
SIGINT or SIGTERM. Not a product: plaintext on loopback, one model, no limits.
"""

from __future__ import annotations

import argparse
import signal
from typing import Any

import trio

from actors.provider import (
    ChatMessage,
    CompletionRequest,
    Finished,
    OpenAIProviderConfig,
    ProviderEvent,
    TextDelta,
    open_openai_provider,
)
from contracts.generated import agent_pb2
from supervisors._process import freeze_startup_objects, tune_gc
from supervisors.edges.grpc import (
    GrpcServerConfig,
    ServerStream,
    serve_grpc,
    service_from_descriptor,
)

MODEL = "bench-model"
SESSION_ID = "floor"


class _StreamSink:
    """The adapter's events, sent on the call's stream as they come (no queue, no task)."""

    def __init__(self, stream: ServerStream[Any, Any], turn_id: str, seq: int) -> None:
        self.stream = stream
        self.turn_id = turn_id
        self.seq = seq

    async def send(self, value: ProviderEvent) -> None:
        event = self._event(value)
        if event is not None:
            self.seq += 1
            await self.stream.send(event)

    def send_nowait(self, value: ProviderEvent) -> None:
        # As the host's turns do: the adapter's fast way when the stream takes it at once.
        event = self._event(value)
        if event is None:
            return
        if not self.stream.try_send(event):
            raise trio.WouldBlock
        self.seq += 1

    def _event(self, value: ProviderEvent) -> agent_pb2.ChatEvent | None:
        event = agent_pb2.ChatEvent(session_id=SESSION_ID, turn_id=self.turn_id, seq=self.seq + 1)
        if isinstance(value, TextDelta):
            event.assistant_delta.text = value.text
        elif isinstance(value, Finished):
            event.assistant_done.finish_reason = value.finish_reason
        else:
            return None  # the benchmark's upstream calls no tools
        return event


async def serve(upstream: str, max_connections: int, keepalive: int) -> None:
    config = OpenAIProviderConfig(
        base_url=upstream, max_connections=max_connections, max_keepalive_connections=keepalive
    )
    async with open_openai_provider(config) as provider:

        async def stream_chat(stream: ServerStream[Any, Any]) -> None:
            seq = 0
            turns = 0
            async for request in stream:
                if request.WhichOneof("request") == "start_session":
                    seq += 1
                    started = agent_pb2.ChatEvent(session_id=SESSION_ID, seq=seq)
                    started.session_started.session_id = SESSION_ID
                    await stream.send(started)
                    continue
                turns += 1
                sink = _StreamSink(stream, f"t{turns}", seq)
                completion = CompletionRequest(
                    model=MODEL,
                    messages=(ChatMessage(role="user", content=request.user_message.text),),
                )
                await provider.stream(completion, sink)
                seq = sink.seq

        agent = agent_pb2.DESCRIPTOR.services_by_name["Agent"]
        service = service_from_descriptor(
            agent, {method.name: stream_chat for method in agent.methods}
        )
        async with trio.open_nursery() as nursery:
            handle = await nursery.start(
                lambda task_status: serve_grpc(
                    [service],
                    config=GrpcServerConfig(port=0, allow_plaintext=True),
                    ssl_context=None,
                    task_status=task_status,
                )
            )
            print(f"listening on {handle.port}", flush=True)
            freeze_startup_objects()
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--upstream", required=True, help="the OpenAI-compatible base URL")
    parser.add_argument("--max-connections", type=int, default=200)
    parser.add_argument("--keepalive", type=int, default=100, help="idle connections kept")
    args = parser.parse_args()
    tune_gc()  # the host's collector settings
    trio.run(serve, args.upstream, args.max_connections, args.keepalive)


if __name__ == "__main__":
    main()
