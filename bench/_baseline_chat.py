"""The baseline for bench.ttft: StreamChat on grpcio's own (C core) asyncio server.

It answers like the host's mock (same first-token delay, pace and length) with nothing in
between: no actors, no sessions, no Python HTTP/2. Run against it in the same benchmark, it
shows what the client library and the machine cost, so that the host's own share can be
read as the difference.

    python -m bench._baseline_chat --port-file F --first-token-delay-ms 50 --tokens-per-s 50 \\
        --answer-tokens 25
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import grpc.aio

from contracts.generated import agent_pb2


def _handler(args: argparse.Namespace) -> grpc.RpcMethodHandler:
    async def stream_chat(
        requests: AsyncIterator[agent_pb2.ChatRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[agent_pb2.ChatEvent]:
        seq = 0
        turns = 0
        async for request in requests:
            kind = request.WhichOneof("request")
            seq += 1
            if kind == "start_session":
                yield agent_pb2.ChatEvent(
                    session_id="s",
                    seq=seq,
                    session_started=agent_pb2.SessionStarted(session_id="s"),
                )
                continue
            turns += 1
            turn = f"t{turns}"
            await asyncio.sleep(args.first_token_delay_ms / 1000)
            start = time.monotonic()
            for index in range(args.answer_tokens):
                delay = start + index / args.tokens_per_s - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                yield agent_pb2.ChatEvent(
                    session_id="s",
                    turn_id=turn,
                    seq=seq,
                    assistant_delta=agent_pb2.AssistantDelta(text=f" w{index}"),
                )
                seq += 1
            yield agent_pb2.ChatEvent(
                session_id="s",
                turn_id=turn,
                seq=seq,
                assistant_done=agent_pb2.AssistantDone(finish_reason="stop"),
            )

    return grpc.stream_stream_rpc_method_handler(
        stream_chat,
        request_deserializer=agent_pb2.ChatRequest.FromString,
        response_serializer=agent_pb2.ChatEvent.SerializeToString,
    )


async def serve(args: argparse.Namespace, credentials: grpc.ServerCredentials | None) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("zl.agent.v0.Agent", {"StreamChat": _handler(args)}),)
    )
    if credentials is not None:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await asyncio.to_thread(Path(args.port_file).write_text, str(port))
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--first-token-delay-ms", type=float, required=True)
    parser.add_argument("--tokens-per-s", type=float, required=True)
    parser.add_argument("--answer-tokens", type=int, required=True)
    parser.add_argument("--tls-cert", default="", help="serve TLS with this PEM certificate")
    parser.add_argument("--tls-key", default="", help="the certificate's PEM key")
    args = parser.parse_args()
    credentials = (
        grpc.ssl_server_credentials(
            [(Path(args.tls_key).read_bytes(), Path(args.tls_cert).read_bytes())]
        )
        if args.tls_cert
        else None
    )
    asyncio.run(serve(args, credentials))


if __name__ == "__main__":
    main()
