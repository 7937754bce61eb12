"""EagerSocketStream: socket calls that yield only when they wait, and Trio's stream contract."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing

from supervisors.tls import ALPN_HTTP1, client_ssl_context, generate_dev_certs, server_ssl_context
from zl_actors import EagerSocketStream
from zl_actors._eager_stream import FAIRNESS_EVERY


@contextmanager
def stream_pair() -> Iterator[tuple[EagerSocketStream, socket.socket]]:
    ours, peer = socket.socketpair()
    peer.setblocking(False)
    stream = EagerSocketStream(ours)
    try:
        yield stream, peer
    finally:
        peer.close()
        ours.close()


def fill_send_buffer(sock: socket.socket) -> int:
    """Send until the kernel refuses more; returns how much it took."""
    sent = 0
    chunk = b"x" * 65_536
    while True:
        try:
            sent += sock.send(chunk)
        except BlockingIOError:
            return sent


class _StepsOf(trio.abc.Instrument):
    """Counts the scheduler steps a task starts (each resume after a yield is one)."""

    def __init__(self, task: trio.lowlevel.Task) -> None:
        self.task = task
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self.steps += 1


async def yields(call: Awaitable[object]) -> bool:
    """Whether awaiting ``call`` gave up the processor (a scheduling point).

    Trio's ``assert_no_checkpoints`` also counts cancellation checks, which these calls make
    on purpose; what they must not do is yield to the scheduler.
    """
    steps = _StepsOf(trio.lowlevel.current_task())
    trio.lowlevel.add_instrument(steps)
    try:
        await call
    finally:
        trio.lowlevel.remove_instrument(steps)
    return steps.steps > 0


class TestNoNeedlessYield:
    """A call that does not wait is not a scheduling point; one that waits is."""

    async def test_receive_with_data_ready_does_not_yield(self) -> None:
        with stream_pair() as (stream, peer):
            peer.send(b"ready")
            assert not await yields(stream.receive_some(16))

    async def test_send_with_room_does_not_yield(self) -> None:
        with stream_pair() as (stream, peer):
            assert not await yields(stream.send_all(b"message"))
            assert peer.recv(16) == b"message"

    async def test_receive_waits_for_data(self) -> None:
        with stream_pair() as (stream, peer):
            async with trio.open_nursery() as nursery:

                async def answer_later() -> None:
                    await trio.sleep(0.05)
                    peer.send(b"late")

                nursery.start_soon(answer_later)
                with trio.fail_after(5):
                    assert await yields(stream.receive_some(16))

    async def test_after_a_wait_the_next_receive_waits_first_and_still_reads(self) -> None:
        with stream_pair() as (stream, peer):
            async with trio.open_nursery() as nursery:

                async def answer_later() -> None:
                    await trio.sleep(0.05)
                    peer.send(b"first")

                nursery.start_soon(answer_later)
                with trio.fail_after(5):
                    assert await stream.receive_some(16) == b"first"
            calls: list[int] = []
            real = stream.socket

            class CountingSocket:
                """Counts recv calls on the real socket."""

                def __getattr__(self, name: str) -> object:
                    return getattr(real, name)

                def fileno(self) -> int:
                    return real.fileno()

                def recv(self, size: int) -> bytes:
                    calls.append(size)
                    return real.recv(size)

            stream.socket = CountingSocket()  # type: ignore[assignment]
            async with trio.open_nursery() as nursery:

                async def answer_again_later() -> None:
                    await trio.sleep(0.05)
                    peer.send(b"second")

                nursery.start_soon(answer_again_later)
                with trio.fail_after(5):
                    assert await stream.receive_some(16) == b"second"
            # Readability first, then one recv that finds the data: no failed recv first.
            assert calls == [16]
            stream.socket = real

    async def test_send_waits_while_the_buffer_is_full(self) -> None:
        with stream_pair() as (stream, peer):
            fill_send_buffer(stream.socket)
            payload = bytes(range(256)) * 1024
            received = bytearray()

            async def drain_peer() -> None:
                # Reads everything the stream had queued, then the payload.
                while not received.endswith(payload):
                    await trio.lowlevel.wait_readable(peer)
                    received.extend(peer.recv(1 << 20))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(drain_peer)
                with trio.fail_after(5):
                    assert await yields(stream.send_all(payload))
            assert received.endswith(payload)

    async def test_a_stream_that_never_waits_still_lets_others_run(self) -> None:
        ticks = 0

        async def other_task() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await trio.lowlevel.checkpoint()

        with stream_pair() as (stream, peer):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(other_task)
                await trio.lowlevel.checkpoint()
                seen = []
                rounds = 4 * FAIRNESS_EVERY  # two calls each, none of which waits
                for _ in range(rounds):
                    peer.send(b"x")  # always ready: no receive has to wait
                    assert await stream.receive_some(16) == b"x"
                    await stream.send_all(b"y")  # always room: no send has to wait
                    seen.append(ticks)
                nursery.cancel_scope.cancel()
        # Without the periodic checkpoint the stream's task would have run alone throughout;
        # with it the other task ran once per FAIRNESS_EVERY calls.
        assert seen[-1] - seen[0] >= 2 * rounds // FAIRNESS_EVERY - 1


class TestTrioContract:
    """Cancellation, end of stream and errors as Trio's own streams give them."""

    async def test_a_cancelled_task_neither_sends_nor_receives(self) -> None:
        with stream_pair() as (stream, peer):
            peer.send(b"kept for later")
            with trio.CancelScope() as scope:
                scope.cancel()
                await stream.send_all(b"never sent")
            assert scope.cancelled_caught
            with trio.CancelScope() as scope:
                scope.cancel()
                await stream.receive_some(64)
            assert scope.cancelled_caught
            with pytest.raises(BlockingIOError):
                peer.recv(64)
            assert await stream.receive_some(64) == b"kept for later"

    async def test_peer_close_reads_as_end_of_stream(self) -> None:
        with stream_pair() as (stream, peer):
            peer.close()
            with trio.fail_after(5):
                assert await stream.receive_some(16) == b""

    async def test_send_eof_half_closes(self) -> None:
        with stream_pair() as (stream, peer):
            await stream.send_eof()
            assert peer.recv(16) == b""
            peer.send(b"still open this way")
            assert await stream.receive_some(64) == b"still open this way"

    async def test_a_reset_connection_is_broken(self) -> None:
        with stream_pair() as (stream, peer):
            peer.close()
            with trio.fail_after(5), pytest.raises(trio.BrokenResourceError):
                for _ in range(100):  # the first sends may still be accepted
                    await stream.send_all(b"x" * 65_536)

    async def test_closing_wakes_a_waiting_receiver(self) -> None:
        with stream_pair() as (stream, _):
            errors: list[BaseException] = []

            async def receiver() -> None:
                try:
                    await stream.receive_some(16)
                except trio.ClosedResourceError as exc:
                    errors.append(exc)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(receiver)
                await trio.testing.wait_all_tasks_blocked()
                await stream.aclose()
            assert len(errors) == 1

    async def test_calls_after_close_raise_closed(self) -> None:
        with stream_pair() as (stream, _):
            await stream.aclose()
            await stream.aclose()  # idempotent
            with pytest.raises(trio.ClosedResourceError):
                await stream.send_all(b"x")
            with pytest.raises(trio.ClosedResourceError):
                await stream.receive_some(16)

    async def test_from_trio_takes_over_a_connected_socket(self) -> None:
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                partial(trio.serve_tcp, host="127.0.0.1"), _echo_once, 0
            )
            port = listeners[0].socket.getsockname()[1]
            stream = EagerSocketStream.from_trio(await trio.open_tcp_stream("127.0.0.1", port))
            with trio.fail_after(5):
                await stream.send_all(b"echo me")
                assert await stream.receive_some(64) == b"echo me"
            await stream.aclose()
            nursery.cancel_scope.cancel()

    async def test_tls_over_it(self, tmp_path: Path) -> None:
        certs = generate_dev_certs(tmp_path / "certs")
        server_context = server_ssl_context(certs.server_cert, certs.server_key, alpn=ALPN_HTTP1)
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                partial(trio.serve_ssl_over_tcp, host="127.0.0.1"),
                _echo_once,
                0,
                server_context,
            )
            port = listeners[0].transport_listener.socket.getsockname()[1]
            raw = EagerSocketStream.from_trio(await trio.open_tcp_stream("127.0.0.1", port))
            tls = trio.SSLStream(
                raw,
                client_ssl_context(certs.ca_cert, alpn=ALPN_HTTP1),
                server_hostname="localhost",
            )
            with trio.fail_after(10):
                await tls.send_all(b"over tls")
                assert await tls.receive_some(64) == b"over tls"
            await tls.aclose()
            nursery.cancel_scope.cancel()


async def _echo_once(stream: trio.abc.Stream) -> None:
    data = await stream.receive_some(64)
    await stream.send_all(data)
    await trio.aclose_forcefully(stream)


def test_fairness_must_be_positive() -> None:
    with socket.socket() as sock, pytest.raises(ValueError, match="fairness_every"):
        EagerSocketStream(sock, fairness_every=0)
