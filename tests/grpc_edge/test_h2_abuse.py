"""HTTP/2 abuse on the gRPC edge: a raw HTTP/2 client over a real socket does the abuse; the
connection is closed with ENHANCE_YOUR_CALM, health checks on another connection keep
answering, and the memory the abuse took is returned.

The abuses: opening and resetting tens of thousands of streams (the "rapid reset" attack,
CVE-2023-44487), flooding SETTINGS or PING frames without reading the acknowledgements;
and the caps on connections and idle time.
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import h2.config
import h2.connection
import h2.errors
import h2.events
import pytest
import trio
from edge_helpers import (
    Probe,
    RawH2Client,
    count_tasks,
    echo_service,
    plaintext_config,
    start,
    start_server,
)
from hyperframe.frame import PingFrame, SettingsFrame

from contracts.generated.grpc.health.v1 import health_pb2
from supervisors.edges.grpc import HealthService

#: A generous bound on the whole abuse: the point is that it ends, not how fast.
ABUSE_DEADLINE_S = 60
RESET_STREAMS = 20_000
FLOOD_FRAMES = 100_000
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class HealthProbe:
    """Health checks in a loop on their own grpcio connection, from a thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.answers = 0
        self.failures: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with grpc.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            check = channel.unary_unary(
                "/grpc.health.v1.Health/Check",
                request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                response_deserializer=health_pb2.HealthCheckResponse.FromString,
            )
            while not self.stop.is_set():
                try:
                    # Generous: under abuse a check must still answer, well within this.
                    check(health_pb2.HealthCheckRequest(service=""), timeout=10)
                    self.answers += 1
                except grpc.RpcError as exc:
                    self.failures.append(f"{exc.code().name}: {exc.details()}")


async def read_termination(sock: trio.SocketStream) -> int | None:
    """Read until the server closes; the error code of its GOAWAY, if one came."""
    reader = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    reader.initiate_connection()
    reader.data_to_send()
    code = None
    while True:
        try:
            data = await sock.receive_some(65_536)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return code
        if not data:
            return code
        with contextlib.suppress(h2.exceptions.ProtocolError):
            for event in reader.receive_data(data):
                if isinstance(event, h2.events.ConnectionTerminated):
                    code = int(event.error_code)
        reader.data_to_send()  # acknowledgements are not sent back: we only watch


async def send_quietly(sock: trio.SocketStream, data: bytes) -> bool:
    """Send; False once the server has closed the connection."""
    try:
        await sock.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return False
    return True


async def rapid_reset(sock: trio.SocketStream) -> None:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    headers = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/zl.agent.v0.Agent/StreamChat"),
        (":authority", "127.0.0.1"),
        ("content-type", "application/grpc"),
    ]
    for n in range(RESET_STREAMS):
        stream_id = client.get_next_available_stream_id()
        client.send_headers(stream_id, headers)
        client.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
        if n % 100 == 99 and not await send_quietly(sock, client.data_to_send()):
            return
    await send_quietly(sock, client.data_to_send())


