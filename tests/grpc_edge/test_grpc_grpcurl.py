"""grpcurl (a real, independent client) lists, describes and calls through reflection."""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
from edge_helpers import Probe, echo_service, make_certs, start_server

from supervisors.edges.grpc import GrpcServerConfig, GrpcServerHandle, HealthService
from tests._grpcurl import GRPCURL, grpcurl, parse_stream


@pytest.fixture
async def server() -> AsyncIterator[GrpcServerHandle]:
    async with trio.open_nursery() as nursery:
        handle = await start_server(nursery, [echo_service(Probe()), HealthService().service])
        yield handle
        nursery.cancel_scope.cancel()


class TestGrpcurl:
    """grpcurl list, describe and a streamed call work against the edge (reflection v1alpha)."""

    async def test_list(self, server: GrpcServerHandle) -> None:
        out = await grpcurl("-plaintext", f"127.0.0.1:{server.port}", "list")
        assert out.split() == [
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
            "zl.agent.v0.Agent",
        ]

    async def test_describe(self, server: GrpcServerHandle) -> None:
        address = f"127.0.0.1:{server.port}"
        service = await grpcurl("-plaintext", address, "describe", "zl.agent.v0.Agent")
        assert (
            "rpc StreamChat ( stream .zl.agent.v0.ChatRequest ) "
            "returns ( stream .zl.agent.v0.ChatEvent );" in service
        )
        message = await grpcurl("-plaintext", address, "describe", "zl.agent.v0.ChatEvent")
        assert ".zl.agent.v0.AssistantDelta assistant_delta = 21;" in message

    async def test_streamed_call(self, server: GrpcServerHandle) -> None:
        requests = '{"startSession": {"tenant": "t"}} {"userMessage": {"text": "hello"}}'
        out = await grpcurl(
            "-plaintext", "-d", requests, f"127.0.0.1:{server.port}", "zl.agent.v0.Agent/StreamChat"
        )
        events = parse_stream(out)
        # grpcurl prints the .proto field names.
        assert events[0]["session_started"] == {"session_id": "s-1"}
        assert events[1]["assistant_delta"] == {"text": "hello"}
        assert [e["seq"] for e in events] == ["1", "2"]

    async def test_health_check_over_tls(self, tmp_path: Path) -> None:
        certs = make_certs(tmp_path)
        async with trio.open_nursery() as nursery:
            handle = await start_server(
                nursery,
                [HealthService().service],
                config=GrpcServerConfig(),
                ssl_context=certs.server_context(),
            )
            out = await grpcurl(
                "-cacert", str(certs.ca), f"localhost:{handle.port}", "grpc.health.v1.Health/Check"
            )
            nursery.cancel_scope.cancel()
        assert json.loads(out) == {"status": "SERVING"}


def test_grpcurl_is_installed() -> None:
    completed = subprocess.run([str(GRPCURL), "-version"], capture_output=True, check=False)
    assert completed.returncode == 0
