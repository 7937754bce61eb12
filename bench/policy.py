"""What policy costs: one decision, one verification, and a tool call with policy on vs off.

    python -m bench.policy [--quick]

* ``decision_us_p50`` / ``_p99``: building the request from a call's arguments and deciding
  it (``CallRequest.of`` + ``decide``) under a cached bundle of 24 rules (paths, a deny
  rule, device rules), for a mix of allowed and denied fs.read calls; medians over runs.
* ``verify_ms_p50``: verifying one 24-rule bundle from its text (signature, strict JSON,
  schema, rules), as a host does for each new revision and a bridge for each new bundle.
* ``tool_call_overhead_ms_p50``: the whole tool path of ``bench.tool_call`` (a 4 KB fs.read
  over stdio, concurrency 1) with policy on (a ``PolicyCache`` ask, the decision, the
  receipt's fields) minus the same with policy off (a development setting), in one process
  over one MCP server, the two interleaved call by call; the median over rounds of the p50
  difference.

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from actors.policy import CallRequest, decide, sign_bundle, verify_bundle
from actors.relay import generate_signing_key
from actors.session import open_outbox
from zl_actors import ActorSpec, open_actor_system

from ._stats import emit, percentile, progress
from .tool_call import FILE_BYTES, TENANT, BenchTurn, RunCall, tool_paths


def bundle_document() -> dict[str, Any]:
    rules: list[dict[str, Any]] = [
        {
            "id": "no-secrets",
            "tool": "*",
            "versions": "*",
            "effect": "deny",
            "devices": ["*"],
            "paths": ["secrets/**", ".ssh/**", "**/*.pem"],
        },
    ]
    for index in range(20):
        rules.append(
            {
                "id": f"team-{index}",
                "tool": "fs.read",
                "versions": "^1.0.0",
                "effect": "allow",
                "devices": [f"laptop-{index}"],
                "caps": {"timeoutMs": 5000, "maxBytes": 65536},
                "paths": [f"projects/p{index}/**", "docs/**/*.md"],
            }
        )
    rules += [
        {
            "id": "read-notes",
            "tool": "fs.read",
            "versions": "^1.0.0",
            "effect": "allow",
            "devices": ["*"],
            "caps": {"timeoutMs": 5000, "maxBytes": 65536},
            "paths": ["notes/**", "*.txt"],
        },
        {
            "id": "no-writes",
            "tool": "write_file",
            "versions": "*",
            "effect": "deny",
            "devices": ["*"],
        },
        {
            "id": "fetch",
            "tool": "net.fetch",
            "versions": "^1",
            "effect": "allow",
            "devices": ["*"],
            "egress": ["api.example.com:443"],
        },
    ]
    return {
        "iss": "bench",
        "aud": TENANT,
        "policy_id": "bench",
        "revision": 1,
        "rules": rules,
        "defaults": {"caps": {"timeoutMs": 5000, "maxBytes": 1048576}},
    }


def decisions(jws: str, keys: list[Any], samples: int) -> list[float]:
    bundle = verify_bundle(jws, keys=keys, tenant=TENANT)
    calls = [
        ("laptop-3", {"path": "projects/p3/src/main.py"}),
        ("laptop-3", {"path": "notes/today.txt"}),
        ("laptop-7", {"path": "secrets/key"}),
        ("desktop", {"path": "notes/a/b/c.txt"}),
        ("desktop", {"path": "elsewhere/x.bin"}),
    ]
    for device, args in calls:  # warm the bundle's cache of covering rules
        decide(bundle, CallRequest.of(tool="fs.read", version="1.0.0", device_id=device, args=args))
    out = []
    clock = time.perf_counter_ns
    for index in range(samples):
        device, args = calls[index % len(calls)]
        start = clock()
        decide(bundle, CallRequest.of(tool="fs.read", version="1.0.0", device_id=device, args=args))
        out.append((clock() - start) / 1000)
    return out


def verifications(jws: str, keys: list[Any], samples: int) -> list[float]:
    out = []
    for _ in range(samples):
        start = time.perf_counter()
        verify_bundle(jws, keys=keys, tenant=TENANT)
        out.append((time.perf_counter() - start) * 1000)
    return out


async def paired_calls(calls: int, scratch: Path) -> tuple[list[float], list[float]]:
    """Gateway latencies of the same fs.read with policy on and off, call after call."""
    root = scratch / "root"
    root.mkdir(exist_ok=True)
    (root / "data.txt").write_text("z" * FILE_BYTES)
    samples: dict[str, list[float]] = {"on": [], "off": []}
    async with open_actor_system("bench") as system:
        outbox, events = open_outbox()
        paths = await tool_paths(system, root, scratch / "audit.jsonl", outbox, ("on", "off"))
        turns = {}
        for policy, tools in paths.items():
            turns[policy] = await system.spawn(
                ActorSpec(name=f"turn_{policy}", factory=functools.partial(BenchTurn, tools))
            )
        async with trio.open_nursery() as nursery:

            async def drain() -> None:
                async for _ in events:
                    pass

            nursery.start_soon(drain)
            for index in range(calls + 20):
                order = ("on", "off") if index % 2 == 0 else ("off", "on")
                for policy in order:
                    start = time.perf_counter()
                    result = await turns[policy].ask(
                        RunCall(call_id=f"c{policy}{index}", path="data.txt"), timeout=30
                    )
                    elapsed = (time.perf_counter() - start) * 1000
                    assert json.loads(result)["bytesReturned"] == FILE_BYTES, result
                    if index >= 20:  # warm-up calls are not counted
                        samples[policy].append(elapsed)
            outbox.close()
    return samples["on"], samples["off"]


async def overhead(rounds: int, calls: int) -> tuple[list[float], list[dict[str, Any]]]:
    """Per round, p50 with policy on minus p50 with policy off (calls interleaved); each
    round also reports the median of the differences within call pairs, a steadier
    estimate of the same shift on a busy machine."""
    differences, runs = [], []
    for index in range(rounds):
        with tempfile.TemporaryDirectory(prefix="zl-bench-policy-") as scratch:
            on, off = await paired_calls(calls, Path(scratch))
        differences.append(percentile(on, 50) - percentile(off, 50))
        paired = statistics.median(a - b for a, b in zip(on, off, strict=True))
        runs.append(
            {
                "on_ms_p50": round(percentile(on, 50), 3),
                "off_ms_p50": round(percentile(off, 50), 3),
                "paired_delta_ms_p50": round(paired, 3),
            }
        )
        progress(
            f"  round {index + 1}: on {runs[-1]['on_ms_p50']} ms, off {runs[-1]['off_ms_p50']} ms,"
            f" paired {runs[-1]['paired_delta_ms_p50']} ms"
        )
    return differences, runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer samples; under a minute")
    args = parser.parse_args()
    # bench.tool_call logs the policy-off warning each round; it is expected here.
    logging.basicConfig(level=logging.ERROR)
    key = generate_signing_key()
    jws = sign_bundle(bundle_document(), key, ttl_s=900)
    keys = [key.public_key()]
    runs = 3 if args.quick else 7
    progress(f"decisions: {runs} runs ...")
    decision_runs = [decisions(jws, keys, 20_000 if args.quick else 100_000) for _ in range(runs)]
    progress("verifications ...")
    verify_runs = [verifications(jws, keys, 100 if args.quick else 300) for _ in range(runs)]
    rounds, calls = (3, 300) if args.quick else (5, 1500)
    progress(f"tool calls, policy on and off: {rounds} rounds of {calls} calls each ...")
    differences, overhead_runs = trio.run(overhead, rounds, calls)
    emit(
        {
            "bench": "policy",
            "quick": args.quick,
            "rules": len(bundle_document()["rules"]),
            "bundle_chars": len(jws),
            "decision_us_p50": round(
                statistics.median(percentile(r, 50) for r in decision_runs), 2
            ),
            "decision_us_p99": round(
                statistics.median(percentile(r, 99) for r in decision_runs), 2
            ),
            "verify_ms_p50": round(statistics.median(percentile(r, 50) for r in verify_runs), 3),
            "verify_ms_p99": round(statistics.median(percentile(r, 99) for r in verify_runs), 3),
            "tool_call_overhead_ms_p50": round(statistics.median(differences), 3),
            "tool_call_overhead_ms_rounds": [round(d, 3) for d in differences],
            "tool_call_paired_delta_ms_p50": round(
                statistics.median(r["paired_delta_ms_p50"] for r in overhead_runs), 3
            ),
            "tool_call_runs": overhead_runs,
        }
    )


if __name__ == "__main__":
    main()
