"""The host reports ``host_to_device_rtt_ms`` from tool calls that go through the relay:
a StreamChat turn calls fs.read host → relay → bridge → MCP server over real TLS sockets and
real subprocesses, and the histogram reaches an in-memory OpenTelemetry reader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import trio
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from actors.provider import ScriptedMockProvider
from actors.telemetry import Telemetry, TelemetryConfig
from supervisors.host import HostAddresses, run_host
from tests._policy import bearer, caller_token, with_metadata
from tests.host.conftest import Conversation, in_thread, kind, say
from tests.relay._support import HEARTBEAT_S, Bridge, make_env, start_relay

from ._support import DEVICE, TENANT, device_root, relay_host_config, start_for, turn_finished

METRIC = "host_to_device_rtt_ms"
#: Tool turns after the first one that may pass before the relay has pinged the device.
MAX_EXTRA_TURNS = 10


def rtt_points(reader: InMemoryMetricReader) -> list[Any]:
    data = reader.get_metrics_data()
    return [
        point
        for resource in (data.resource_metrics if data else ())
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == METRIC
        for point in metric.data.data_points
    ]


def called_a_tool(events: list[Any]) -> bool:
    return any(kind(e) == "tool_call_started" for e in events)


class TestRttMetricThroughTheRelay:
    """A tool call through the relay records the host↔device round trip."""

    async def test_tool_turn_records_host_to_device_rtt(self, tmp_path: Path) -> None:
        env = make_env(tmp_path)
        root = device_root(tmp_path)
        config = relay_host_config(env, tmp_path)
        reader = InMemoryMetricReader()
        telemetry = Telemetry.from_config(
            TelemetryConfig(service_name="zl-rtt-test"), metric_readers=[reader]
        )
        points: list[Any] = []
        try:
            async with trio.open_nursery() as nursery:
                scopes = [
                    (await start_relay(nursery, env.config(s.shard_id)))[1] for s in env.shards
                ]
                bridge = Bridge(env, env.shards[0].url, TENANT, DEVICE, root=root)
                try:
                    shutdown = trio.Event()
                    addresses: HostAddresses = await nursery.start(
                        lambda task_status: run_host(
                            config,
                            shutdown=shutdown,
                            provider=ScriptedMockProvider(
                                config.provider.mock.to_provider_config()
                            ),
                            telemetry=telemetry,
                            task_status=task_status,
                        )
                    )
                    points = await self.chat_until_recorded(addresses, reader)
                    shutdown.set()
                finally:
                    bridge.stop()
                    for scope in scopes:
                        scope.cancel()
        finally:
            await telemetry.aclose()
        assert points, f"no {METRIC} after {MAX_EXTRA_TURNS} tool turns through the relay"
        assert sum(point.count for point in points) >= 1
        assert all(point.min > 0 for point in points)

    async def chat_until_recorded(
        self, addresses: HostAddresses, reader: InMemoryMetricReader
    ) -> list[Any]:
        """Tool turns until the histogram has a point (or ``MAX_EXTRA_TURNS`` more turns)."""
        assert addresses.ca_cert is not None
        creds = grpc.ssl_channel_credentials(Path(addresses.ca_cert).read_bytes())
        channel = with_metadata(
            grpc.secure_channel(f"localhost:{addresses.grpc_port}", creds), bearer(caller_token())
        )
        with channel:
            talk = Conversation(channel)
            talk.send(start_for(DEVICE))
            await in_thread(talk.next_event)
            with trio.fail_after(30):
                # Until the bridge has announced itself, the device offers no tools.
                while not called_a_tool(await self.turn(talk)):
                    await trio.sleep(0.2)
            # The relay pings the device once a heartbeat: the first calls may beat it.
            for _ in range(MAX_EXTRA_TURNS):
                if rtt_points(reader):
                    break
                await trio.sleep(HEARTBEAT_S)
                assert called_a_tool(await self.turn(talk))
            talk.close()
            await in_thread(talk.rest)
        return rtt_points(reader)

    async def turn(self, talk: Conversation) -> list[Any]:
        talk.send(say("read notes.txt"))
        events: list[Any] = await in_thread(talk.until, turn_finished)
        return events
