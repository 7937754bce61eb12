"""Benchmark of the relay path: ``python -m bench.bridge [--quick]``.

Measures, in one run on loopback with real TLS and real processes:

* a 4 KB ``fs.read`` through host link → relay (subprocess) → bridge (subprocess) → MCP
  server, minus the same call over direct stdio (``McpStdioClient`` in this process), at
  concurrency 1 and 50: ``overhead_ms_p50/p95/p99`` (the worse of the two concurrencies);
* ``rtt_ms_p50``: host↔relay plus relay↔device round trips from ping/pong;
* ``relay_rss_mb`` with ``idle_devices`` idle device connections (hello + heartbeats, from
  a separate client process, ``bench._relay_support``); ``--idle-only --idle N`` measures just
  that, for N devices.

Each level reports the CPU every process spent per call, from ``/proc``, and their sum over
the relayed path (host link + relay + bridge, ``path_cpu_ms_per_call``). Calls go with binary
frames (``zl.relay.v1+proto``) where the build has them; the same levels are then measured
again with JSON frames (``json_concurrency_*``). The relay runs alone on the server core;
this process (the host link and the direct client), the bridge and the MCP servers share the
other cores. The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import attrs
import trio

from actors.mcp import CallTool, McpClientConfig, McpServerCommand, call_tool, mcp_client_spec
from actors.relay import (
    Shard,
    generate_signing_key,
    mint_device_token,
    mint_host_token,
    save_private_key,
    save_public_key,
)
from actors.tools import ToolInvocation
from actors.tools._relay_link import RelayLinkSettings, RelayToolLink
from supervisors.tls import ALPN_HTTP1, client_ssl_context, generate_dev_certs
from zl_actors import SupervisorSpec, open_actor_system

from ._proc import child_pids, cpu_s, pin, pin_load_generator, pin_server, rss_mb
from ._stats import emit, percentile

REPO = Path(__file__).resolve().parents[1]
TENANT = "bench"
DEVICE = "bench-device"
FILE_BYTES = 4096
READY_TIMEOUT_S = 30.0
#: Idle devices: the issue's target, and the smaller count of ``--quick``.
IDLE_FULL = 5000
IDLE_QUICK = 500
IDLE_PROCESSES = 4
IDLE_RAMP = 32
IDLE_CONNECT_TIMEOUT_S = 600.0
#: The relay's default heartbeat (``RelayLimits``): what idle devices see in production.
IDLE_HEARTBEAT_S = 5.0


class CpuMeter:
    """CPU milliseconds per call of named processes over one measured phase."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.before = {name: cpu_s(pid) for name, pid in pids.items()}

    def per_call_ms(self, calls: int) -> dict[str, float]:
        return {
            name: round((cpu_s(pid) - self.before[name]) * 1000 / calls, 3)
            for name, pid in self.pids.items()
        }


def _handshake_caps() -> str:
    """Top-level relay settings that let every idle client's handshakes in at once.

    The relay caps the handshakes pending from one address (``max_pending_per_source``, 32
    by default), and here every device dials from 127.0.0.1: ``IDLE_PROCESSES`` clients
    of ``IDLE_RAMP`` attempts in flight each. A build without the cap gets nothing.
    """
    from supervisors.relay._config import RelayConfig

    if "max_pending_per_source" not in attrs.fields_dict(RelayConfig):
        return ""
    return f"max_pending_per_source = {IDLE_PROCESSES * IDLE_RAMP}\n"


def write_relay_config(
    tmp: Path, certs: Any, public: Path, port: int, host_port: int, heartbeat_s: float
) -> Path:
    config = tmp / "relay.toml"
    config.write_text(
        f"""shard_id = "relay-1"
public_keys = ["{public}"]
{_handshake_caps()}[[shards]]
shard_id = "relay-1"
url = "wss://127.0.0.1:{port}/v1/device"
host_url = "wss://127.0.0.1:{host_port}/v1/host"
[devices]
port = {port}
[hosts]
port = {host_port}
[tls]
cert = "{certs.server_cert}"
key = "{certs.server_key}"
[limits]
heartbeat_s = {heartbeat_s}
max_in_flight = 64
"""
    )
    return config


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_relay(config: Path, ready: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "supervisors.relay",
            "--config",
            str(config),
            "--ready-file",
            str(ready),
            "--log-level",
            "WARNING",
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
    )


