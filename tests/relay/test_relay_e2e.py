"""Host link → relay shard → bridge subprocess → MCP server, over real TLS sockets."""

from __future__ import annotations

import logging
import os
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from actors.errors import ToolError
from actors.relay import Shard, shard_for
from actors.tools import ToolInvocation
from actors.tools._relay_link import RelayLinkSettings, RelayToolLink
from tests._policy import permissive_bundle

from ._support import DEADLINE_S, HEARTBEAT_S, LEGACY_SERVER, Bridge, Env, open_link, start_relay

TENANT = "acme"


def owner(env: Env, tenant: str = TENANT) -> Any:
    shard = shard_for(tenant, [Shard(shard_id=s.shard_id, url=s.url) for s in env.shards])
    return next(s for s in env.shards if s.shard_id == shard.shard_id)


def not_owner(env: Env, tenant: str = TENANT) -> Any:
    return next(s for s in env.shards if s.shard_id != owner(env, tenant).shard_id)


def call(
    tool: str,
    args: dict[str, Any],
    device: str = "laptop-1",
    timeout_s: float = 5.0,
    tenant: str = TENANT,
) -> ToolInvocation:
    return ToolInvocation(
        call_id=f"c-{uuid.uuid4().hex[:12]}",
        tenant=tenant,
        device_id=device,
        tool=tool,
        version="1.0.0",
        arguments=args,
        timeout_s=timeout_s,
        max_bytes=65536,
        policy=permissive_bundle(tenant),
    )


async def wait_online(link: RelayToolLink, device: str = "laptop-1", tenant: str = TENANT) -> None:
    with trio.fail_after(DEADLINE_S):
        while True:
            try:
                await link.catalog(tenant=tenant, device_id=device)
                return
            except ToolError:
                await trio.sleep(0.05)


async def wait_for_log(path: Path, needle: str) -> None:
    with trio.fail_after(DEADLINE_S):
        while not (path.exists() and needle in path.read_text()):
            await trio.sleep(0.05)


#: The bridge's and the host link's frames: binary (the default of both) or JSON.
FRAMES = pytest.mark.parametrize("binary", [True, False], ids=["binary-frames", "json-frames"])


def framed(env: Env, binary: bool, *tenants: str) -> RelayLinkSettings:
    """The host link's settings, speaking binary frames or JSON only."""
    return attrs.evolve(env.link_settings(*tenants), binary_frames=binary)


def json_flag(binary: bool) -> tuple[str, ...]:
    """The bridge's flag for JSON frames only."""
    return () if binary else ("--json-frames",)


class TestEndToEnd:
    """fs.read goes through three-shard relays and a bridge; redirects are followed."""

    @FRAMES
    async def test_fs_read_through_relay_and_bridge(
        self,
        env: Env,
        relays: object,
        bridges: list[Bridge],
        root: Path,
        caplog: pytest.LogCaptureFixture,
        binary: bool,
    ) -> None:
        caplog.set_level(logging.INFO, logger="zl.tools.relay")
        # The bridge dials a shard that does not own its tenant: it must follow the redirect.
        bridge = Bridge(
            env, not_owner(env).url, TENANT, "laptop-1", root=root, extra=json_flag(binary)
        )
        bridges.append(bridge)
        async with open_link(framed(env, binary, TENANT)) as link:
            await wait_online(link)
            frames = "binary frames" if binary else "JSON frames"
            assert any(r.getMessage().endswith(f"connected ({frames})") for r in caplog.records), (
                "the host link negotiated the other encoding"
            )
            await wait_for_log(bridge.log, f"as laptop-1 ({frames})")
            tools = await link.catalog(tenant=TENANT, device_id="laptop-1")
            assert [t.name for t in tools] == ["fs.read"]
            assert tools[0].version == "1.0.0"
            output = await link.invoke(call("fs.read", {"path": "hello.txt"}))
            assert not output.is_error
            assert output.structured is not None
            assert output.structured["content"] == "hello from the device\n"
            with trio.fail_after(DEADLINE_S):
                while (
                    rtt := await link.host_to_device_rtt_ms(tenant=TENANT, device_id="laptop-1")
                ) is None:
                    await trio.sleep(HEARTBEAT_S / 2)
            assert rtt >= 0

    async def test_host_follows_redirect(
        self, env: Env, relays: object, bridges: list[Bridge], root: Path
    ) -> None:
        bridges.append(Bridge(env, owner(env).url, TENANT, "laptop-1", root=root))
        # The host knows only a shard that does not own the tenant.
        async with open_link(env.link_settings(TENANT, shards=[not_owner(env)])) as link:
            await wait_online(link)
            output = await link.invoke(call("fs.read", {"path": "hello.txt"}))
            assert output.structured is not None
            assert link.overrides[TENANT] == owner(env).host_url


