"""Connections the relay refuses or replaces, and mutual TLS on the host endpoint.

Raw WebSocket peers (in this process, over real TLS sockets) stand in for bridges so the
tests can send what a correct bridge never would.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
from trio_websocket import ConnectionClosed, HandshakeError, WebSocketConnection

from actors.errors import ToolError
from actors.relay import (
    BINARY_SUBPROTOCOL,
    SUBPROTOCOL,
    DeviceHello,
    DeviceHelloAck,
    ErrorFrame,
    Ping,
    Pong,
    Shard,
    Tool,
    codec_for,
    decode_frame,
    mint_device_token,
    mint_host_token,
    shard_for,
)
from actors.relay._wire import (
    CLOSE_BAD_FRAME,
    CLOSE_REPLACED,
    CLOSE_TOO_BIG,
    CLOSE_UNAUTHENTICATED,
)
from actors.tools._relay_link import RelayToolLink
from supervisors.relay import ShardSection
from supervisors.tls import ALPN_HTTP1, client_ssl_context

from ._support import DEADLINE_S, MAX_BYTES, Env, dial, open_link, start_relay

TENANT = "acme"
#: Frames larger than this are refused by the relay under test.
SMALL_FRAME_BYTES = 8192
#: Both frame encodings a device may speak.
FRAMES = pytest.mark.parametrize(
    "frames", [SUBPROTOCOL, BINARY_SUBPROTOCOL], ids=["json-frames", "binary-frames"]
)
#: A message each encoding's decoder refuses outright (no call it could belong to).
MALFORMED = {SUBPROTOCOL: "[1, 2, 3]", BINARY_SUBPROTOCOL: b"\xff\xff\xff"}


def home(env: Env) -> ShardSection:
    shard = shard_for(TENANT, [Shard(shard_id=s.shard_id, url=s.url) for s in env.shards])
    return next(s for s in env.shards if s.shard_id == shard.shard_id)


def tool(name: str) -> Tool:
    return Tool(name=name, version="1.0.0", description=name, input_schema={"type": "object"})


async def closed_with(ws: WebSocketConnection) -> tuple[int, list[Any]]:
    """Read until the relay closes; the close code and the frames seen before it."""
    frames: list[Any] = []
    with trio.fail_after(DEADLINE_S):
        while True:
            try:
                frames.append(decode_frame(await ws.get_message(), max_bytes=MAX_BYTES))
            except ConnectionClosed as exc:
                reason = exc.reason
                break
    assert reason is not None
    return reason.code, frames


class Device:
    """A connected device that answers pings; ``code`` is set once the relay closes it."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self.codec = codec_for(ws.subprotocol)
        self.code: int | None = None
        self.closed = trio.Event()

    async def answer_pings(self) -> None:
        try:
            while True:
                data = await self.ws.get_message()
                for frame in self.codec.decode(data, max_bytes=MAX_BYTES):
                    if isinstance(frame, Ping):
                        pong = Pong(nonce=frame.nonce, sent_at_ms=frame.sent_at_ms)
                        for message in self.codec.encode([pong]):
                            await self.ws.send_message(message)
        except ConnectionClosed as exc:
            self.code = None if exc.reason is None else exc.reason.code
            self.closed.set()


@asynccontextmanager
async def device(
    env: Env, device_id: str, tools: tuple[Tool, ...] = (), *, frames: str = SUBPROTOCOL
) -> AsyncIterator[Device]:
    """A raw device speaking ``frames`` (the JSON or the binary subprotocol)."""
    token = env.device_token(TENANT, device_id)
    async with dial(env, home(env).url, token, subprotocols=(frames,)) as ws:
        assert ws.subprotocol == frames
        codec = codec_for(frames)
        hello = DeviceHello(bridge_version="0.0.1", device_id=device_id, tools=tools)
        (message,) = codec.encode([hello])
        await ws.send_message(message)
        with trio.fail_after(DEADLINE_S):
            (ack,) = codec.decode(await ws.get_message(), max_bytes=MAX_BYTES)
            assert isinstance(ack, DeviceHelloAck)
        peer = Device(ws)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(peer.answer_pings)
            yield peer
            nursery.cancel_scope.cancel()


async def catalog_names(link: RelayToolLink, device_id: str) -> set[str]:
    return {t.name for t in await link.catalog(tenant=TENANT, device_id=device_id)}


