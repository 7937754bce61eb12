"""``zl chat``: a terminal client for ``StreamChat`` (the standard grpcio client).

Streams each answer as it arrives. With messages on the command line it sends them one
turn at a time; without, it reads a line per turn from standard input until EOF. The host
wants a caller token: ``--token-file`` (made by ``zl token caller``) or ``--key`` (a
caller-token signing key: a short-lived token for ``--tenant``/``--user``/``--device`` is
minted here).
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import grpc

from contracts.generated import agent_pb2

STREAM_CHAT = "/zl.agent.v0.Agent/StreamChat"
# How long the whole conversation may take before the client gives up.
DEFAULT_TIMEOUT_S = 300.0
# How long to wait for the host's channel to become ready.
CONNECT_TIMEOUT_S = 10.0
# Lifetime of a token ``zl chat --key`` mints for itself.
MINTED_TOKEN_TTL_S = 900.0


def open_channel(target: str, *, ca: Path | None, plaintext: bool) -> grpc.Channel:
    """A grpcio channel to the host: TLS against ``ca`` unless ``plaintext``."""
    if plaintext:
        return grpc.insecure_channel(target)
    root = ca.read_bytes() if ca is not None else None
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=root))


def stream_chat(channel: grpc.Channel) -> Any:
    return channel.stream_stream(
        STREAM_CHAT,
        request_serializer=agent_pb2.ChatRequest.SerializeToString,
        response_deserializer=agent_pb2.ChatEvent.FromString,
    )


class _Requests:
    """Requests fed to grpcio's request iterator from the main thread."""

    def __init__(self) -> None:
        self._queue: queue.Queue[agent_pb2.ChatRequest | None] = queue.Queue(maxsize=16)

    def put(self, request: agent_pb2.ChatRequest) -> None:
        self._queue.put(request)

    def close(self) -> None:
        self._queue.put(None)

    def __iter__(self) -> Iterator[agent_pb2.ChatRequest]:
        while True:
            request = self._queue.get()
            if request is None:
                return
            yield request


def _describe_tool_delta(delta: agent_pb2.ToolCallDelta) -> str:
    if delta.HasField("error"):
        return f"{delta.status}: {delta.error.code}: {delta.error.message}"
    if delta.result_json:
        try:
            result = json.loads(delta.result_json)
        except ValueError:
            return delta.status
        fields = {k: v for k, v in result.items() if k != "content"}
        return f"{delta.status} {json.dumps(fields, sort_keys=True)}"
    return delta.status


