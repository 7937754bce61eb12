"""Half-open connections cannot keep devices out: pending handshakes are capped per source
and in all, the descriptor limit is raised where the OS allows, and a reserve is kept.

The relay runs as its own process (``zl relay``) under a low descriptor limit it cannot
raise; an attacker on another loopback address holds hundreds of idle TCP connections to
it, reopening any that close; a legitimate device must still connect.
"""

from __future__ import annotations

import contextlib
import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from actors.relay import DeviceHello, DeviceHelloAck, decode_frame, encode_frame
from supervisors._process import raise_fd_limit
from supervisors.relay._gate import FD_RESERVE, HandshakeGate, plan_descriptors

from ._support import MAX_BYTES, REPO, Env, dial, make_env

#: The relay's descriptor limit in this test (soft and hard: it cannot raise it).
RELAY_FDS = 256
#: Idle connections the attacker holds: more than the relay has descriptors.
ATTACK_CONNECTIONS = 320
ATTACKER = "127.0.0.2"  # loopback too, but another source address than the device's


def relay_toml(env: Env, tmp: Path) -> Path:
    path = tmp / "relay.toml"
    path.write_text(
        f"""
shard_id = "relay-1"
public_keys = [{json.dumps(str(env.public_key))}]

[[shards]]
shard_id = "relay-1"
url = "wss://127.0.0.1:1/v1/device"
host_url = "wss://127.0.0.1:1/v1/host"

[devices]
host = "127.0.0.1"
port = 0
[hosts]
host = "127.0.0.1"
port = 0
[tls]
cert = {json.dumps(str(env.cert))}
key = {json.dumps(str(env.cert_key))}
"""
    )
    return path


def low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (RELAY_FDS, RELAY_FDS))


async def hold_connections(port: int, count: int, opened: list[int]) -> None:
    """Keep ``count`` idle connections open from ATTACKER, reopening each one that closes."""

    async def one() -> None:
        while True:
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", port, local_address=ATTACKER)
            except OSError:
                await trio.sleep(0.05)
                continue
            opened[0] += 1
            async with stream:
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await stream.receive_some(1)  # sends nothing; returns once it is closed

    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(one)


class TestGate:
    """The gate's rules, without sockets."""

    async def test_per_source_cap_refuses(self) -> None:
        gate = HandshakeGate(max_pending=100, max_per_source=2, name="device")
        assert gate.admit("a") is not None
        assert gate.admit("a") is not None
        assert gate.admit("a") is None
        assert gate.admit("b") is not None

    async def test_total_cap_evicts_the_oldest(self) -> None:
        gate = HandshakeGate(max_pending=2, max_per_source=10, name="device")
        first, second = gate.admit("a"), gate.admit("b")
        assert first is not None
        assert second is not None
        assert gate.admit("c") is not None
        assert first.scope.cancel_called
        assert not first.pending
        assert gate.pending == 2

    async def test_settled_tickets_do_not_count(self) -> None:
        gate = HandshakeGate(max_pending=1, max_per_source=1, name="device")
        ticket = gate.admit("a")
        assert ticket is not None
        gate.settle(ticket)
        gate.settle(ticket)  # idempotent
        assert gate.admit("a") is not None
        assert not ticket.scope.cancel_called

    def test_plan_fits_the_limit(self) -> None:
        plan = plan_descriptors(256, max_pending=512, max_devices=20_000, max_hosts=256)
        assert 2 * plan.max_pending + plan.max_devices + plan.max_hosts <= 256 - FD_RESERVE
        roomy = plan_descriptors(1 << 20, max_pending=512, max_devices=20_000, max_hosts=256)
        assert (roomy.max_pending, roomy.max_devices, roomy.max_hosts) == (512, 20_000, 256)

    def test_raise_fd_limit(self) -> None:
        # In a process that starts with a low soft limit (1024 on most hosts; 64 here), so
        # that the raise shows whatever limits the test itself runs under.
        code = (
            "import resource\n"
            "from supervisors._process import raise_fd_limit\n"
            "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
            "resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 64), hard))\n"
            "print(*raise_fd_limit(), *resource.getrlimit(resource.RLIMIT_NOFILE))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
        )
        told_soft, told_hard, soft, hard = map(int, result.stdout.split())
        assert (told_soft, told_hard) == (soft, hard)
        if hard == resource.RLIM_INFINITY:
            assert soft >= 1 << 20
        else:
            assert soft == hard
        assert raise_fd_limit() == resource.getrlimit(resource.RLIMIT_NOFILE)


class TestHalfOpenFlood:
    """Hundreds of idle connections from one address: a device from another still gets in."""

    async def test_device_connects_during_the_flood(self, tmp_path: Path) -> None:
        env = make_env(tmp_path, n_shards=1)
        ready = tmp_path / "ready.json"
        log = tmp_path / "relay.log"
        argv = [sys.executable, "-m", "supervisors", "relay", "--ready-file", str(ready)]
        with log.open("w") as stderr:
            relay = subprocess.Popen(
                [*argv, "--config", str(relay_toml(env, tmp_path))],
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                preexec_fn=low_fd_limit,
            )
        try:
            with trio.fail_after(30):
                while not ready.exists() or not ready.read_text():
                    assert relay.poll() is None, log.read_text()
                    await trio.sleep(0.05)
            device_url = json.loads(ready.read_text())["device_url"]
            port = int(device_url.rsplit(":", 1)[1].split("/")[0])
            opened = [0]
            async with trio.open_nursery() as nursery:
                nursery.start_soon(hold_connections, port, ATTACK_CONNECTIONS, opened)
                with trio.fail_after(30):
                    while opened[0] < ATTACK_CONNECTIONS:
                        await trio.sleep(0.05)
                # Well inside the relay's 10 s handshake timeout, which would otherwise be
                # the only thing that frees a descriptor.
                with trio.fail_after(8):
                    token = env.device_token("acme", "laptop-1")
                    async with dial(env, device_url, token) as ws:
                        hello = DeviceHello(bridge_version="0.0.1", device_id="laptop-1", tools=())
                        await ws.send_message(encode_frame(hello))
                        ack = decode_frame(await ws.get_message(), max_bytes=MAX_BYTES)
                assert isinstance(ack, DeviceHelloAck)
                nursery.cancel_scope.cancel()
            assert "refused a connection from 127.0.0.2" in log.read_text()
        finally:
            relay.terminate()
            try:
                relay.wait(timeout=10)
            except subprocess.TimeoutExpired:
                relay.kill()
                relay.wait()


@pytest.fixture(autouse=True)
def _enough_descriptors_here() -> None:
    # This process holds the attacker's connections: it needs more than the relay has.
    soft, _ = raise_fd_limit()
    if soft < ATTACK_CONNECTIONS + 200:
        pytest.fail(f"the test needs {ATTACK_CONNECTIONS + 200} descriptors, the limit is {soft}")
