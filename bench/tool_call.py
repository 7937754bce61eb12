"""What the host's tool gateway adds to an fs.read over stdio, against a bare client.

    python -m bench.tool_call [--quick] [--policy off]

Two processes of the same MCP server (``actors.mcp.fs_server``) serve a 4 KB file. A bare
JSON-RPC client (a few lines over the pipes, no validation, no actors) calls one; the
host's whole tool path calls the other: a ``ToolCall`` actor, argument and result
validation against the contracts, caps, the ``McpStdioClient`` actor, a receipt written to
the audit file (host defaults: fsync every 64 records or 0.5 s) and the tool events into a
session outbox; every call is decided under a signed policy bundle held by a
``PolicyCache`` (deny by default, as deployed). Calls alternate between the two at
concurrency 1 and 50; ``overhead_ms_*`` is the gateway's percentile minus the bare client's.
``--policy off`` measures without policy (a development setting; it logs a warning);
``bench.policy`` runs both in one process to isolate what policy costs. The last line is
one JSON object.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import logging
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

from actors.audit import AuditConfig, AuditWriter, FsyncPolicy
from actors.mcp import McpClientConfig, McpServerCommand, mcp_client_spec
from actors.policy import PolicyCache, PolicyCacheConfig, sign_bundle
from actors.provider import ToolCallRequest
from actors.relay import generate_signing_key
from actors.session import Outbox, SessionContext, open_outbox
from actors.session.messages import SessionLimits
from actors.tools import PolicyGate, SessionTools, StdioToolLink, ToolGateway, ToolsConfig
from zl_actors import Actor, ActorContext, ActorSpec, ActorSystem, Request, open_actor_system

from ._stats import emit, percentile, progress

FILE_BYTES = 4096
# Outbox events are read as fast as they come (the bench measures the tool path, not a client).
SERVER = [sys.executable, "-m", "actors.mcp.fs_server"]


class BareClient:
    """JSON-RPC over a server's stdio, the least a client can do (legacy era handshake)."""

    def __init__(self, process: trio.Process) -> None:
        assert process.stdin is not None
        assert process.stdout is not None
        self.process = process
        self.stdin = process.stdin
        self.stdout = process.stdout
        self.ids = itertools.count(1)
        self.waiting: dict[int, trio.MemorySendChannel[dict[str, Any]]] = {}
        self.lock = trio.Lock()

    async def reader(self) -> None:
        buffer = b""
        while True:
            chunk = await self.stdout.receive_some(1 << 16)
            if not chunk:
                return
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                message = json.loads(line)
                waiter = self.waiting.pop(message.get("id"), None)
                if waiter is not None:
                    waiter.send_nowait(message)

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        request_id = next(self.ids)
        send, receive = trio.open_memory_channel[dict[str, Any]](1)
        self.waiting[request_id] = send
        line = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        async with self.lock:
            await self.stdin.send_all(line.encode() + b"\n")
        return await receive.receive()

    async def initialize(self) -> None:
        await self.request(
            "initialize",
            {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "bench", "version": "1"},
            },
        )
        async with self.lock:
            await self.stdin.send_all(
                b'{"jsonrpc": "2.0", "method": "notifications/initialized"}\n'
            )

    async def read(self, path: str) -> None:
        answer = await self.request("tools/call", {"name": "fs.read", "arguments": {"path": path}})
        assert not answer["result"]["isError"], answer


@attrs.frozen(kw_only=True)
class RunCall(Request[str]):
    call_id: str
    path: str


class BenchTurn(Actor[RunCall]):
    """Stands in for a turn: runs each call it is asked for as a ToolCall child."""

    mailbox_capacity = 256

    def __init__(self, tools: SessionTools) -> None:
        self.tools = tools

    async def handle(self, message: RunCall, ctx: ActorContext[RunCall]) -> None:
        reply = ctx.defer_reply()

        async def run() -> None:
            call = ToolCallRequest(
                call_id=message.call_id,
                name="fs.read",
                arguments_json=json.dumps({"path": message.path}),
            )
            reply.resolve(await self.tools.run(call, turn_id="t1", turn=ctx))

        ctx.nursery.start_soon(run)


TENANT = "bench"
log = logging.getLogger("bench.tool_call")


async def policy_gate(system: ActorSystem, policy: str, scratch: Path) -> PolicyGate:
    """A policy cache holding a signed permissive bundle for the tenant ("on"), or none."""
    if policy == "off":
        log.warning("NO POLICY: measuring the tool path with policy off (development setting)")
        return PolicyGate(cache=None)
    key = generate_signing_key()
    folder = scratch / "bundles"
    folder.mkdir(exist_ok=True)
    allow = {
        "id": "read",
        "tool": "fs.read",
        "versions": "^1.0.0",
        "effect": "allow",
        "devices": ["local"],
        "paths": ["*.txt", "notes/**"],
    }
    document = {
        "iss": "bench",
        "aud": TENANT,
        "policy_id": "bench",
        "revision": 1,
        "rules": [allow],
    }
    (folder / f"{TENANT}.jws").write_text(sign_bundle(document, key, ttl_s=900))
    settings = PolicyCacheConfig(
        source=f"file:{folder}/{{tenant}}.jws", trusted_keys=(key.public_key(),)
    )
    cache = await system.spawn(
        ActorSpec(name="policy_cache", factory=lambda: PolicyCache(settings))
    )
    return PolicyGate(cache=cache)


