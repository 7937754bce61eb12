"""``python -m bench.soak --minutes N``: does anything grow while the system runs?

A host, a relay shard and two bridges (each its own process, TLS between host, relay and
bridges), with 100 StreamChat sessions (another process, 50 for each bridge's device) asking
turn after turn for a tool call that goes host → relay → bridge → MCP server and back; each
session ends after 20 turns and another takes its place. Every ``--interval`` seconds
it samples each process's open descriptors and resident memory (``/proc``), the host's and
the relay's live Trio tasks, actors and failures so far (``/debug/runtime``), and the
client's turns and errors. At the end it reports, per process and after a warm-up, the
slope of each figure per minute and the growth of RSS, checked against:

- 0 errors (every turn answered, every tool call ok, no actor failure);
- no growth of descriptors (a slope under half a descriptor per minute while it runs, and as
  many as before once every session is gone) or tasks (as many as before once every session
  is gone: under load the count follows the turns in flight);
- RSS growth under 5 % from the end of the warm-up (see ``warm_up_end``) to the end.

A table and, last, one JSON line. ``just soak --minutes 60`` is the roadmap's 1-hour run.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio

from actors.policy import mint_caller_token, sign_bundle
from actors.relay import generate_signing_key, mint_device_token, mint_host_token, save_public_key
from supervisors.tls import generate_dev_certs

from ._chaos_world import REPO, chat_turn, free_port, spawn, stop, wait_file
from ._proc import child_pids, open_fds, rss_mb
from ._stats import emit, progress

TENANT = "soak"
#: The sessions are spread over these devices (a bridge each): 50 sessions a device stay
#: within a bridge's default of 64 concurrent MCP calls, so nothing is refused as overloaded.
DEVICES = ("laptop-1", "laptop-2")
#: Descriptors are counted exactly: a slope below this (per minute, after warm-up) is
#: "no growth".
MAX_FD_SLOPE = 0.5
MAX_RSS_GROWTH_PCT = 5.0


@attrs.define
class Sample:
    at_s: float
    fds: dict[str, int]
    rss_mb: dict[str, float]
    tasks: dict[str, int]
    actors: dict[str, int]
    failures: dict[str, int]
    gc_collections: dict[str, int]
    load: dict[str, Any]


def slope_per_min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per minute."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * 60.0


CONTROL_PLANE = generate_signing_key()
CALLERS = generate_signing_key()
#: Bundles live this long and a fresh one (a higher revision) is written every half of it:
#: the host and the devices keep deciding under a current policy for a run of any length.
BUNDLE_TTL_S = 600.0


def write_bundle(tmp: Path) -> None:
    allow = {"id": "allow", "tool": "*", "versions": "*", "effect": "allow", "devices": ["*"]}
    document = {
        "iss": "soak-control-plane",
        "aud": TENANT,
        "policy_id": "soak",
        "revision": int(time.time() * 1000),
        "rules": [allow],
    }
    (tmp / "policy").mkdir(exist_ok=True)
    jws = sign_bundle(document, CONTROL_PLANE, ttl_s=BUNDLE_TTL_S)
    (tmp / "policy" / f"{TENANT}.jws").write_text(jws)


def policy_settings(tmp: Path) -> dict[str, str]:
    """The host's caller-token and policy settings: the load's token, the soak's bundles."""
    save_public_key(CONTROL_PLANE.public_key(), tmp / "control-plane.pub")
    save_public_key(CALLERS.public_key(), tmp / "callers.pub")
    write_bundle(tmp)
    return {
        "ZL_AUTH__TRUSTED_KEYS": json.dumps([str(tmp / "callers.pub")]),
        "ZL_AUTH__MAX_TTL_S": "172800",
        "ZL_POLICY__SOURCE": f"file:{tmp / 'policy'}/{{tenant}}.jws",
        "ZL_POLICY__TRUSTED_KEYS": json.dumps([str(tmp / "control-plane.pub")]),
        "ZL_POLICY__STATE_DIR": str(tmp / "policy-state"),
        "ZL_POLICY__REFRESH_S": "10",
    }


def caller_token() -> str:
    return mint_caller_token(CALLERS, tenant=TENANT, user="u1", devices=["*"], ttl_s=172800)


async def refresh_bundles(tmp: Path) -> None:
    while True:
        await trio.sleep(BUNDLE_TTL_S / 2)
        write_bundle(tmp)


