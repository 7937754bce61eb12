"""Cancellation reaches the handler at once, and nothing is left behind."""

from __future__ import annotations

import gc
import queue
import threading
import time
from collections.abc import Iterator

import grpc
import trio
from edge_helpers import (
    STEP_TIMEOUT_S,
    Probe,
    RawH2Client,
    chat_callable,
    count_tasks,
    echo_service,
    server_sockets,
    start,
    start_server,
)

#: The issue's bound: a handler is cancelled within this long of the client's cancel or drop.
CANCEL_BOUND_S = 0.100
#: How many calls the leak tests churn through.
CHURN = 200


def _blocking_requests(stop: threading.Event) -> Iterator[object]:
    """Send a start, then keep the request side open until told to stop."""
    yield start()
    stop.wait()


class TestClientCancel:
    """A grpcio client's cancel (RST_STREAM) cancels the waiting handler within 100 ms."""

    async def test_handler_cancelled_promptly(self, echo_server: object, probe: Probe) -> None:
        port = echo_server.port  # type: ignore[attr-defined]
        cancelled_at: queue.Queue[float] = queue.Queue()

        def client() -> None:
            stop = threading.Event()
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                call = chat_callable(channel)(_blocking_requests(stop))
                next(call)  # session_started: the handler is now waiting in receive()
                cancelled_at.put(time.monotonic())
                call.cancel()
                deadline = time.monotonic() + 2
                while not probe.cancelled_at and time.monotonic() < deadline:
                    time.sleep(0.005)
                stop.set()

        with trio.fail_after(STEP_TIMEOUT_S):
            await trio.to_thread.run_sync(client)
        assert len(probe.cancelled_at) == 1
        assert probe.cancelled_at[0] - cancelled_at.get_nowait() < CANCEL_BOUND_S


class TestDroppedConnection:
    """A dropped TCP connection cancels every handler on it within 100 ms."""

    async def test_handlers_cancelled_promptly(self, echo_server: object, probe: Probe) -> None:
        port = echo_server.port  # type: ignore[attr-defined]
        with trio.fail_after(STEP_TIMEOUT_S):
            client = await RawH2Client.connect(port)
            for _ in range(3):
                await client.open_call()
            while probe.started < 3:
                await trio.sleep(0.005)
            dropped_at = time.monotonic()
            await client.sock.aclose()
            while len(probe.cancelled_at) < 3:
                await trio.sleep(0.001)
        assert max(probe.cancelled_at) - dropped_at < CANCEL_BOUND_S


class TestNoLeaks:
    """After 200 cancelled and 200 dropped streams the server holds no task and no socket."""

    async def test_churn_leaves_nothing(self) -> None:
        probe = Probe()
        async with trio.open_nursery() as nursery:
            handle = await start_server(nursery, [echo_service(probe)])
            # Earlier tests' garbage (sockets not yet finalized) must not close inside this
            # one and hide a leak, nor count as one.
            gc.collect()
            tasks_before, sockets_before = count_tasks(), server_sockets(handle.port)
            assert len(sockets_before) == 1, "the listener alone"

            def cancel_many() -> None:
                with grpc.insecure_channel(f"127.0.0.1:{handle.port}") as channel:
                    chat = chat_callable(channel)
                    for _ in range(CHURN):
                        stop = threading.Event()
                        call = chat(_blocking_requests(stop))
                        next(call)
                        call.cancel()
                        stop.set()

            with trio.fail_after(STEP_TIMEOUT_S * 3):
                await trio.to_thread.run_sync(cancel_many)
                for _ in range(CHURN // 10):
                    client = await RawH2Client.connect(handle.port)
                    for _ in range(10):
                        await client.open_call()
                    await client.sock.aclose()
                while len(probe.cancelled_at) < 2 * CHURN:
                    await trio.sleep(0.01)
                # The cancelled handlers are gone; give the connection tasks a moment to close.
                while count_tasks() > tasks_before or server_sockets(handle.port) != sockets_before:
                    await trio.sleep(0.01)
            assert probe.started == 2 * CHURN
            assert count_tasks() == tasks_before
            assert server_sockets(handle.port) == sockets_before
            nursery.cancel_scope.cancel()
