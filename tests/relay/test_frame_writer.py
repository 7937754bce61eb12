"""A connection's frame writer: coalescing within the link's limit, order, back-pressure, a
frame that does not fit, and a stuck peer."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from actors.relay import BINARY_CODEC, JSON_CODEC, BadFrame, FrameCodec, Ping, ToolResult
from actors.relay._codec import FrameWriter, WriterClosed

MAX_BYTES = 1 << 20
CODECS = pytest.mark.parametrize("codec", [JSON_CODEC, BINARY_CODEC], ids=["json", "binary"])


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


def writer_for(peer: RecordingPeer, codec: FrameCodec, **kw: object) -> FrameWriter:
    options: dict[str, object] = {"limit": MAX_BYTES, "link": "the test link", "timeout_s": 10}
    return FrameWriter(peer, codec, **(options | kw))  # type: ignore[arg-type]


def result(call_id: str, size: int) -> ToolResult:
    return ToolResult(call_id=call_id, result={"content": [{"type": "text", "text": "x" * size}]})


def pings(count: int) -> list[Ping]:
    return [Ping(nonce=f"n{i}", sent_at_ms=float(i)) for i in range(count)]


class TestFrameWriter:
    async def test_frames_ready_together_leave_in_one_binary_message(self) -> None:
        peer = RecordingPeer()
        writer = writer_for(peer, BINARY_CODEC)
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
        writer = writer_for(peer, JSON_CODEC)
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
        writer = writer_for(peer, BINARY_CODEC, capacity=2)
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
        writer = writer_for(peer, BINARY_CODEC, timeout_s=5, on_failure=reasons.append)
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
        writer = writer_for(peer, BINARY_CODEC)
        writer.send_nowait(pings(1)[0])
        writer.send_nowait(pings(2)[1])
        await writer.flush(timeout_s=5)
        assert BINARY_CODEC.decode(peer.messages[0], max_bytes=MAX_BYTES) == pings(2)

    async def test_coalesced_messages_stay_within_the_links_limit(self) -> None:
        # Three results of about 400 bytes each on a 1,000-byte link: two fit one message,
        # the third goes in the next; every message is one the peer can read.
        peer = RecordingPeer()
        limit = 1000
        writer = writer_for(peer, BINARY_CODEC, limit=limit)
        sent = [result(f"c-{i}", 400) for i in range(3)]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer.run)
            await trio.testing.wait_all_tasks_blocked()
            for frame in sent:
                writer.send_nowait(frame)
            peer.gate.set()
            with trio.fail_after(10):
                while len(peer.messages) < 2:
                    await trio.sleep(0.01)
            writer.close()
        assert len(peer.messages) == 2
        assert all(len(m) <= limit for m in peer.messages)
        received = [f for m in peer.messages for f in BINARY_CODEC.decode(m, max_bytes=limit)]
        assert received == sent

    @CODECS
    async def test_a_frame_over_the_limit_fails_alone(self, codec: FrameCodec) -> None:
        peer = RecordingPeer()
        peer.gate.set()
        writer = writer_for(peer, codec, limit=1000)
        with pytest.raises(BadFrame, match="does not fit the test link's 1000-byte") as caught:
            writer.send_nowait(result("c-big", 2000))
        assert caught.value.call_id == "c-big"
        assert caught.value.code == "relay.bad_frame"
        # Nothing was queued, and the writer goes on with the next frame.
        writer.send_nowait(result("c-small", 10))
        await writer.flush(timeout_s=5)
        assert [f for m in peer.messages for f in codec.decode(m, max_bytes=1000)] == [
            result("c-small", 10)
        ]