class TestFaults:
    """Typed errors at once for offline devices, missing tools, other tenants; dead bridges."""

    async def test_device_offline(self, env: Env, relays: object) -> None:
        async with open_link(env.link_settings(TENANT)) as link:
            with trio.fail_after(DEADLINE_S), pytest.raises(ToolError) as caught:
                await link.invoke(call("fs.read", {"path": "hello.txt"}, device="nobody"))
            assert caught.value.code == "relay.device_offline"

    async def test_tool_not_on_device(
        self, env: Env, relays: object, bridges: list[Bridge], root: Path
    ) -> None:
        bridges.append(Bridge(env, owner(env).url, TENANT, "laptop-1", root=root))
        async with open_link(env.link_settings(TENANT)) as link:
            await wait_online(link)
            with trio.fail_after(DEADLINE_S), pytest.raises(ToolError) as caught:
                await link.invoke(call("shell.exec", {"cmd": "id"}))
            assert caught.value.code == "tool.not_found"

    async def test_host_token_for_another_tenant(
        self, env: Env, relays: object, bridges: list[Bridge], root: Path
    ) -> None:
        bridges.append(Bridge(env, owner(env).url, TENANT, "laptop-1", root=root))
        async with open_link(env.link_settings(TENANT)) as link:
            await wait_online(link)
        # A host of tenant "globex" asks for acme's device, on acme's own shard.
        async with open_link(env.link_settings("globex", shards=[owner(env)])) as intruder:
            with trio.fail_after(DEADLINE_S), pytest.raises(ToolError) as caught:
                await intruder.invoke(call("fs.read", {"path": "hello.txt"}))
            assert caught.value.code == "relay.forbidden"
            with trio.fail_after(DEADLINE_S), pytest.raises(ToolError) as caught:
                await intruder.catalog(tenant=TENANT, device_id="laptop-1")
            assert caught.value.code == "relay.forbidden"

    async def test_bridge_killed_mid_call(
        self, env: Env, relays: object, bridges: list[Bridge], tmp_path: Path
    ) -> None:
        log = tmp_path / "server.jsonl"
        bridge = Bridge(
            env,
            owner(env).url,
            TENANT,
            "laptop-1",
            sys.executable,
            str(LEGACY_SERVER),
            "--log",
            str(log),
        )
        bridges.append(bridge)
        async with open_link(env.link_settings(TENANT)) as link:
            await wait_online(link)
            async with trio.open_nursery() as nursery:
                outcome: list[BaseException] = []

                async def slow_call() -> None:
                    try:
                        await link.invoke(call("sleep", {"seconds": 30}, timeout_s=30))
                    except ToolError as exc:
                        outcome.append(exc)

                nursery.start_soon(slow_call)
                await wait_for_log(log, '"sleep"')
                killed_at = trio.current_time()
                os.kill(bridge.process.pid, signal.SIGKILL)
            failed_after = trio.current_time() - killed_at
            assert isinstance(outcome[0], ToolError)
            assert outcome[0].code == "relay.device_offline"
            # The bound: within one heartbeat interval (plus scheduling slack).
            assert failed_after < HEARTBEAT_S + 0.5

    async def test_mcp_server_hangs_timeout_and_cancel_reach_it(
        self, env: Env, relays: object, bridges: list[Bridge], tmp_path: Path
    ) -> None:
        log = tmp_path / "server.jsonl"
        bridges.append(
            Bridge(
                env,
                owner(env).url,
                TENANT,
                "laptop-1",
                sys.executable,
                str(LEGACY_SERVER),
                "--log",
                str(log),
            )
        )
        async with open_link(env.link_settings(TENANT)) as link:
            await wait_online(link)
            with trio.fail_after(DEADLINE_S), pytest.raises(ToolError) as caught:
                await link.invoke(call("sleep", {"seconds": 30}, timeout_s=0.5))
            assert caught.value.code == "tool.timeout"
            await wait_for_log(log, "notifications/cancelled")
            # A cancel by the host (the turn was cancelled) reaches the MCP server too.
            before = log.read_text().count("notifications/cancelled")
            with trio.move_on_after(0.5):
                await link.invoke(call("sleep", {"seconds": 30}, timeout_s=30))
            with trio.fail_after(DEADLINE_S):
                while log.read_text().count("notifications/cancelled") <= before:
                    await trio.sleep(0.05)

    async def test_overloaded_device_queue(
        self, env: Env, nursery: trio.Nursery, bridges: list[Bridge], tmp_path: Path
    ) -> None:
        for shard in env.shards:
            await start_relay(nursery, env.config(shard.shard_id, max_in_flight=1))
        bridges.append(
            Bridge(env, owner(env).url, TENANT, "laptop-1", sys.executable, str(LEGACY_SERVER))
        )
        async with open_link(env.link_settings(TENANT)) as link:
            await wait_online(link)
            errors: list[str] = []
            async with trio.open_nursery() as inner:

                async def one() -> None:
                    try:
                        await link.invoke(call("sleep", {"seconds": 1}, timeout_s=5))
                    except ToolError as exc:
                        errors.append(exc.code)

                for _ in range(3):
                    inner.start_soon(one)
            assert errors.count("relay.overloaded") == 2
        nursery.cancel_scope.cancel()

    async def test_relay_restart_bridge_and_host_reconnect(
        self, env: Env, nursery: trio.Nursery, bridges: list[Bridge], root: Path
    ) -> None:
        scopes = {}
        for shard in env.shards:
            _, scopes[shard.shard_id] = await start_relay(nursery, env.config(shard.shard_id))
        home = owner(env)
        bridges.append(Bridge(env, home.url, TENANT, "laptop-1", root=root))
        async with open_link(env.link_settings(TENANT)) as link:
            await wait_online(link)
            assert (await link.invoke(call("fs.read", {"path": "hello.txt"}))).structured
            scopes[home.shard_id].cancel()
            await trio.sleep(0.3)
            with pytest.raises(ToolError):
                await link.invoke(call("fs.read", {"path": "hello.txt"}, timeout_s=0.3))
            await start_relay(nursery, env.config(home.shard_id))
            await wait_online(link)
            output = await link.invoke(call("fs.read", {"path": "hello.txt"}))
            assert output.structured is not None
        nursery.cancel_scope.cancel()
