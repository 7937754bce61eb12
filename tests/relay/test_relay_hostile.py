"""One hostile device must fail only its own call, never the host link other tenants share.

Raw devices (WebSocket peers in this process, over real TLS) send what a correct bridge
never would, in JSON frames and in binary ones; a real host link (``RelayToolLink``, binary
frames by default, or JSON) carries a call of another tenant at the same time, and must
neither lose it nor reconnect.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from actors.errors import ToolError
from actors.relay import (
    BINARY_SUBPROTOCOL,
    OFFERED_SUBPROTOCOLS,
    SUBPROTOCOL,
    DeviceHello,
    DeviceHelloAck,
    Ping,
    Pong,
    Tool,
    ToolCall,
    codec_for,
)
from actors.tools import ToolInvocation
from actors.tools._relay_link import RelayToolLink
from contracts.generated.relay.v1 import relay_pb2
from tests._policy import permissive_bundle

from ._support import DEADLINE_S, MAX_BYTES, Env, dial, make_env, open_link, start_relay

GOOD, EVIL = "acme", "evil-co"
#: The device link's frame limit in these tests.
FRAME_BYTES = 64 * 1024
#: The host link's: the relay's default headroom over the device link's.
HOST_FRAME_BYTES = FRAME_BYTES + 4096
FS_READ = Tool(name="fs.read", version="1.0.0", description="", input_schema={"type": "object"})

#: What a device answers: the JSON text of a call's ``result``, exactly as it sends it.
Answer = Callable[[ToolCall], str]


def result_message(call_id: str, result_json: str, subprotocol: str) -> str | bytes:
    """A tool.result written by hand, so that its JSON is exactly what a device sent: a JSON
    frame, or a binary batch whose ``result_json`` holds that text."""
    if subprotocol == BINARY_SUBPROTOCOL:
        batch = relay_pb2.FrameBatch()
        result = batch.frames.add().tool_result
        result.call_id = call_id
        result.result_json = result_json.encode()
        return batch.SerializeToString()
    return f'{{"type":"tool.result","call_id":"{call_id}","result":{result_json}}}'


def ok_result(call: ToolCall) -> str:
    return json.dumps({"structuredContent": {"content": "fine", "encoding": "utf-8"}})


def nested_result(call: ToolCall) -> str:
    depth = 500  # within what json.loads reads, far past what a walker should follow
    return '{"structuredContent":{"x":' + "[" * depth + "]" * depth + "}}"


def growing_result(call: ToolCall) -> str:
    # "1e9" is 3 characters; re-encoded it is "1000000000.0", four times longer.
    numbers = ",".join(["1e9"] * ((FRAME_BYTES - 200) // 4))
    return '{"structuredContent":{"n":[' + numbers + "]}}"


def huge_int_result(call: ToolCall) -> str:
    return '{"structuredContent":{"n":9007199254740993}}'


@asynccontextmanager
async def raw_device(
    env: Env,
    url: str,
    tenant: str,
    device_id: str,
    answer: Answer,
    *,
    gate: trio.Event | None = None,
    subprotocol: str = SUBPROTOCOL,
) -> AsyncIterator[WebSocketConnection]:
    """A device that answers every call with ``answer`` (after ``gate`` is set, if given),
    speaking ``subprotocol``."""
    offered = OFFERED_SUBPROTOCOLS if subprotocol == BINARY_SUBPROTOCOL else (SUBPROTOCOL,)
    async with dial(env, url, env.device_token(tenant, device_id), subprotocols=offered) as ws:
        assert ws.subprotocol == subprotocol
        codec = codec_for(ws.subprotocol)
        hello = DeviceHello(bridge_version="0.0.1", device_id=device_id, tools=(FS_READ,))
        (message,) = codec.encode([hello])
        await ws.send_message(message)
        with trio.fail_after(DEADLINE_S):
            (ack,) = codec.decode(await ws.get_message(), max_bytes=MAX_BYTES)
            assert isinstance(ack, DeviceHelloAck)

        async def serve() -> None:
            async with trio.open_nursery() as calls:
                while True:
                    try:
                        data = await ws.get_message()
                    except ConnectionClosed:
                        return
                    for frame in codec.decode(data, max_bytes=MAX_BYTES):
                        if isinstance(frame, Ping):
                            pong = Pong(nonce=frame.nonce, sent_at_ms=frame.sent_at_ms)
                            for message in codec.encode([pong]):
                                await ws.send_message(message)
                        elif isinstance(frame, ToolCall):
                            calls.start_soon(reply, frame)

        async def reply(frame: ToolCall) -> None:
            if gate is not None:
                await gate.wait()
            await ws.send_message(result_message(frame.call_id, answer(frame), subprotocol))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            yield ws
            nursery.cancel_scope.cancel()


def invocation(tenant: str, device_id: str) -> ToolInvocation:
    return ToolInvocation(
        call_id=f"c-{uuid.uuid4().hex[:12]}",
        tenant=tenant,
        device_id=device_id,
        tool="fs.read",
        version="1.0.0",
        arguments={"path": "a.txt"},
        timeout_s=20.0,
        max_bytes=4096,
        policy=permissive_bundle(tenant),
    )


async def wait_online(link: RelayToolLink, tenant: str, device_id: str) -> None:
    with trio.fail_after(DEADLINE_S):
        while True:
            try:
                await link.catalog(tenant=tenant, device_id=device_id)
                return
            except ToolError:
                await trio.sleep(0.05)


@pytest.fixture
def one_shard(tmp_path: Path) -> Env:
    # One shard, so both tenants share the host's one connection to it.
    return make_env(tmp_path, n_shards=1)


@pytest.fixture
async def shard_url(one_shard: Env, nursery: trio.Nursery) -> str:
    config = one_shard.config("relay-1", max_frame_bytes=FRAME_BYTES)
    await start_relay(nursery, config)
    return one_shard.shards[0].url


class TestOneDeviceCannotHarmAnother:
    """A bad result fails its own call with relay.bad_frame; another tenant's call goes on,
    whichever frames the devices and the host link speak."""

    @pytest.mark.parametrize(
        ("device_frames", "host_binary"),
        [
            pytest.param(SUBPROTOCOL, True, id="json-devices-binary-host"),
            pytest.param(BINARY_SUBPROTOCOL, True, id="binary-devices-binary-host"),
            pytest.param(BINARY_SUBPROTOCOL, False, id="binary-devices-json-host"),
        ],
    )
    @pytest.mark.parametrize(
        "evil_answer",
        [
            pytest.param(nested_result, id="nested-500-deep"),
            pytest.param(growing_result, id="grows-when-re-encoded"),
            pytest.param(huge_int_result, id="integer-past-2**53"),
        ],
    )
    async def test_bad_result_fails_only_its_call(
        self,
        one_shard: Env,
        shard_url: str,
        evil_answer: Answer,
        device_frames: str,
        host_binary: bool,
    ) -> None:
        env = one_shard
        # The host accepts what the relay may send on the host link, and no more.
        settings = attrs.evolve(
            env.link_settings(GOOD, EVIL),
            max_frame_bytes=HOST_FRAME_BYTES,
            binary_frames=host_binary,
        )
        release_good = trio.Event()
        async with (
            raw_device(
                env,
                shard_url,
                GOOD,
                "good-1",
                ok_result,
                gate=release_good,
                subprotocol=device_frames,
            ),
            raw_device(env, shard_url, EVIL, "evil-1", evil_answer, subprotocol=device_frames),
            open_link(settings) as link,
        ):
            await wait_online(link, GOOD, "good-1")
            await wait_online(link, EVIL, "evil-1")
            results: dict[str, Any] = {}

            async def good_call() -> None:
                results["good"] = await link.invoke(invocation(GOOD, "good-1"))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(good_call)
                with trio.fail_after(DEADLINE_S), pytest.raises(ToolError) as caught:
                    await link.invoke(invocation(EVIL, "evil-1"))
                assert caught.value.code == "relay.bad_frame"
                release_good.set()
            # It was in flight on the same connection: had that closed, it would have failed.
            assert results["good"].structured == {"content": "fine", "encoding": "utf-8"}