@pytest.fixture
async def relay(env: Env, nursery: trio.Nursery) -> ShardSection:
    shard = home(env)
    await start_relay(nursery, env.config(shard.shard_id, max_frame_bytes=SMALL_FRAME_BYTES))
    return shard


class TestRefused:
    """Bad tokens and bad frames close that connection with its code; the relay serves on."""

    @pytest.mark.parametrize(
        "make_token",
        [
            pytest.param(lambda env: "not-a-jwt", id="garbage"),
            pytest.param(
                lambda env: mint_device_token(
                    env.key, tenant=TENANT, device_id="d", ttl=60, now=time.time() - 3600
                ),
                id="expired",
            ),
            pytest.param(
                lambda env: mint_device_token(
                    env.key, tenant=TENANT, device_id="d", ttl=60, audience="another-service"
                ),
                id="wrong-audience",
            ),
            pytest.param(
                lambda env: mint_host_token(env.key, tenants=[TENANT], host_id="h", ttl=60),
                id="host-token-on-device-endpoint",
            ),
        ],
    )
    async def test_device_token_refused(
        self, env: Env, relay: ShardSection, make_token: Any
    ) -> None:
        async with device(env, "good") as good, open_link(env.link_settings(TENANT)) as link:
            async with dial(env, relay.url, make_token(env)) as ws:
                code, frames = await closed_with(ws)
            assert code == CLOSE_UNAUTHENTICATED
            assert [f.code for f in frames if isinstance(f, ErrorFrame)] == [
                "relay.unauthenticated"
            ]
            assert await catalog_names(link, "good") == set()
            assert not good.closed.is_set()

    async def test_host_token_refused(self, env: Env, relay: ShardSection) -> None:
        expired = mint_host_token(
            env.key, tenants=[TENANT], host_id="h", ttl=60, now=time.time() - 3600
        )
        async with dial(env, relay.host_url, expired) as ws:
            code, _ = await closed_with(ws)
        assert code == CLOSE_UNAUTHENTICATED

    async def test_no_token_refused(self, env: Env, relay: ShardSection) -> None:
        async with dial(env, relay.url, None) as ws:
            code, _ = await closed_with(ws)
        assert code == CLOSE_UNAUTHENTICATED

    @pytest.mark.parametrize(
        "first",
        [
            pytest.param("{not json", id="not-json"),
            pytest.param('{"type": "no.such.frame"}', id="unknown-type"),
            pytest.param('{"type": "device.hello", "device_id": 7}', id="invalid"),
            pytest.param('{"type": "ping", "nonce": "n", "sent_at_ms": 1}', id="not-hello"),
        ],
    )
    async def test_malformed_first_frame(self, env: Env, relay: ShardSection, first: str) -> None:
        async with device(env, "good") as good, open_link(env.link_settings(TENANT)) as link:
            async with dial(env, relay.url, env.device_token(TENANT, "bad")) as ws:
                await ws.send_message(first)
                code, _ = await closed_with(ws)
            assert code == CLOSE_BAD_FRAME
            assert await catalog_names(link, "good") == set()
            assert not good.closed.is_set()

    @FRAMES
    async def test_malformed_frame_after_hello(
        self, env: Env, relay: ShardSection, frames: str
    ) -> None:
        async with device(env, "good") as good, open_link(env.link_settings(TENANT)) as link:
            async with device(env, "bad", frames=frames) as bad:
                await bad.ws.send_message(MALFORMED[frames])
                with trio.fail_after(DEADLINE_S):
                    await bad.closed.wait()
                assert bad.code == CLOSE_BAD_FRAME
            assert await catalog_names(link, "good") == set()
            with pytest.raises(ToolError):
                await link.catalog(tenant=TENANT, device_id="bad")
            assert not good.closed.is_set()

    @FRAMES
    async def test_oversized_frame(self, env: Env, relay: ShardSection, frames: str) -> None:
        async with device(env, "good") as good, open_link(env.link_settings(TENANT)) as link:
            async with device(env, "big", frames=frames) as big:
                oversized = "x" * (SMALL_FRAME_BYTES * 2)
                await big.ws.send_message(
                    oversized.encode() if frames == BINARY_SUBPROTOCOL else oversized
                )
                with trio.fail_after(DEADLINE_S):
                    await big.closed.wait()
                assert big.code == CLOSE_TOO_BIG
            assert await catalog_names(link, "good") == set()
            assert not good.closed.is_set()

    async def test_malformed_frame_from_host(self, env: Env, relay: ShardSection) -> None:
        async with device(env, "good"), open_link(env.link_settings(TENANT)) as link:
            async with dial(env, relay.host_url, env.host_token(TENANT)) as ws:
                await ws.send_message("{not json")
                code, _ = await closed_with(ws)
            assert code == CLOSE_BAD_FRAME
            assert await catalog_names(link, "good") == set()


