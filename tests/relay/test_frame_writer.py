"""A connection's frame writer: coalescing, order, back-pressure and a stuck peer."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from actors.relay import BINARY_CODEC, JSON_CODEC, Ping
from actors.relay._codec import FrameWriter, WriterClosed

MAX_BYTES = 1 << 20


class RecordingPeer:
    """Shaped like ``trio_websocket.WebSocketConnection``: records each message it takes."""

    def __init__(self) -> None:
        self.messages: list[bytes | str] = []
        self.stuck = False
        self.gate = trio.Event()

    async def send_message(self, message: bytes | str) -> None:
        if self.stuck:
            await trio.sleep_forever()
        await self.gate.wait()
        self.messages.append(message)

    async def get_message(self) -> bytes | str:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def aclose(self, code: int = 1000, reason: str | None = None) -> None:
        return None


def pings(count: int) -> list[Ping]:
    return [Ping(nonce=f"n{i}", sent_at_ms=float(i)) for i in range(count)]


class TestFrameWriter:
    async def test_frames_ready_together_leave_in_one_binary_message(self) -> None:
        peer = RecordingPeer()
        writer = FrameWriter(peer, BINARY_CODEC, timeout_s=10)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer.run)
            await trio.testing.wait_all_tasks_blocked()
            for frame in pings(5):
                writer.send_nowait(frame)
            peer.gate.set()
            with trio.fail_after(10):
                while not peer.messages:
                    await trio.sleep(0.01)
            writer.close()
        assert len(peer.messages) == 1
        assert BINARY_CODEC.decode(peer.messages[0], max_bytes=MAX_BYTES) == pings(5)

    async def test_json_frames_leave_one_message_each_in_order(self) -> None:
        peer = RecordingPeer()
        peer.gate.set()
        writer = FrameWriter(peer, JSON_CODEC, timeout_s=10)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer.run)
            for frame in pings(4):
                await writer.send(frame)
            with trio.fail_after(10):
                while len(peer.messages) < 4:
                    await trio.sleep(0.01)
            writer.close()
        assert [JSON_CODEC.decode(m, max_bytes=MAX_BYTES)[0] for m in peer.messages] == pings(4)

    async def test_a_full_queue_makes_send_wait(self) -> None:
        peer = RecordingPeer()
        writer = FrameWriter(peer, BINARY_CODEC, timeout_s=10, capacity=2)
        async with trio.open_nursery() as nursery:
            writer.send_nowait(pings(1)[0])
            writer.send_nowait(pings(1)[0])
            with pytest.raises(trio.WouldBlock):
                writer.send_nowait(pings(1)[0])
            sent = trio.Event()

            async def third() -> None:
                await writer.send(pings(1)[0])
                sent.set()

            nursery.start_soon(third)
            await trio.testing.wait_all_tasks_blocked()
            assert not sent.is_set()
            nursery.start_soon(writer.run)  # takes the two queued frames: room again
            with trio.fail_after(10):
                await sent.wait()
            writer.close()

    async def test_a_stuck_peer_stops_the_writer(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        peer = RecordingPeer()
        peer.stuck = True
        reasons: list[str] = []
        writer = FrameWriter(peer, BINARY_CODEC, timeout_s=5, on_failure=reasons.append)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer.run)
            await writer.send(pings(1)[0])
            with trio.fail_after(60):
                while not reasons:
                    await trio.sleep(1)
        assert "took no frame for 5 s" in reasons[0]
        with pytest.raises(WriterClosed):
            await writer.send(pings(1)[0])

    async def test_flush_writes_what_is_queued_from_the_caller(self) -> None:
        peer = RecordingPeer()
        peer.gate.set()
        writer = FrameWriter(peer, BINARY_CODEC, timeout_s=10)
        writer.send_nowait(pings(1)[0])
        writer.send_nowait(pings(2)[1])
        await writer.flush(timeout_s=5)
        assert BINARY_CODEC.decode(peer.messages[0], max_bytes=MAX_BYTES) == pings(2)
