"""HTTP/2 PINGs keep a waiting call's connection alive and find clients that vanished."""

from __future__ import annotations

import h2.events
import trio
from edge_helpers import (
    STEP_TIMEOUT_S,
    Probe,
    RawH2Client,
    echo_service,
    plaintext_config,
    start_server,
)


class TestKeepalive:
    """With calls open and nothing to send, the edge PINGs; no answer drops the connection."""

    async def test_idle_call_is_pinged_and_survives(self, nursery: trio.Nursery) -> None:
        probe = Probe()
        config = plaintext_config(keepalive_s=0.1, keepalive_ack_timeout_s=0.5)
        server = await start_server(nursery, [echo_service(probe, hold=True)], config=config)
        async with await RawH2Client.connect(server.port) as client:
            await client.open_call()
            pings = 0
            with trio.fail_after(STEP_TIMEOUT_S):
                while pings < 3:
                    data = await client.sock.receive_some(65_536)
                    assert data, "the server closed the connection"
                    for event in client.h2.receive_data(data):
                        if isinstance(event, h2.events.PingReceived):
                            pings += 1
                    await client.flush()  # h2 queues the PING ACK itself
            # Answered PINGs keep the call alive past several ACK timeouts.
            with trio.move_on_after(1.0):
                while True:
                    await client.pump()
            assert probe.cancelled_at == []
            assert probe.started == 1

    async def test_silent_client_is_dropped(self, nursery: trio.Nursery) -> None:
        probe = Probe()
        config = plaintext_config(keepalive_s=0.1, keepalive_ack_timeout_s=0.3)
        server = await start_server(nursery, [echo_service(probe, hold=True)], config=config)
        async with await RawH2Client.connect(server.port) as client:
            await client.open_call()
            with trio.fail_after(STEP_TIMEOUT_S):
                await probe.entered.wait()
                # The client never reads again, so it never acknowledges a PING.
                while not probe.cancelled_at:
                    await trio.sleep(0.05)
        assert probe.finished == 0
