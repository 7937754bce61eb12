"""``zl health``: the probe the images' HEALTHCHECK and the Kubernetes probes run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import attrs
import trio

from supervisors.host import DebugSection
from tests.host.conftest import host_config, start_host
from tests.relay._support import make_env, start_relay

from .conftest import BIN


def zl_health(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "zl"), "health", *args], capture_output=True, text=True, timeout=60
    )


async def probe(*args: str) -> subprocess.CompletedProcess[str]:
    return await trio.to_thread.run_sync(lambda: zl_health(*args))


class TestHealthProbe:
    """Healthy, unhealthy and refused, against real servers on loopback."""

    async def test_host_over_tls_from_its_ready_file(
        self, tmp_path: Path, nursery: trio.Nursery
    ) -> None:
        host = await start_host(nursery, host_config(tmp_path, tls=True))
        ready = tmp_path / "ready.json"
        ready.write_text(json.dumps(attrs.asdict(host.addresses)))
        port = host.addresses.grpc_port
        assert host.addresses.ca_cert is not None
        plain = await probe("ready", str(ready))
        verified = await probe("grpc", f"127.0.0.1:{port}", "--ca", host.addresses.ca_cert)
        wrong_name = await probe(
            "grpc", f"127.0.0.1:{port}", "--ca", host.addresses.ca_cert, "--server-name", "other"
        )
        no_tls = await probe("grpc", f"127.0.0.1:{port}", "--plaintext")
        host.shutdown.set()
        assert plain.returncode == 0, plain.stderr
        assert plain.stdout.strip() == f"zl health: healthy: gRPC 127.0.0.1:{port}: SERVING"
        assert verified.returncode == 0, verified.stderr
        assert wrong_name.returncode == 1
        assert "CERTIFICATE_VERIFY_FAILED" in wrong_name.stderr
        assert no_tls.returncode == 1

    async def test_plaintext_host(self, tmp_path: Path, nursery: trio.Nursery) -> None:
        host = await start_host(nursery, host_config(tmp_path, tls=False))
        result = await probe("grpc", f"127.0.0.1:{host.addresses.grpc_port}", "--plaintext")
        host.shutdown.set()
        assert result.returncode == 0, result.stderr
        assert result.stdout.rstrip().endswith("SERVING")

    async def test_relay_debug_health_from_its_ready_file(
        self, tmp_path: Path, nursery: trio.Nursery
    ) -> None:
        env = make_env(tmp_path, n_shards=1)
        config = attrs.evolve(
            env.config(env.shards[0].shard_id), debug=DebugSection(port=0).to_edge_config()
        )
        addresses, scope = await start_relay(nursery, config)
        ready = tmp_path / "relay.json"
        ready.write_text(json.dumps(attrs.asdict(addresses)))
        result = await probe("ready", str(ready))
        scope.cancel()
        assert result.returncode == 0, result.stderr
        assert (
            result.stdout.strip()
            == f"zl health: healthy: {addresses.debug_url}/debug/health: HTTP 200"
        )

    async def test_not_ready_yet_and_waiting(self, tmp_path: Path) -> None:
        result = await probe("ready", str(tmp_path / "missing.json"), "--wait", "0.5")
        assert result.returncode == 1
        assert result.stderr.strip().endswith("missing.json does not exist yet (not serving)")
        assert result.stdout == ""

    def test_refuses_an_unverified_remote_target(self) -> None:
        result = zl_health("grpc", "example.invalid:50051")
        assert result.returncode == 2
        assert "--ca is required to probe example.invalid" in result.stderr

    def test_nobody_listening(self) -> None:
        # Port 1 on loopback: nothing listens there, the connection is refused at once.
        result = zl_health("http", "http://127.0.0.1:1/debug/health")
        assert result.returncode == 1
        assert result.stderr.startswith("zl health: unhealthy: cannot reach")
        assert "Traceback" not in result.stderr

    async def test_a_url_in_the_ready_file_is_probed_at_v1_health(
        self, tmp_path: Path, nursery: trio.Nursery
    ) -> None:
        # A BFF writes {"url": ...}; any HTTP server shows the probe asks its /v1/health.
        env = make_env(tmp_path, n_shards=1)
        config = attrs.evolve(
            env.config(env.shards[0].shard_id), debug=DebugSection(port=0).to_edge_config()
        )
        addresses, scope = await start_relay(nursery, config)
        ready = tmp_path / "bff.json"
        ready.write_text(json.dumps({"url": addresses.debug_url, "port": 0}))
        result = await probe("ready", str(ready))
        scope.cancel()
        assert result.returncode == 1
        assert (
            result.stdout.strip()
            == f"zl health: unhealthy: {addresses.debug_url}/v1/health: HTTP 404"
        )
