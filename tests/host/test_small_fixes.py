"""Smaller things a new operator ran into: health by service name, the demo's certificate
lines, and ``zl chat --help`` showing its defaults."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import trio

from contracts.generated.grpc.health.v1 import health_pb2
from supervisors.demo import cert_lines
from supervisors.tls import generate_dev_certs

from .conftest import RunningHost, in_thread

REPO = Path(__file__).resolve().parents[2]


def check(channel: grpc.Channel, service: str) -> int:
    call = channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    status: int = call(health_pb2.HealthCheckRequest(service=service), timeout=10).status
    return status


class TestHealthByServiceName:
    """Every served service answers Check by name, as health-checking clients ask."""

    async def test_every_service(self, plaintext_host: RunningHost) -> None:
        with plaintext_host.channel() as channel, trio.fail_after(30):
            for service in ("", "zl.agent.v0.Agent", "grpc.health.v1.Health"):
                status = await in_thread(check, channel, service)
                assert status == health_pb2.HealthCheckResponse.SERVING, service


class TestDemoCertificates:
    """The demo says "made" for certificates it has just made, "kept" for reused ones."""

    def test_made_then_kept(self, tmp_path: Path) -> None:
        first = cert_lines(generate_dev_certs(tmp_path / "certs"))
        again = cert_lines(generate_dev_certs(tmp_path / "certs"))
        assert all(line.strip().startswith("made:") for line in first), first
        assert all(line.strip().startswith("kept:") for line in again), again


class TestChatHelp:
    """``zl chat --help`` shows each option's default."""

    def test_defaults_shown(self) -> None:
        out = subprocess.run(
            [sys.executable, "-m", "supervisors", "chat", "--help"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        assert "(default: localhost:50051)" in out
        assert "(default: .zl/certs/ca.pem)" in out
        assert "(default: 300.0)" in out