def converse(
    channel: grpc.Channel,
    start: agent_pb2.StartSession,
    messages: Iterator[str],
    *,
    out: IO[str],
    err: IO[str],
    timeout_s: float = DEFAULT_TIMEOUT_S,
    prompt: bool = False,
    token: str | None = None,
) -> int:
    """Run one session: start it, send each message as a turn, stream the answers.

    ``token`` is the caller token sent as ``authorization: Bearer``.

    Returns 0 when every turn finished, 1 if any turn ended with an error.
    """
    requests = _Requests()
    requests.put(agent_pb2.ChatRequest(start_session=start))
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    events = stream_chat(channel)(iter(requests), timeout=timeout_s, metadata=metadata)
    status = 0
    # Whether "zl> " has been written for this turn's answer (it waits for the first token).
    speaking = [False]

    def next_turn() -> bool:
        if prompt:
            out.write("you> ")
            out.flush()
        text = next(messages, None)
        if text is None:
            requests.close()
            return False
        if not prompt:
            out.write(f"you> {text}\n")
        speaking[0] = False
        out.flush()
        requests.put(agent_pb2.ChatRequest(user_message=agent_pb2.UserMessage(text=text)))
        return True

    try:
        for event in events:
            kind = event.WhichOneof("event")
            if kind == "session_started":
                limits = event.session_started.limits
                out.write(
                    f"[session {event.session_id}: turn limit {limits.max_turn_ms} ms, "
                    f"budget {limits.token_budget} tokens]\n"
                )
                next_turn()
            elif kind == "assistant_delta":
                if not speaking[0]:
                    out.write("zl> ")
                    speaking[0] = True
                out.write(event.assistant_delta.text)
                out.flush()
            elif kind == "tool_call_started":
                started = event.tool_call_started
                device = f" on {started.device_id}" if started.device_id else ""
                lead = "\n" if speaking[0] else ""
                out.write(
                    f"{lead}  [tool {started.tool}@{started.version}{device} {started.args_json}]\n"
                )
                speaking[0] = False
                out.flush()
            elif kind == "tool_call_delta":
                out.write(f"  [tool {_describe_tool_delta(event.tool_call_delta)}]\n")
                out.flush()
            elif kind == "assistant_done":
                done = event.assistant_done
                usage = done.usage
                estimated = " (estimated)" if usage.estimated else ""
                out.write(
                    f"\n  [done: {done.finish_reason}; tokens in {usage.input_tokens}, "
                    f"out {usage.output_tokens}{estimated}]\n"
                )
                next_turn()
            elif kind == "error":
                error = event.error
                err.write(f"\n[error {error.code}: {error.message}]\n")
                status = 1
                if event.turn_id or not event.session_id:
                    next_turn()
    except grpc.RpcError as exc:
        err.write(f"zl chat: {exc.code().name}: {exc.details()}\n")
        return 1
    return status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zl chat", description="Chat with a model host.")
    parser.add_argument("messages", nargs="*", help="messages to send, one turn each")
    parser.add_argument("--target", default="localhost:50051", help="host:port of the host")
    parser.add_argument("--ca", type=Path, default=Path(".zl/certs/ca.pem"), help="CA bundle")
    parser.add_argument("--plaintext", action="store_true", help="no TLS (development only)")
    parser.add_argument("--tenant", default="dev-tenant")
    parser.add_argument("--user", default="dev-user")
    parser.add_argument("--device", default="", help="device whose tools the session may use")
    parser.add_argument("--token-file", type=Path, help="caller token (zl token caller --out)")
    parser.add_argument(
        "--key", type=Path, help="caller-token signing key: mint a short-lived token for this chat"
    )
    parser.add_argument("--model", default="")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S)
    return parser


def _token(args: argparse.Namespace) -> str | None:
    """The caller token from --token-file, or minted with --key.

    Raises:
        ValueError: both given, or a file or key that cannot be used.
    """
    if args.token_file and args.key:
        raise ValueError("give --token-file or --key, not both")
    if args.token_file:
        try:
            return str(args.token_file.read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise ValueError(f"--token-file {args.token_file}: {exc.strerror}") from None
    if args.key:
        from actors.policy import mint_caller_token
        from actors.relay import KeyFileError, load_private_key

        try:
            key = load_private_key(args.key)
        except KeyFileError as exc:
            raise ValueError(str(exc)) from None
        # Without --device the session uses the host's default device: any of the tenant's.
        devices = [args.device] if args.device else ["*"]
        return mint_caller_token(
            key, tenant=args.tenant, user=args.user, devices=devices, ttl_s=MINTED_TOKEN_TTL_S
        )
    return None


def chat_main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        token = _token(args)
    except ValueError as exc:
        print(f"zl chat: {exc}", file=sys.stderr)
        return 2
    ca = None if args.plaintext else args.ca
    if ca is not None and not ca.exists():
        print(f"zl chat: CA bundle {ca} not found (make one with `zl dev-certs`)", file=sys.stderr)
        return 2
    channel = open_channel(args.target, ca=ca, plaintext=args.plaintext)
    try:
        grpc.channel_ready_future(channel).result(timeout=CONNECT_TIMEOUT_S)
    except grpc.FutureTimeoutError:
        print(f"zl chat: cannot reach {args.target}", file=sys.stderr)
        return 1
    start = agent_pb2.StartSession(
        tenant=args.tenant, user=args.user, device_id=args.device, model=args.model
    )
    interactive = not args.messages
    lines: Iterator[str] = (
        (line.rstrip("\n") for line in sys.stdin) if interactive else iter(args.messages)
    )
    with channel:
        return converse(
            channel,
            start,
            lines,
            out=sys.stdout,
            err=sys.stderr,
            timeout_s=args.timeout,
            prompt=interactive and sys.stdin.isatty(),
            token=token,
        )
