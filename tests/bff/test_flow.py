"""Cancellation and back-pressure across the BFF: a client that leaves cancels the host's
turn; a client that stops reading stops the host's model, and nothing is lost."""

from __future__ import annotations

import json
import socket
import ssl
from pathlib import Path

import trio

from supervisors.bff import SessionsSection

from ._support import STEP_S, Stack, create_session, open_stack, parse_sse

# Generous: the figure is measured and printed; the bound only catches a turn left running.
CANCEL_BOUND_S = 10.0


async def _open_sse(
    stack: Stack, session_id: str, message: str, *, rcvbuf: int = 0
) -> trio.SSLStream[trio.SocketStream]:
    """A raw HTTPS connection that has sent one /v1/chat/stream request (HTTP/1.1)."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        # Before connect, so the window we advertise stays small.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    await sock.connect(("127.0.0.1", stack.bff.port))
    context = ssl.create_default_context(cafile=stack.ca)
    context.set_alpn_protocols(["http/1.1"])
    stream = trio.SSLStream(trio.SocketStream(sock), context, server_hostname="localhost")
    body = json.dumps({"session_id": session_id, "message": message}).encode()
    request = (
        b"POST /v1/chat/stream HTTP/1.1\r\nhost: localhost\r\n"
        + f"authorization: Bearer {stack.keys.token()}\r\n".encode()
        + b"content-type: application/json\r\n"
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await stream.send_all(request)
    return stream


async def _read_until(
    stream: trio.SSLStream[trio.SocketStream], marker: bytes, seen: bytearray
) -> None:
    with trio.fail_after(STEP_S):
        while marker not in seen:
            data = await stream.receive_some(65536)
            assert data, "the BFF closed the stream"
            seen += data


class TestDisconnect:
    """A client that drops its SSE stream cancels the turn on the host."""

    async def test_dropping_the_stream_cancels_the_host_turn(self, tmp_path: Path) -> None:
        async with (
            open_stack(tmp_path, mock={"tokens_per_s": 50, "answer_tokens": 1000}) as stack,
            stack.client() as client,
        ):
            sid = await create_session(client)
            stream = await _open_sse(stack, sid, "talk to me")
            seen = bytearray()
            await _read_until(stream, b"event: assistant.delta", seen)
            assert seen.startswith(b"HTTP/1.1 200")
            dropped_at = trio.current_time()
            await trio.aclose_forcefully(stream)
            with trio.fail_after(CANCEL_BOUND_S):
                await stack.provider.cancelled.wait()
            assert stack.provider.cancelled_at is not None
            elapsed_ms = (stack.provider.cancelled_at - dropped_at) * 1000
            print(f"\nSSE disconnect -> host turn cancelled: {elapsed_ms:.1f} ms")
            assert stack.provider.tokens_streamed < 1000
            # The session outlives the dropped stream, and frees for its next turn.
            with trio.fail_after(STEP_S):
                while (await client.get(f"/v1/sessions/{sid}")).json()["turn_running"]:
                    await trio.sleep(0.02)


class TestBackPressure:
    """A slow SSE reader holds back the host's stream; buffering stays bounded."""

    async def test_a_reader_that_stops_stops_the_model(self, tmp_path: Path) -> None:
        answer_tokens = 6_000
        sessions = SessionsSection(turn_buffer_events=8, stall_timeout_s=STEP_S * 2)
        async with (
            open_stack(
                tmp_path,
                mock={"tokens_per_s": 20_000, "answer_tokens": answer_tokens},
                sessions=sessions,
                http={"send_buffer_bytes": 16384},
                upstream={"stream_window_bytes": 16384},
            ) as stack,
            stack.client() as client,
        ):
            sid = await create_session(client)
            stream = await _open_sse(stack, sid, "flood", rcvbuf=4096)
            seen = bytearray()
            await _read_until(stream, b"event: assistant.delta", seen)
            # Stop reading. Unthrottled, the model would be done in about a second.
            produced = -1
            with trio.fail_after(STEP_S):
                while produced != stack.provider.tokens_streamed:
                    produced = stack.provider.tokens_streamed
                    await trio.sleep(0.5)
            print(f"\nstopped reading: the model stopped at {produced} of {answer_tokens} tokens")
            assert produced < answer_tokens // 2
            # Read everything now: every token arrives, in order, none lost.
            with trio.fail_after(STEP_S * 2):
                while b"event: assistant.done" not in seen:
                    data = await stream.receive_some(65536)
                    assert data
                    seen += data
            await trio.aclose_forcefully(stream)
        body = bytes(seen).split(b"\r\n\r\n", 1)[1].decode()
        events = parse_sse(_unchunk(body))
        assert events[-1][0] == "assistant.done"
        assert events[-1][2]["usage"]["output_tokens"] == answer_tokens
        text = "".join(d["text"] for name, _, d in events if name == "assistant.delta")
        assert text.startswith('You said: "flood".')
        # Deltas that queued behind the slow reader were merged (fewer events than tokens).
        deltas = sum(1 for name, _, _ in events if name == "assistant.delta")
        assert deltas < answer_tokens
        assert len(text.split()) == answer_tokens


def _unchunk(body: str) -> str:
    """The payload of an HTTP/1.1 chunked body."""
    out = []
    rest = body
    while rest:
        size_line, _, rest = rest.partition("\r\n")
        size = int(size_line.split(";")[0], 16)
        if size == 0:
            break
        out.append(rest[:size])
        rest = rest[size + 2 :]
    return "".join(out)


class TestSlowClients:
    """A request body that does not arrive in time gets a 408 problem, not a held task."""

    async def test_a_trickling_body_is_408(self, tmp_path: Path) -> None:
        async with open_stack(tmp_path, http={"read_timeout_s": 0.5}) as stack:
            sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            await sock.connect(("127.0.0.1", stack.bff.port))
            context = ssl.create_default_context(cafile=stack.ca)
            context.set_alpn_protocols(["http/1.1"])
            stream = trio.SSLStream(trio.SocketStream(sock), context, server_hostname="localhost")
            await stream.send_all(
                b"POST /v1/sessions HTTP/1.1\r\nhost: localhost\r\n"
                + f"authorization: Bearer {stack.keys.token()}\r\n".encode()
                + b"content-type: application/json\r\ncontent-length: 100\r\n\r\n{"
            )
            seen = bytearray()
            await _read_until(stream, b"}", seen)
            await trio.aclose_forcefully(stream)
        head, _, body = bytes(seen).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408")
        assert b"application/problem+json" in head
        assert json.loads(body)["code"] == "invalid_request"  # a content-length body