def write_relay_config(tmp: Path, certs: Any, device_port: int, host_port: int) -> Path:
    config = tmp / "relay.toml"
    config.write_text(
        f"""shard_id = "relay-1"
public_keys = [{json.dumps(str(tmp / "relay.pub"))}]
[[shards]]
shard_id = "relay-1"
url = "wss://127.0.0.1:{device_port}/v1/device"
host_url = "wss://127.0.0.1:{host_port}/v1/host"
[devices]
port = {device_port}
[hosts]
port = {host_port}
[tls]
cert = {json.dumps(str(certs.server_cert))}
key = {json.dumps(str(certs.server_key))}
[limits]
heartbeat_s = 2.0
max_in_flight = 256
[debug]
port = 0
"""
    )
    return config


@attrs.define
class Processes:
    host: subprocess.Popen[bytes]
    relay: subprocess.Popen[bytes]
    bridges: list[subprocess.Popen[bytes]]
    host_debug: str
    relay_debug: str
    grpc_port: int

    def pids(self) -> dict[str, int]:
        pids = {"host": self.host.pid, "relay": self.relay.pid}
        for n, bridge in enumerate(self.bridges, start=1):
            pids[f"bridge{n}"] = bridge.pid
            for child in child_pids(bridge.pid):
                pids[f"bridge{n}.mcp"] = child
        return pids


async def start(tmp: Path) -> Processes:
    certs = generate_dev_certs(tmp / "certs")
    key = generate_signing_key()
    save_public_key(key.public_key(), tmp / "relay.pub")
    root = tmp / "root"
    root.mkdir()
    (root / "notes.txt").write_text("soak notes: " + "x" * 2000 + "\n")
    device_port, host_port = free_port(), free_port()
    config = write_relay_config(tmp, certs, device_port, host_port)
    argv = [sys.executable, "-m", "supervisors", "relay", "--config", str(config)]
    relay = spawn(
        [*argv, "--ready-file", str(tmp / "relay.ready"), "--log-level", "WARNING"],
        tmp / "relay.log",
    )
    relay_ready = await wait_file(tmp / "relay.ready", relay, "the relay")
    bridges = []
    for device in DEVICES:
        token = tmp / f"{device}.jwt"
        token.write_text(mint_device_token(key, tenant=TENANT, device_id=device, ttl=86400))
        argv = [sys.executable, "-m", "supervisors.bridge", "--device-id", device, "--quiet"]
        argv += ["--relay", f"wss://127.0.0.1:{device_port}/v1/device"]
        argv += ["--token-file", str(token), "--ca", str(certs.ca_cert), "--root", str(root)]
        argv += ["--policy-key", str(tmp / "control-plane.pub")]
        bridges.append(spawn(argv, tmp / f"{device}.log"))
    (tmp / "host.jwt").write_text(mint_host_token(key, tenants=[TENANT], host_id="soak", ttl=86400))
    policy_env = policy_settings(tmp)
    env = {
        "ZL_GRPC__PORT": "0",
        "ZL_GRPC__INSECURE_DEV_PLAINTEXT": "true",
        "ZL_DEBUG__PORT": "0",
        "ZL_AUDIT__PATH": str(tmp / "audit.jsonl"),
        "ZL_TOOLS__MODE": "relay",
        "ZL_TOOLS__RELAY_SHARDS": f"relay-1=wss://127.0.0.1:{host_port}/v1/host",
        "ZL_TOOLS__RELAY_TOKEN_FILE": str(tmp / "host.jwt"),
        "ZL_TOOLS__RELAY_CA": str(certs.ca_cert),
        "ZL_PROVIDER__MOCK__FIRST_TOKEN_DELAY_MS": "50",
        "ZL_PROVIDER__MOCK__TOKENS_PER_S": "50",
        "ZL_PROVIDER__MOCK__ANSWER_TOKENS": "20",
        **policy_env,
    }
    host_env = {k: v for k, v in os.environ.items() if not k.startswith("ZL_")} | env
    argv = [sys.executable, "-m", "supervisors", "host", "--ready-file", str(tmp / "host.ready")]
    host = spawn([*argv, "--log-level", "WARNING"], tmp / "host.log", host_env)
    host_ready = await wait_file(tmp / "host.ready", host, "the host")
    return Processes(
        host=host,
        relay=relay,
        bridges=bridges,
        host_debug=str(host_ready["debug_url"]),
        relay_debug=str(relay_ready["debug_url"]),
        grpc_port=int(host_ready["grpc_port"]),
    )


async def runtime(client: httpx.AsyncClient, url: str) -> dict[str, int]:
    response = await client.get(f"{url}/debug/runtime")
    response.raise_for_status()
    counts: dict[str, int] = response.json()
    return counts


