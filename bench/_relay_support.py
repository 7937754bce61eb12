"""Idle devices for ``bench.bridge``: many WSS clients in one process speaking the real protocol.

``python -m bench._relay_support --url URL --ca CA --key PRIVATE.pem --first I --count N``
opens devices ``dI`` .. ``d(I+N-1)`` (a device token each, ``device.hello``, a pong to every
ping), at most ``--ramp`` connection attempts at a time, and prints ``ready A F`` once every
device was acknowledged (A) or failed (F). Then, for each line read on stdin, it prints
``connected K``: the devices whose connection is open at that moment. It stops when stdin
closes.
"""

from __future__ import annotations

import argparse
import ssl
import sys

import trio
from trio_websocket import ConnectionClosed, HandshakeError, WebSocketConnection

from actors.relay import (
    OFFERED_SUBPROTOCOLS,
    BadFrame,
    DeviceHello,
    DeviceHelloAck,
    FrameCodec,
    Ping,
    Pong,
    codec_for,
    load_private_key,
)
from actors.relay import mint_device_token as mint
from actors.relay._dial import open_relay_websocket
from supervisors.tls import ALPN_HTTP1, client_ssl_context

MAX_FRAME = 64 * 1024
#: Connection attempts in progress at once (TCP + TLS + WebSocket + hello) per process.
DEFAULT_RAMP = 32
CONNECT_TIMEOUT_S = 60.0
#: Tenants the devices are spread over (all served by the one shard under test).
TENANTS = 50


class Devices:
    """Counters shared by the device tasks of this process."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.all_tried = trio.Event()
        self.acked = 0
        self.failed = 0
        self.connected = 0

    def tried(self) -> None:
        if self.acked + self.failed == self.total:
            self.all_tried.set()


async def say_hello(ws: WebSocketConnection, codec: FrameCodec, device_id: str) -> None:
    """Send ``device.hello`` and wait for its ack.

    Raises:
        BadFrame: the relay answered with another frame (an error, a redirect).
    """
    hello = DeviceHello(bridge_version="0.1.0", device_id=device_id, tools=())
    for message in codec.encode([hello], validate=True):
        await ws.send_message(message)
    with trio.fail_after(CONNECT_TIMEOUT_S):
        (ack,) = codec.decode(await ws.get_message(), max_bytes=MAX_FRAME, validate=False)
    if not isinstance(ack, DeviceHelloAck):
        raise BadFrame(f"expected device.hello.ack, got {ack.TYPE}")


async def one_device(
    url: str,
    ctx: ssl.SSLContext,
    token: str,
    device_id: str,
    devices: Devices,
    ramp: trio.CapacityLimiter,
) -> None:
    """Connect (holding a ``ramp`` slot until the hello is acknowledged), then answer pings."""
    acked = False
    await ramp.acquire()
    try:
        async with open_relay_websocket(
            url,
            ctx,
            token=token,
            message_queue_size=1,
            max_message_size=MAX_FRAME,
            connect_timeout_s=CONNECT_TIMEOUT_S,
            # What a bridge offers; the relay's own frames are trusted, as a bridge does.
            subprotocols=OFFERED_SUBPROTOCOLS,
        ) as ws:
            codec = codec_for(ws.subprotocol)
            await say_hello(ws, codec, device_id)
            acked = True
            ramp.release()
            devices.acked += 1
            devices.connected += 1
            devices.tried()
            try:
                while True:
                    data = await ws.get_message()
                    for frame in codec.decode(data, max_bytes=MAX_FRAME, validate=False):
                        if isinstance(frame, Ping):
                            pong = Pong(nonce=frame.nonce, sent_at_ms=frame.sent_at_ms)
                            for message in codec.encode([pong]):
                                await ws.send_message(message)
            finally:
                devices.connected -= 1
    except (OSError, HandshakeError, ConnectionClosed, trio.TooSlowError, BadFrame) as exc:
        print(f"device {device_id}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    finally:
        if not acked:
            devices.failed += 1
            ramp.release()
            devices.tried()


async def main(args: argparse.Namespace) -> None:
    key = load_private_key(args.key)
    ctx = client_ssl_context(args.ca, alpn=ALPN_HTTP1)
    ramp = trio.CapacityLimiter(args.ramp)
    devices = Devices(args.count)
    stdin = trio.wrap_file(sys.stdin)
    async with trio.open_nursery() as nursery:
        for i in range(args.first, args.first + args.count):
            device_id = f"d{i}"
            token = mint(key, tenant=f"idle-{i % TENANTS}", device_id=device_id, ttl=3600)
            nursery.start_soon(one_device, args.url, ctx, token, device_id, devices, ramp)
        await devices.all_tried.wait()
        print(f"ready {devices.acked} {devices.failed}", flush=True)
        while await stdin.readline():
            print(f"connected {devices.connected}", flush=True)
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--ramp", type=int, default=DEFAULT_RAMP)
    trio.run(main, parser.parse_args())