class TestReplacement:
    """A second connection with the same device id replaces the first (4409)."""

    async def test_second_connection_replaces_first(self, env: Env, relay: ShardSection) -> None:
        async with (
            open_link(env.link_settings(TENANT)) as link,
            device(env, "laptop", (tool("old.tool"),)) as first,
        ):
            assert await catalog_names(link, "laptop") == {"old.tool"}
            async with device(env, "laptop", (tool("new.tool"),)) as second:
                with trio.fail_after(DEADLINE_S):
                    await first.closed.wait()
                assert first.code == CLOSE_REPLACED
                assert await catalog_names(link, "laptop") == {"new.tool"}
                assert not second.closed.is_set()


class TestMutualTls:
    """With ``host_client_ca`` set, the host endpoint requires a client certificate."""

    @pytest.fixture
    async def mtls_relay(self, env: Env, nursery: trio.Nursery) -> ShardSection:
        shard = home(env)
        await start_relay(nursery, env.config(shard.shard_id, host_client_ca=env.ca))
        return shard

    async def test_host_without_client_cert_refused(
        self, env: Env, mtls_relay: ShardSection
    ) -> None:
        with (
            trio.fail_after(DEADLINE_S),
            pytest.raises((HandshakeError, ConnectionClosed, trio.BrokenResourceError, OSError)),
        ):
            async with dial(env, mtls_relay.host_url, env.host_token(TENANT)) as ws:
                await ws.get_message()

    async def test_host_with_client_cert_served(
        self, env: Env, mtls_relay: ShardSection, tmp_path: Path
    ) -> None:
        context = client_ssl_context(
            env.ca, client_cert=env.client_cert, client_key=env.client_key, alpn=ALPN_HTTP1
        )
        settings = env.link_settings(TENANT)

        async with (
            device(env, "laptop", (tool("fs.read"),)),
            open_link(attrs.evolve(settings, ssl_context=context)) as link,
        ):
            with trio.fail_after(DEADLINE_S):
                assert await catalog_names(link, "laptop") == {"fs.read"}


class TestHandshakeLoss:
    """A peer that leaves during the opening handshake ends only its own connection."""

    @pytest.mark.parametrize("offered", [["zl.relay.v1+proto"], ["chat"]], ids=["accept", "reject"])
    async def test_a_peer_gone_before_the_answer_is_not_an_error(
        self, env: Env, offered: list[str]
    ) -> None:
        from trio_websocket import CloseReason

        from supervisors.relay._gate import HandshakeGate, Ticket
        from supervisors.relay._relay import _Relay

        class GoneRequest:
            """Shaped like ``WebSocketRequest``: the peer closed before it was answered."""

            path = "/v1/device"
            proposed_subprotocols = offered

            async def accept(self, **_: object) -> None:
                raise ConnectionClosed(CloseReason(1006, None))

            async def reject(self, *_: object, **__: object) -> None:
                raise ConnectionClosed(CloseReason(1006, None))

        gate = HandshakeGate(max_pending=4, max_per_source=4, name="device")
        relay = _Relay(
            config=env.config("relay-1"),
            keys=[],
            router=None,  # type: ignore[arg-type]  # not reached
            devices=None,  # type: ignore[arg-type]
            hosts=None,  # type: ignore[arg-type]
            device_gate=gate,
            host_gate=gate,
            telemetry=None,  # type: ignore[arg-type]
            stats=None,  # type: ignore[arg-type]
        )
        ticket = Ticket(source="127.0.0.1")
        assert await relay._accept(GoneRequest(), "/v1/device", ticket) is None  # type: ignore[arg-type]
        assert ticket.ws is None