async def tool_paths(
    system: ActorSystem, root: Path, audit: Path, outbox: Outbox, policies: Sequence[str]
) -> dict[str, SessionTools]:
    """The host's tool path for one session, once per policy setting, over one MCP server.

    Each ``SessionTools`` has offered its tools already (as a turn does before a call).
    """
    audit_ref = await system.spawn(
        ActorSpec(
            name="audit_writer",
            factory=lambda: AuditWriter(
                AuditConfig(path=audit, fsync=FsyncPolicy(every_records=64, every_s=0.5))
            ),
        )
    )
    client = await system.spawn(
        mcp_client_spec(
            "mcp_server",
            McpClientConfig(command=McpServerCommand(argv=[*SERVER, str(root)])),
        )
    )
    link = StdioToolLink(client)
    gateway_ref = await system.spawn(
        ActorSpec(name="tool_gateway", factory=lambda: ToolGateway(link=link))
    )
    session = SessionContext(
        session_id="bench",
        tenant=TENANT,
        user="u",
        device_id="local",
        model="mock",
        limits=SessionLimits(max_turn_ms=60_000, token_budget=10**9, max_message_bytes=1),
    )
    paths = {}
    for policy in policies:
        tools = SessionTools(
            session=session,
            outbox=outbox,
            gateway=gateway_ref,
            link=link,
            audit=audit_ref,
            config=ToolsConfig(),
            policy=await policy_gate(system, policy, audit.parent),
        )
        await tools.offered_tools()
        paths[policy] = tools
    return paths


async def measure(
    concurrency: int, calls: int, root: Path, audit: Path, *, policy: str = "on"
) -> dict[str, Any]:
    direct: list[float] = []
    gateway: list[float] = []
    async with trio.open_nursery() as nursery:
        process = await nursery.start(
            functools.partial(
                trio.run_process,
                [*SERVER, str(root)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                check=False,
            )
        )
        bare = BareClient(process)
        nursery.start_soon(bare.reader)
        await bare.initialize()
        async with open_actor_system("bench") as system:
            outbox, events = open_outbox()
            tools = (await tool_paths(system, root, audit, outbox, (policy,)))[policy]
            turn = await system.spawn(ActorSpec(name="turn", factory=lambda: BenchTurn(tools)))

            async def drain() -> None:
                async for _ in events:
                    pass

            nursery.start_soon(drain)
            ids = itertools.count()

            async def worker(count: int) -> None:
                for _ in range(count):
                    start = time.perf_counter()
                    await bare.read("data.txt")
                    direct.append((time.perf_counter() - start) * 1000)
                    start = time.perf_counter()
                    result = await turn.ask(
                        RunCall(call_id=f"c{next(ids)}", path="data.txt"), timeout=30
                    )
                    gateway.append((time.perf_counter() - start) * 1000)
                    assert json.loads(result)["bytesReturned"] == FILE_BYTES

            # Warm up both paths (imports, caches, first validator compile).
            await worker(5)
            direct.clear()
            gateway.clear()
            async with trio.open_nursery() as workers:
                for _ in range(concurrency):
                    workers.start_soon(worker, calls // concurrency)
            outbox.close()
        if process.stdin is not None:
            await process.stdin.aclose()
        nursery.cancel_scope.cancel()
    return {
        "concurrency": concurrency,
        "policy": policy,
        "calls": len(gateway),
        "direct_ms_p50": round(percentile(direct, 50), 3),
        "direct_ms_p95": round(percentile(direct, 95), 3),
        "direct_ms_p99": round(percentile(direct, 99), 3),
        "gateway_ms_p50": round(percentile(gateway, 50), 3),
        "gateway_ms_p95": round(percentile(gateway, 95), 3),
        "gateway_ms_p99": round(percentile(gateway, 99), 3),
        "overhead_ms_p50": round(percentile(gateway, 50) - percentile(direct, 50), 3),
        "overhead_ms_p95": round(percentile(gateway, 95) - percentile(direct, 95), 3),
        "overhead_ms_p99": round(percentile(gateway, 99) - percentile(direct, 99), 3),
    }


def count_receipts(audit: Path) -> int:
    return sum(
        1 for line in audit.read_text().splitlines() if json.loads(line)["kind"] == "tool.receipt"
    )


async def run(quick: bool, policy: str = "on") -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="zl-bench-tools-") as scratch:
        root = Path(scratch) / "root"
        root.mkdir()
        (root / "data.txt").write_text("z" * FILE_BYTES)
        runs = []
        total_calls = 0
        receipts = 0
        for concurrency, calls in ((1, 200 if quick else 1000), (50, 500 if quick else 2500)):
            audit = Path(scratch) / f"audit-{concurrency}.jsonl"
            progress(f"concurrency {concurrency}: {calls} calls each way ...")
            result = await measure(concurrency, calls, root, audit, policy=policy)
            written = count_receipts(audit)
            progress(
                f"  overhead p50 {result['overhead_ms_p50']} ms, p95 {result['overhead_ms_p95']} "
                f"ms, p99 {result['overhead_ms_p99']} ms; receipts {written}"
            )
            runs.append(result)
            # Warm-up calls write receipts too: count those of the measured calls plus warm-up.
            total_calls += result["calls"] + 5
            receipts += written
    return {
        "bench": "tool_call",
        "quick": quick,
        "policy": policy,
        "file_bytes": FILE_BYTES,
        "runs": runs,
        "overhead_ms_p50": runs[0]["overhead_ms_p50"],
        "overhead_ms_p95": runs[0]["overhead_ms_p95"],
        "overhead_ms_p99": runs[0]["overhead_ms_p99"],
        "calls": total_calls,
        "receipts_written": receipts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer calls; under 60 s")
    parser.add_argument(
        "--policy", choices=["on", "off"], default="on", help="off: development setting, logged"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    emit(trio.run(run, args.quick, args.policy))


if __name__ == "__main__":
    main()
