"""Idle devices for ``bench.bridge``: many WSS clients in one process speaking the real protocol.

``python -m bench._relay_support --url URL --ca CA --key PRIVATE.pem --count N``: opens N
device connections (a device token each, ``device.hello``, pongs to every ping), prints
``ready N`` once all are acknowledged, then idles until stdin closes.
"""

from __future__ import annotations

import argparse
import sys

import trio
from trio_websocket import open_websocket_url

from actors.relay import (
    SUBPROTOCOL,
    DeviceHello,
    Ping,
    Pong,
    decode_frame,
    encode_frame,
    load_private_key,
    mint_device_token,
)
from supervisors.tls import ALPN_HTTP1, client_ssl_context

MAX_FRAME = 64 * 1024
CONNECT_CONCURRENCY = 64


async def one_device(
    url: str, ctx: object, token: str, device_id: str, ready: trio.MemorySendChannel[int]
) -> None:
    headers = [(b"authorization", f"Bearer {token}".encode())]
    async with open_websocket_url(
        url,
        ctx,
        subprotocols=[SUBPROTOCOL],
        extra_headers=headers,
        message_queue_size=1,
        connect_timeout=60,
    ) as ws:  # type: ignore[arg-type]
        await ws.send_message(
            encode_frame(DeviceHello(bridge_version="0.1.0", device_id=device_id, tools=()))
        )
        decode_frame(await ws.get_message(), max_bytes=MAX_FRAME)
        await ready.send(1)
        while True:
            frame = decode_frame(await ws.get_message(), max_bytes=MAX_FRAME)
            if isinstance(frame, Ping):
                await ws.send_message(
                    encode_frame(Pong(nonce=frame.nonce, sent_at_ms=frame.sent_at_ms))
                )


async def main(args: argparse.Namespace) -> None:
    key = load_private_key(args.key)
    ctx = client_ssl_context(args.ca, alpn=ALPN_HTTP1)
    send, receive = trio.open_memory_channel[int](args.count)
    limiter = trio.CapacityLimiter(CONNECT_CONCURRENCY)
    async with trio.open_nursery() as nursery:

        async def start(i: int) -> None:
            tenant = f"idle-{i % 50}"
            token = mint_device_token(key, tenant=tenant, device_id=f"d{i}", ttl=3600)
            try:
                async with limiter:
                    pass
                await one_device(args.url, ctx, token, f"d{i}", send)
            except Exception as exc:
                print(f"device d{i}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)

        for i in range(args.count):
            nursery.start_soon(start, i)
            if i % CONNECT_CONCURRENCY == 0:
                await trio.sleep(0.01)
        for _ in range(args.count):
            await receive.receive()
        print(f"ready {args.count}", flush=True)
        await trio.wrap_file(sys.stdin).read()
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--count", type=int, required=True)
    trio.run(main, parser.parse_args())
