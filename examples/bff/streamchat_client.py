"""A BFF of your own, in Python: one StreamChat session with the standard grpcio client.

    python examples/bff/streamchat_client.py --target localhost:50051 --ca .zl/certs/ca.pem \
        --token-file caller.jwt --tenant acme --user alice --device laptop-7 \
        "hello" "please read notes.txt"

What it shows (docs/bff.md walks through it):

- the caller's token in ``authorization`` metadata and a W3C ``traceparent``;
- a deadline for the whole call (``timeout=``, sent as ``grpc-timeout``);
- start_session, then one user_message per turn, each answered by events ending with
  ``assistant.done`` or an ``error`` with a catalog code and ``retryable``;
- sequence numbers: ``seq`` starts at 1 and grows by one per event; a gap is a bug;
- cancel: ``--cancel-after N`` sends cancel_turn after N deltas of the last turn;
- back-pressure: events are read one at a time; a client that stops reading makes the
  host wait (HTTP/2 flow control), it never buffers without bound.

The last line printed is a JSON summary of the session (the tests read it).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc

from contracts.generated import agent_pb2

STREAM_CHAT = "/zl.agent.v0.Agent/StreamChat"


class Requests:
    """The request side of the call: grpcio reads it from its own thread."""

    def __init__(self) -> None:
        # Bounded: a client that writes faster than the host reads waits here.
        self._queue: queue.Queue[agent_pb2.ChatRequest | None] = queue.Queue(maxsize=8)

    def send(self, request: agent_pb2.ChatRequest) -> None:
        self._queue.put(request)

    def close(self) -> None:
        self._queue.put(None)

    def __iter__(self) -> Iterator[agent_pb2.ChatRequest]:
        while (request := self._queue.get()) is not None:
            yield request


def main() -> int:
    parser = argparse.ArgumentParser(description="One StreamChat session with the host.")
    parser.add_argument("messages", nargs="+")
    parser.add_argument("--target", default="localhost:50051")
    parser.add_argument("--ca", type=Path, required=True, help="CA that signs the host's cert")
    parser.add_argument("--token-file", type=Path, help="the caller token (else $ZL_TOKEN)")
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--user", default="")
    parser.add_argument("--device", default="")
    parser.add_argument("--deadline-s", type=float, default=120.0)
    parser.add_argument("--cancel-after", type=int, default=0, help="deltas, in the last turn")
    args = parser.parse_args()
    token = args.token_file.read_text().strip() if args.token_file else os.environ["ZL_TOKEN"]

    credentials = grpc.ssl_channel_credentials(root_certificates=args.ca.read_bytes())
    # A new trace for this session (a real BFF passes on its caller's traceparent).
    traceparent = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
    metadata = (("authorization", f"Bearer {token}"), ("traceparent", traceparent))
    summary: dict[str, Any] = {"turns": [], "seq_ok": True, "errors": []}
    with grpc.secure_channel(args.target, credentials) as channel:
        call = channel.stream_stream(
            STREAM_CHAT,
            request_serializer=agent_pb2.ChatRequest.SerializeToString,
            response_deserializer=agent_pb2.ChatEvent.FromString,
        )
        requests = Requests()
        start = agent_pb2.StartSession(tenant=args.tenant, user=args.user, device_id=args.device)
        requests.send(agent_pb2.ChatRequest(start_session=start))
        events = call(iter(requests), metadata=metadata, timeout=args.deadline_s)
        pending = list(args.messages)
        expected_seq = 1
        turn: dict[str, Any] = {}
        try:
            for event in events:
                if event.seq != expected_seq:
                    summary["seq_ok"] = False
                expected_seq = event.seq + 1
                kind = event.WhichOneof("event")
                if kind == "session_started":
                    summary["session_id"] = event.session_id
                elif kind == "assistant_delta":
                    turn["text"] += event.assistant_delta.text
                    turn["deltas"] += 1
                    print(event.assistant_delta.text, end="", flush=True)
                    if turn["deltas"] == args.cancel_after and not pending:
                        requests.send(agent_pb2.ChatRequest(cancel_turn=agent_pb2.CancelTurn()))
                    continue
                elif kind == "tool_call_started":
                    started = event.tool_call_started
                    turn["tools"].append(
                        {"tool": started.tool, "args": json.loads(started.args_json)}
                    )
                    print(f"\n[tool {started.tool} {started.args_json}]", flush=True)
                    continue
                elif kind == "tool_call_delta":
                    delta = event.tool_call_delta
                    turn["tools"][-1].update(status=delta.status, receipt_id=delta.receipt_id)
                    print(f"[tool {delta.status}, receipt {delta.receipt_id}]", flush=True)
                    continue
                elif kind == "assistant_done":
                    turn["finish_reason"] = event.assistant_done.finish_reason
                    turn["output_tokens"] = event.assistant_done.usage.output_tokens
                    summary["turns"].append(turn)
                    print(f"\n[done: {turn['finish_reason']}]", flush=True)
                elif kind == "error":
                    error = event.error
                    # retryable says whether the same request may succeed if sent again.
                    summary["errors"].append({"code": error.code, "retryable": error.retryable})
                    print(f"\n[error {error.code} (retryable: {error.retryable})]", flush=True)
                    if not event.turn_id and not event.session_id:
                        break  # the session was refused: the call ends
                else:
                    continue
                # After session.started, assistant.done or an error: the next turn.
                if pending:
                    turn = {"text": "", "deltas": 0, "tools": []}
                    text = pending.pop(0)
                    requests.send(
                        agent_pb2.ChatRequest(user_message=agent_pb2.UserMessage(text=text))
                    )
                else:
                    requests.close()
        except grpc.RpcError as exc:
            summary["status"] = exc.code().name
            print(f"\ncall ended: {exc.code().name}: {exc.details()}", file=sys.stderr)
        else:
            summary["status"] = "OK"
    print(json.dumps(summary))
    return 0 if summary["status"] == "OK" else 1


if __name__ == "__main__":
    sys.exit(main())