def start_load(port: int, sessions: int) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "bench._soak_load", "--port", str(port)]
    argv += ["--sessions", str(sessions), "--device", ",".join(DEVICES)]
    argv += ["--token", caller_token()]
    return subprocess.Popen(
        argv, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


async def idle(client: httpx.AsyncClient, procs: Processes) -> dict[str, dict[str, int]]:
    """Tasks and descriptors of host and relay with no session open."""
    pids = procs.pids()
    return {
        "host": {
            "tasks": (await runtime(client, procs.host_debug))["tasks"],
            "fds": open_fds(pids["host"]),
        },
        "relay": {
            "tasks": (await runtime(client, procs.relay_debug))["tasks"],
            "fds": open_fds(pids["relay"]),
        },
    }


async def quiet(client: httpx.AsyncClient, procs: Processes, before: dict[str, Any]) -> Any:
    """Idle figures once the sessions are gone (waits up to a minute for them to settle)."""
    after = await idle(client, procs)
    with trio.move_on_after(60):
        while any(after[n]["tasks"] > before[n]["tasks"] for n in after):
            await trio.sleep(1)
            after = await idle(client, procs)
    return after


async def soak(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    procs = await start(tmp)
    for device in DEVICES:
        # One turn a device first: the host's connection to the relay and the devices'
        # catalogs exist from then on, so "idle" means the same before and after.
        await trio.to_thread.run_sync(
            functools.partial(
                chat_turn,
                procs.grpc_port,
                "read notes.txt",
                device=device,
                timeout_s=60,
                token=caller_token(),
                tenant=TENANT,
            ),
        )
    async with httpx.AsyncClient(timeout=10) as client:
        before = await idle(client, procs)
    load = start_load(procs.grpc_port, args.sessions)
    assert load.stdin is not None
    assert load.stdout is not None
    samples: list[Sample] = []
    began = trio.current_time()
    duration = args.minutes * 60
    try:
        async with httpx.AsyncClient(timeout=10) as client, trio.open_nursery() as refresher:
            refresher.start_soon(refresh_bundles, tmp)
            while True:
                await trio.sleep(args.interval)
                load.stdin.write("\n")
                load.stdin.flush()
                counters = json.loads(await trio.to_thread.run_sync(load.stdout.readline))
                pids = procs.pids()
                host_rt = await runtime(client, procs.host_debug)
                relay_rt = await runtime(client, procs.relay_debug)
                sample = Sample(
                    at_s=round(trio.current_time() - began, 1),
                    fds={name: open_fds(pid) for name, pid in pids.items()},
                    rss_mb={name: round(rss_mb(pid), 2) for name, pid in pids.items()},
                    tasks={"host": host_rt["tasks"], "relay": relay_rt["tasks"]},
                    actors={"host": host_rt["actors"], "relay": relay_rt["actors"]},
                    failures={"host": host_rt["failures"], "relay": relay_rt["failures"]},
                    gc_collections={
                        "host": host_rt["gc_collections"],
                        "relay": relay_rt["gc_collections"],
                    },
                    load=counters,
                )
                samples.append(sample)
                progress(
                    f"{sample.at_s:>7.0f} s  turns {counters['turns']} ok {counters['ok']} "
                    f"errors {sum(counters['errors'].values())}  host fds {sample.fds['host']} "
                    f"tasks {sample.tasks['host']} rss {sample.rss_mb['host']} MB"
                )
                if sample.at_s >= duration:
                    refresher.cancel_scope.cancel()
                    break
        load.stdin.close()  # the sessions end
        await trio.to_thread.run_sync(lambda: load.wait(timeout=60))
        async with httpx.AsyncClient(timeout=10) as client:
            after = await quiet(client, procs, before)
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
        for process in (procs.host, *procs.bridges, procs.relay):
            stop(process)
    return report(args, samples, idle_before=before, idle_after=after)


def warm_up_end(samples: list[Sample]) -> float:
    """When the steady state begins: after the first fifth of the run (a minute or more).

    Until then the processes fill their pools, caches and the allocator's arenas. Nothing
    waits for a garbage collection: a session's objects are freed by reference counting
    when it ends (the host collects cyclic garbage rarely, ``supervisors._process
    .GC_THRESHOLDS``), so memory that only a collection returns shows as growth here.
    """
    end = samples[-1].at_s
    return min(max(60.0, end / 5), end / 2)


def report(
    args: argparse.Namespace,
    samples: list[Sample],
    *,
    idle_before: dict[str, Any],
    idle_after: dict[str, Any],
) -> dict[str, Any]:
    """Slopes after the warm-up (see ``warm_up_end``), and idle before against idle after."""
    warm_up_s = warm_up_end(samples)
    steady = [s for s in samples if s.at_s >= warm_up_s] or samples
    last = samples[-1].load
    processes: dict[str, Any] = {}
    for name in steady[-1].fds:
        rss = [(s.at_s, s.rss_mb[name]) for s in steady if name in s.rss_mb]
        fds = [(s.at_s, float(s.fds[name])) for s in steady if name in s.fds]
        entry: dict[str, Any] = {
            "fds_first": int(fds[0][1]),
            "fds_last": int(fds[-1][1]),
            "fds_slope_per_min": round(slope_per_min(fds), 3),
            "rss_mb_first": rss[0][1],
            "rss_mb_last": rss[-1][1],
            "rss_growth_pct": round((rss[-1][1] - rss[0][1]) / rss[0][1] * 100, 2),
            "rss_slope_mb_per_min": round(slope_per_min(rss), 3),
        }
        if name in steady[-1].tasks:
            tasks = [(s.at_s, float(s.tasks[name])) for s in steady]
            slope = slope_per_min(tasks)
            mean = sum(v for _, v in tasks) / len(tasks)
            minutes = (tasks[-1][0] - tasks[0][0]) / 60
            entry.update(
                tasks_first=int(tasks[0][1]),
                tasks_last=int(tasks[-1][1]),
                tasks_mean=round(mean, 1),
                tasks_slope_per_min=round(slope, 3),
                tasks_growth_pct=round(slope * minutes / mean * 100, 2) if mean else 0.0,
                failures=steady[-1].failures[name],
                gc_collections=steady[-1].gc_collections[name] - samples[0].gc_collections[name],
            )
        processes[name] = entry
    errors = sum(last["errors"].values())
    checks = {
        "no_errors": errors == 0 and all(p.get("failures", 0) == 0 for p in processes.values()),
        "no_fd_growth": all(p["fds_slope_per_min"] < MAX_FD_SLOPE for p in processes.values()),
        # Exact: with every session gone, as many tasks and descriptors as before the load.
        "no_task_growth": all(
            idle_after[n]["tasks"] <= idle_before[n]["tasks"] for n in idle_before
        ),
        "no_fd_growth_idle": all(
            idle_after[n]["fds"] <= idle_before[n]["fds"] for n in idle_before
        ),
        "rss_growth_under_5_pct": all(
            p["rss_growth_pct"] < MAX_RSS_GROWTH_PCT for p in processes.values()
        ),
    }
    return {
        "bench": "soak",
        "minutes": args.minutes,
        "sessions": args.sessions,
        "interval_s": args.interval,
        "warm_up_s": warm_up_s,
        "samples": len(samples),
        "turns": last["turns"],
        "turns_ok": last["ok"],
        "tool_calls": last["tool_calls"],
        "errors": last["errors"],
        "processes": processes,
        "idle_before": idle_before,
        "idle_after": idle_after,
        "checks": checks,
        "passed": all(checks.values()),
    }


def table(result: dict[str, Any]) -> str:
    rows = [
        (
            "process",
            "fds first→last",
            "fds/min",
            "tasks first→last",
            "tasks/min",
            "rss MB first→last",
            "rss %",
            "MB/min",
        )
    ]
    for name, p in result["processes"].items():
        tasks = f"{p['tasks_first']}→{p['tasks_last']}" if "tasks_first" in p else "-"
        task_slope = f"{p['tasks_slope_per_min']}" if "tasks_slope_per_min" in p else "-"
        rows.append(
            (
                name,
                f"{p['fds_first']}→{p['fds_last']}",
                f"{p['fds_slope_per_min']}",
                tasks,
                task_slope,
                f"{p['rss_mb_first']}→{p['rss_mb_last']}",
                f"{p['rss_growth_pct']}",
                f"{p['rss_slope_mb_per_min']}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(
        "idle before → after the load: "
        + ", ".join(
            f"{n} tasks {result['idle_before'][n]['tasks']}→{result['idle_after'][n]['tasks']}, "
            f"fds {result['idle_before'][n]['fds']}→{result['idle_after'][n]['fds']}"
            for n in result["idle_before"]
        )
        + f"; warm-up {result['warm_up_s']:.0f} s"
    )
    lines.append(
        f"turns {result['turns']} (ok {result['turns_ok']}), tool calls {result['tool_calls']}, "
        f"errors {result['errors'] or 0}; checks: "
        + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in result["checks"].items())
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="zl-soak-") as scratch:
        result = trio.run(soak, args, Path(scratch))
    print(table(result))
    emit(result)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