async def wait_for_file(path: Path) -> None:
    with trio.fail_after(READY_TIMEOUT_S):
        # Another process writes it; polling is the simple portable wait.
        while not await trio.Path(path).exists():  # noqa: ASYNC110 - see above
            await trio.sleep(0.05)


def stop(procs: list[subprocess.Popen[Any]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


def start_bridge(
    port: int, tmp: Path, certs: Any, root: Path, *, json_frames: bool = False
) -> subprocess.Popen[bytes]:
    """The bridge under test; it enforces the bench's signed policy where the build has one."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "supervisors.bridge",
            "--relay",
            f"wss://127.0.0.1:{port}/v1/device",
            "--device-id",
            DEVICE,
            "--token-file",
            str(tmp / "device.jwt"),
            "--ca",
            str(certs.ca_cert),
            "--root",
            str(root),
            *(["--policy-key", str(tmp / "control-plane.pub")] if HAS_POLICY else []),
            "--quiet",
            # A build without binary frames speaks JSON anyway (and has no such flag).
            *(["--json-frames"] if json_frames and HAS_BINARY_FRAMES else []),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
    )


def start_idle_client(
    port: int, certs: Any, tmp: Path, first: int, count: int
) -> subprocess.Popen[str]:
    """An idle-devices process, free to run on every core.

    Answering 10,000 devices' heartbeats (2,000 pongs a second over TLS) takes more than
    one core of these client processes on a 2-core machine; pinned beside the rest of the
    load they fall behind, and the shard rightly drops devices that miss heartbeats. Only
    the relay's memory is measured here, not its latency.
    """
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench._relay_support",
            "--url",
            f"wss://127.0.0.1:{port}/v1/device",
            "--ca",
            str(certs.ca_cert),
            "--key",
            str(tmp / "signing.pem"),
            "--first",
            str(first),
            "--count",
            str(count),
            "--ramp",
            str(IDLE_RAMP),
        ],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    pin(process.pid, set(range(os.cpu_count() or 1)))
    return process


async def idle_devices(args: argparse.Namespace, tmp: Path, certs: Any) -> dict[str, Any]:
    """Connect many idle devices to a fresh relay shard; count them and read its RSS.

    The shard runs with the default heartbeat (devices answer its pings throughout).
    Devices come from ``IDLE_PROCESSES`` client processes, each ramping up at most
    ``IDLE_RAMP`` connection attempts at a time; the count is of connections open at the
    moment the RSS is read, as each client process reports them.
    """
    target = args.idle or (IDLE_QUICK if args.quick else IDLE_FULL)
    processes = 1 if target <= IDLE_QUICK else IDLE_PROCESSES
    port, host_port = free_port(), free_port()
    heartbeat_s = args.idle_heartbeat
    idle_dir = tmp / "idle"
    idle_dir.mkdir()
    config = write_relay_config(idle_dir, certs, tmp / "signing.pub", port, host_port, heartbeat_s)
    ready = idle_dir / "relay.ready"
    relay = start_relay(config, ready)
    pin_server(relay.pid)
    clients: list[subprocess.Popen[str]] = []
    try:
        await wait_for_file(ready)
        await trio.sleep(0.5)
        out: dict[str, Any] = {"relay_rss_mb_no_devices": round(rss_mb(relay.pid), 1)}
        started = time.perf_counter()
        share = -(-target // processes)
        for k in range(processes):
            count = min(share, target - k * share)
            clients.append(start_idle_client(port, certs, tmp, k * share, count))
        failed = 0
        with trio.fail_after(IDLE_CONNECT_TIMEOUT_S):
            for client in clients:
                assert client.stdout is not None
                line = await trio.to_thread.run_sync(client.stdout.readline)
                failed += int(line.split()[2]) if line.startswith("ready") else 0
        out["idle_connect_s"] = round(time.perf_counter() - started, 2)
        # Two heartbeats with everyone connected: every device is pinged and answers. The
        # relay's CPU meanwhile is what idle devices cost it (pings, pongs, timers).
        idle_cpu_before, idle_started = cpu_s(relay.pid), time.perf_counter()
        await trio.sleep(heartbeat_s * 2 + 1)
        out["relay_cpu_pct_idle"] = round(
            100 * (cpu_s(relay.pid) - idle_cpu_before) / (time.perf_counter() - idle_started), 1
        )
        connected = 0
        for client in clients:
            assert client.stdin is not None
            assert client.stdout is not None
            client.stdin.write("count\n")
            client.stdin.flush()
            line = await trio.to_thread.run_sync(client.stdout.readline)
            connected += int(line.split()[1]) if line.startswith("connected") else 0
        out["relay_rss_mb"] = round(rss_mb(relay.pid), 1)
        out["relay_kb_per_idle_device"] = round(
            (out["relay_rss_mb"] - out["relay_rss_mb_no_devices"]) * 1024 / max(1, connected), 1
        )
        out["idle_devices"] = connected
        out["idle_devices_target"] = target
        out["idle_failed"] = failed
        out["idle_heartbeat_s"] = heartbeat_s
        out["idle_client_processes"] = processes
        return out
    finally:
        stop([*clients, relay])


async def timed(n: int, concurrency: int, one: Any) -> list[float]:
    samples: list[float] = []
    limiter = trio.CapacityLimiter(concurrency)

    async def run() -> None:
        async with limiter:
            start = time.perf_counter()
            await one()
            samples.append((time.perf_counter() - start) * 1000)

    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(run)
    return samples


def _link_settings(
    key: Any, certs: Any, host_port: int, heartbeat_s: float, *, binary: bool
) -> Any:
    """The host link's settings; JSON frames only when ``binary`` is False.

    A build from before binary frames has no such setting: it speaks JSON either way.
    """
    values: dict[str, Any] = {
        "shards": (Shard(shard_id="relay-1", url=f"wss://127.0.0.1:{host_port}/v1/host"),),
        "token": mint_host_token(key, tenants=[TENANT], host_id="bench-host", ttl=3600),
        "ssl_context": client_ssl_context(certs.ca_cert, alpn=ALPN_HTTP1),
        "heartbeat_s": heartbeat_s,
    }
    if HAS_BINARY_FRAMES:
        values["binary_frames"] = binary
    return RelayLinkSettings(**values)


#: Whether the build under test has binary relay frames (bench.compare runs older builds).
HAS_BINARY_FRAMES = "binary_frames" in attrs.fields_dict(RelayLinkSettings)
#: Whether it has signed policies (a call then carries a bundle the device enforces).
HAS_POLICY = "policy" in attrs.fields_dict(ToolInvocation)


def allow_all_bundle(tmp: Path) -> str | None:
    """A permissive bundle for the tenant, signed by a control-plane key saved in ``tmp``.

    The device enforces a signed policy, as deployed. None for a build without policies.
    """
    if not HAS_POLICY:
        return None
    from actors.policy import sign_bundle

    control_plane = generate_signing_key()
    save_public_key(control_plane.public_key(), tmp / "control-plane.pub")
    allow_all = {
        "id": "allow-all",
        "tool": "*",
        "versions": "*",
        "effect": "allow",
        "devices": ["*"],
    }
    bundle: str = sign_bundle(
        {"iss": "bench", "aud": TENANT, "policy_id": "bench", "revision": 1, "rules": [allow_all]},
        control_plane,
        ttl_s=900,
    )
    return bundle


async def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    certs = generate_dev_certs(tmp / "certs")
    key = generate_signing_key()
    save_private_key(key, tmp / "signing.pem")
    save_public_key(key.public_key(), tmp / "signing.pub")
    result: dict[str, Any] = {"bench": "bridge", "quick": args.quick}
    if not args.idle_only:
        result.update(await measure_calls(args, tmp, certs, key))
    if not args.no_idle:
        result.update(await idle_devices(args, tmp, certs))
    if args.quick:
        result["note"] = (
            f"--quick: fewer calls per level and {IDLE_QUICK} idle devices "
            f"(one client process) instead of {IDLE_FULL}"
        )
    return result


async def measure_calls(
    args: argparse.Namespace, tmp: Path, certs: Any, key: Any
) -> dict[str, Any]:
    """Relayed calls against direct stdio, binary frames then JSON frames."""
    root = tmp / "root"
    root.mkdir()
    (root / "four_k.txt").write_text("x" * FILE_BYTES)
    port, host_port = free_port(), free_port()
    heartbeat_s = 1.0
    config = write_relay_config(tmp, certs, tmp / "signing.pub", port, host_port, heartbeat_s)
    ready = tmp / "relay.ready"
    relay = start_relay(config, ready)
    pin_server(relay.pid)
    (tmp / "device.jwt").write_text(
        mint_device_token(key, tenant=TENANT, device_id=DEVICE, ttl=3600)
    )
    bundle = allow_all_bundle(tmp)
    bridges: list[subprocess.Popen[bytes]] = []
    n = 100 if args.quick else 1000
    result: dict[str, Any] = {"calls_per_level": n, "binary_frames": HAS_BINARY_FRAMES}
    try:
        await wait_for_file(ready)
        async with open_actor_system("bench", stop_grace_s=3.0) as system:
            tools = await system.spawn(SupervisorSpec(name="tools"))
            command = McpServerCommand(
                argv=(sys.executable, "-m", "actors.mcp.fs_server", str(root)), cwd=str(REPO)
            )
            mcp = await tools.start_child(mcp_client_spec("mcp", McpClientConfig(command=command)))

            async def direct() -> None:
                await call_tool(
                    mcp,
                    CallTool(
                        call_id=uuid.uuid4().hex,
                        tool="fs.read",
                        arguments={"path": "four_k.txt"},
                        timeout_s=10,
                    ),
                )

            modes = [("", True), ("json_", False)] if HAS_BINARY_FRAMES else [("", False)]
            worst = {50: 0.0, 95: 0.0, 99: 0.0}
            for prefix, binary in modes:
                # A new bridge for each mode (same device id: it replaces the previous one).
                for old in bridges:
                    stop([old])
                bridge = start_bridge(port, tmp, certs, root, json_frames=not binary)
                bridges.append(bridge)
                settings = _link_settings(key, certs, host_port, heartbeat_s, binary=binary)
                link = await RelayToolLink.start(tools, settings)
                levels, rtt = await _levels(
                    link,
                    direct,
                    n,
                    bundle=bundle,
                    relay_pid=relay.pid,
                    bridge_pid=bridge.pid,
                    heartbeat_s=heartbeat_s,
                )
                for concurrency, level in levels.items():
                    result[f"{prefix}concurrency_{concurrency}"] = level
                    if prefix == "":
                        for pct in (50, 95, 99):
                            worst[pct] = max(worst[pct], level[f"overhead_ms_p{pct}"])
                if prefix == "":
                    result.update(rtt)
            for pct in (50, 95, 99):
                result[f"overhead_ms_p{pct}"] = round(worst[pct], 3)
        return result
    finally:
        stop([*bridges, relay])


async def _levels(
    link: RelayToolLink,
    direct: Any,
    n: int,
    *,
    bundle: str | None,
    relay_pid: int,
    bridge_pid: int,
    heartbeat_s: float,
) -> tuple[dict[int, dict[str, Any]], dict[str, Any]]:
    """Concurrency 1 and 50 through ``link``, each against direct stdio; then the RTT."""

    policy = {"policy": bundle} if bundle is not None else {}

    async def relayed() -> None:
        output = await link.invoke(
            ToolInvocation(
                call_id=uuid.uuid4().hex,
                tenant=TENANT,
                device_id=DEVICE,
                tool="fs.read",
                version="1.0.0",
                arguments={"path": "four_k.txt"},
                timeout_s=10,
                max_bytes=65536,
                **policy,
            )
        )
        assert output.structured is not None
        assert not output.is_error

    with trio.fail_after(60):
        while True:
            try:
                # The device is connected through this link's bridge (a fresh catalog).
                await link.catalog(tenant=TENANT, device_id=DEVICE)
                await relayed()
                break
            except Exception:
                await trio.sleep(0.1)
    await timed(20, 1, direct)
    await timed(20, 1, relayed)
    (direct_server,) = set(child_pids(os.getpid())) - {relay_pid, bridge_pid}
    (bridge_server,) = child_pids(bridge_pid)
    levels: dict[int, dict[str, Any]] = {}
    for concurrency in (1, 50):
        meter = CpuMeter({"client": os.getpid(), "mcp_server": direct_server})
        d = await timed(n, concurrency, direct)
        direct_cpu = meter.per_call_ms(n)
        meter = CpuMeter(
            {
                "host_link": os.getpid(),
                "relay": relay_pid,
                "bridge": bridge_pid,
                "mcp_server": bridge_server,
            }
        )
        r = await timed(n, concurrency, relayed)
        relay_cpu = meter.per_call_ms(n)
        level: dict[str, Any] = {
            "direct_cpu_ms_per_call": direct_cpu,
            "relay_cpu_ms_per_call": relay_cpu,
            # What the relayed path itself costs: the three processes between host and tool.
            "path_cpu_ms_per_call": round(
                relay_cpu["host_link"] + relay_cpu["relay"] + relay_cpu["bridge"], 3
            ),
        }
        for pct in (50, 95, 99):
            level[f"overhead_ms_p{pct}"] = round(percentile(r, pct) - percentile(d, pct), 3)
            level[f"direct_ms_p{pct}"] = round(percentile(d, pct), 3)
            level[f"relay_ms_p{pct}"] = round(percentile(r, pct), 3)
        levels[concurrency] = level
    rtts: list[float] = []
    with trio.move_on_after(max(3.0, heartbeat_s * 12)):
        while len(rtts) < 20:
            rtt = await link.host_to_device_rtt_ms(tenant=TENANT, device_id=DEVICE)
            if rtt is not None:
                rtts.append(rtt)
            await trio.sleep(heartbeat_s)
    return levels, {"rtt_ms_p50": round(percentile(rtts, 50), 3), "rtt_samples": len(rtts)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bridge")
    parser.add_argument("--quick", action="store_true", help="fewer calls, 500 idle devices")
    parser.add_argument(
        "--idle", type=int, default=0, help=f"idle devices to connect (default {IDLE_FULL})"
    )
    parser.add_argument(
        "--idle-only", action="store_true", help="measure only the idle devices' memory"
    )
    parser.add_argument(
        "--no-idle", action="store_true", help="measure only the calls (no idle devices)"
    )
    parser.add_argument(
        "--idle-heartbeat",
        type=float,
        default=IDLE_HEARTBEAT_S,
        help=(
            f"the shard's heartbeat in the idle run (default {IDLE_HEARTBEAT_S:g} s, the "
            "relay's default); longer lets a small machine's client processes keep up"
        ),
    )
    args = parser.parse_args()
    pin_load_generator()
    with tempfile.TemporaryDirectory() as tmp:
        result = trio.run(measure, args, Path(tmp))
    emit(result)


if __name__ == "__main__":
    main()