def flood(frame: Callable[[], bytes]) -> Callable[[trio.SocketStream], Any]:
    async def send(sock: trio.SocketStream) -> None:
        if not await send_quietly(sock, PREFACE + SettingsFrame(0).serialize()):
            return
        batch = frame() * 1000
        for _ in range(FLOOD_FRAMES // 1000):
            if not await send_quietly(sock, batch):
                return

    return send


ABUSES = [
    pytest.param(rapid_reset, id="rapid-reset"),
    pytest.param(flood(lambda: SettingsFrame(0).serialize()), id="settings-flood"),
    pytest.param(
        flood(lambda: PingFrame(0, opaque_data=os.urandom(8)).serialize()), id="ping-flood"
    ),
]


@contextlib.contextmanager
def traced() -> Iterator[None]:
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


class TestAbuseIsCutOff:
    """Each abuse ends its own connection with ENHANCE_YOUR_CALM; nothing else suffers."""

    @pytest.mark.parametrize("abuse", ABUSES)
    async def test_abuse(self, abuse: Callable[[trio.SocketStream], Any]) -> None:
        probe = Probe()
        health = HealthService()
        with traced():
            async with trio.open_nursery() as nursery:
                handle = await start_server(nursery, [echo_service(probe), health.service])
                checks = HealthProbe(handle.port)
                thread = threading.Thread(target=checks.run, daemon=True)
                thread.start()
                while checks.answers < 3:  # warm: its connection and threads exist
                    await trio.sleep(0.01)
                gc.collect()
                baseline_tasks = count_tasks()
                baseline_bytes = tracemalloc.get_traced_memory()[0]
                answers_before = checks.answers
                with trio.fail_after(ABUSE_DEADLINE_S):
                    sock = await trio.open_tcp_stream("127.0.0.1", handle.port)
                    async with sock, trio.open_nursery() as inner:
                        inner.start_soon(abuse, sock)
                        code = await read_termination(sock)
                        inner.cancel_scope.cancel()
                    # The server has let go of the connection and everything it held.
                    while count_tasks() > baseline_tasks:
                        await trio.sleep(0.05)
                gc.collect()
                grown = tracemalloc.get_traced_memory()[0] - baseline_bytes
                answered = checks.answers - answers_before
                checks.stop.set()
                await trio.to_thread.run_sync(thread.join)
                nursery.cancel_scope.cancel()
        assert code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
        assert checks.failures == []
        assert answered > 0, "health checks kept answering during the abuse"
        # Handlers never ran for most of the reset streams (they are capped, then cut off).
        assert probe.started <= 2 * plaintext_config().max_resets_per_window
        assert grown < 2 * 1024 * 1024, f"{grown} bytes still held after the abuse"


class TestCancellingCallsIsNotAbuse:
    """A client that cancels many calls under way (a BFF does) keeps its connection."""

    async def test_cancel_many_answered_calls(self) -> None:
        probe = Probe()
        calls = 2 * plaintext_config().max_resets_per_window
        async with trio.open_nursery() as nursery:
            handle = await start_server(nursery, [echo_service(probe)])
            with trio.fail_after(ABUSE_DEADLINE_S):
                async with await RawH2Client.connect(handle.port) as client:
                    streams = []
                    for _ in range(calls):
                        stream_id = await client.open_call()
                        await client.send_message(stream_id, start().SerializeToString())
                        streams.append(stream_id)
                    while not all(s in client.data for s in streams):  # every call answered
                        assert await client.pump()
                    for stream_id in streams:
                        client.h2.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
                    await client.flush()
                    # The same connection still serves a new call.
                    last = await client.open_call()
                    await client.send_message(last, start().SerializeToString())
                    while last not in client.data:
                        assert await client.pump(), "the connection was closed"
            nursery.cancel_scope.cancel()


class TestCaps:
    """Connections beyond the cap are closed at once; idle connections time out."""

    async def test_connection_cap(self) -> None:
        async with trio.open_nursery() as nursery:
            handle = await start_server(
                nursery, [HealthService().service], config=plaintext_config(max_connections=3)
            )
            with trio.fail_after(ABUSE_DEADLINE_S):
                held = [await trio.open_tcp_stream("127.0.0.1", handle.port) for _ in range(3)]
                for sock in held:
                    await sock.send_all(PREFACE + SettingsFrame(0).serialize())
                    assert await sock.receive_some(65_536)  # served: the server's SETTINGS
                extra = await trio.open_tcp_stream("127.0.0.1", handle.port)
                await send_quietly(extra, PREFACE + SettingsFrame(0).serialize())
                assert await read_termination(extra) is None  # closed without a word
                await extra.aclose()
                await held.pop().aclose()
                while True:  # a slot is free again once the server has seen the close
                    again = await trio.open_tcp_stream("127.0.0.1", handle.port)
                    await send_quietly(again, PREFACE + SettingsFrame(0).serialize())
                    try:
                        served = await again.receive_some(65_536)
                    except trio.BrokenResourceError:
                        served = b""
                    await again.aclose()
                    if served:
                        break
                    await trio.sleep(0.05)
                for sock in held:
                    await sock.aclose()
            nursery.cancel_scope.cancel()

    async def test_idle_connection_times_out(self) -> None:
        async with trio.open_nursery() as nursery:
            handle = await start_server(
                nursery, [HealthService().service], config=plaintext_config(idle_timeout_s=0.5)
            )
            with trio.fail_after(ABUSE_DEADLINE_S):
                sock = await trio.open_tcp_stream("127.0.0.1", handle.port)
                async with sock:
                    await sock.send_all(PREFACE + SettingsFrame(0).serialize())
                    assert await read_termination(sock) == h2.errors.ErrorCodes.NO_ERROR
            nursery.cancel_scope.cancel()
