"""The roadmap's "100% of tool calls produce receipts", as a chaos run: 200 turns through the
relay and a device bridge (a real subprocess, killed and restarted now and then), each turn's
tool call ending a random way; afterwards the signed audit holds exactly one receipt per
call that started and one turn record per turn, and ``zl audit verify --key`` passes.

Outcomes: ok, denied (the tenant's signed policy allows no such path), timeout (the MCP
server never answers), server crash (it exits mid-call), bridge killed (``kill -9``
mid-call, then a new bridge), cancel (the client cancels the turn mid-call).
"""

from __future__ import annotations

import collections
import json
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import trio

from actors.audit import audit_main
from actors.relay import generate_signing_key, save_private_key, save_public_key
from contracts.generated import agent_pb2
from supervisors.host import AuditSection, SessionsSection, ToolsSection
from tests._policy import bearer, caller_token, make_test_policy
from tests.host.conftest import Conversation, cancel, host_config, kind, say, start_host
from tests.relay._support import HEARTBEAT_S, Bridge, Env, make_env, start_relay

ROGUE = Path(__file__).resolve().parents[1] / "tools" / "rogue_fs_server.py"
TENANT = "acme"
DEVICE = "laptop-chaos"
SESSIONS = 8
TURNS_PER_SESSION = 25
OUTCOMES = {"ok": 26, "denied": 14, "timeout": 18, "crash": 16, "cancel": 18, "bridge": 8}
PATHS = {
    "ok": "notes.txt",
    "denied": "secret.key",
    "timeout": "hang",
    "crash": "crash",
    "cancel": "hang",
    "bridge": "hang",
}
#: The tenant's policy: fs.read of these paths only (anything else is denied, and never
#: reaches the device).
CHAOS_RULES = (
    {
        "id": "chaos-reads",
        "tool": "fs.read",
        "versions": "*",
        "effect": "allow",
        "devices": ["*"],
        "paths": ["notes.txt", "hang", "crash"],
    },
)
TOOL_TIMEOUT_MS = 400
#: A new bridge process connects within this.
CONNECT_S = 60.0


class Device:
    """The device's bridge (with the rogue MCP server), killed and replaced on request."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.lock = threading.Lock()
        self.kills = 0
        self.bridge = self._start()

    def _start(self) -> Bridge:
        """A new bridge, once it is connected to the relay (its status line says so)."""
        status = self.env.tmp / f"bridge-status-{self.kills}.txt"
        bridge = Bridge(
            self.env,
            self.env.shards[0].url,
            TENANT,
            DEVICE,
            sys.executable,
            str(ROGUE),
            status_out=status,
        )
        deadline = time.monotonic() + CONNECT_S
        while "connected to" not in (status.read_text() if status.exists() else ""):
            if time.monotonic() > deadline or bridge.process.poll() is not None:
                raise RuntimeError(f"the bridge did not connect: {bridge.log.read_text()[-2000:]}")
            time.sleep(0.05)
        return bridge

    def kill_and_restart(self) -> None:
        with self.lock:
            self.bridge.kill()
            self.kills += 1
            self.bridge = self._start()

    def wait_online(self) -> None:
        """Wait while a kill and restart is in progress (so that the next turn meets the new
        bridge: each kill then costs the calls in flight, not every turn until it is back)."""
        with self.lock:
            pass

    def stop(self) -> None:
        self.bridge.stop()


def run_session(target: str, device: Device, seed: int) -> dict[str, Any]:
    """One session of TURNS_PER_SESSION turns; what the client saw."""
    rng = random.Random(seed)
    started: list[str] = []
    turns: list[str] = []
    outcomes: collections.Counter[str] = collections.Counter()
    with grpc.insecure_channel(target) as channel:
        talk = Conversation(channel, timeout_s=240, metadata=bearer(caller_token()))
        talk.send(
            agent_pb2.ChatRequest(
                start_session=agent_pb2.StartSession(tenant=TENANT, user="u1", device_id=DEVICE)
            )
        )
        session_id = talk.next_event().session_started.session_id
        for _ in range(TURNS_PER_SESSION):
            device.wait_online()
            outcome = rng.choices(list(OUTCOMES), weights=list(OUTCOMES.values()))[0]
            talk.send(say(f"read {PATHS[outcome]}"))
            turn_id = ""
            while True:
                event = talk.next_event()
                turn_id = turn_id or event.turn_id
                if kind(event) == "tool_call_started":
                    started.append(
                        f"{session_id}.{event.turn_id}.{event.tool_call_started.call_id}"
                    )
                    outcomes[outcome] += 1
                    if outcome == "cancel":
                        talk.send(cancel())
                    elif outcome == "bridge":
                        device.kill_and_restart()
                if kind(event) in ("assistant_done", "error"):
                    break
            turns.append(f"{session_id}.{turn_id}")
        talk.close()
        talk.rest()
    return {"started": started, "turns": turns, "outcomes": outcomes}


class TestEveryCallHasAReceipt:
    """200 turns of chaos: one receipt per started call, one record per turn, a valid audit."""

    async def test_chaos_run(self, tmp_path: Path) -> None:
        env = make_env(tmp_path, n_shards=1)
        key = generate_signing_key()
        private, public = tmp_path / "audit.key", tmp_path / "audit.pub"
        save_private_key(key, private)
        save_public_key(key.public_key(), public)
        token = tmp_path / "host.jwt"
        token.write_text(env.host_token(TENANT))
        audit = tmp_path / "audit.jsonl"
        policy = make_test_policy(tmp_path)
        policy.write(TENANT, rules=CHAOS_RULES)
        config = host_config(
            tmp_path,
            tls=False,
            tools=ToolsSection(
                mode="relay",
                relay_shards=[f"{env.shards[0].shard_id}={env.shards[0].host_url}"],
                relay_token_file=str(token),
                relay_ca=str(env.ca),
                relay_heartbeat_s=HEARTBEAT_S,
                timeout_ms=TOOL_TIMEOUT_MS,
            ),
            audit=AuditSection(path=str(audit), signing_key=str(private), checkpoint_every=50),
            policy=policy.section(),
            sessions=SessionsSection(stop_grace_s=5.0),
        )
        results: list[dict[str, Any]] = []
        async with trio.open_nursery() as nursery:
            _, relay_scope = await start_relay(nursery, env.config(env.shards[0].shard_id))
            device = await trio.to_thread.run_sync(Device, env)
            try:
                host = await start_host(nursery, config)
                with trio.fail_after(300):
                    async with trio.open_nursery() as sessions:
                        for seed in range(SESSIONS):

                            async def one(seed: int = seed) -> None:
                                results.append(
                                    await trio.to_thread.run_sync(
                                        run_session, host.target, device, seed
                                    )
                                )

                            sessions.start_soon(one)
                host.shutdown.set()
            finally:
                device.stop()
            relay_scope.cancel()
        started = [call for result in results for call in result["started"]]
        turns = [turn for result in results for turn in result["turns"]]
        outcomes = sum((r["outcomes"] for r in results), collections.Counter())
        assert len(turns) == SESSIONS * TURNS_PER_SESSION == 200
        # The chaos happened: every way for a call to end was taken more than once.
        assert all(outcomes[name] >= 2 for name in OUTCOMES), outcomes
        assert device.kills >= 2
        records = [json.loads(line) for line in audit.read_text().splitlines()]
        receipts = [r["payload"] for r in records if r["kind"] == "tool.receipt"]
        summaries = [r["payload"] for r in records if r["kind"] == "turn.summary"]
        receipt_calls = collections.Counter(r["call_id"] for r in receipts)
        assert set(receipt_calls) == set(started)
        assert all(count == 1 for count in receipt_calls.values()), receipt_calls.most_common(3)
        assert len(receipts) == len(started)
        turn_records = collections.Counter(f"{s['session_id']}.{s['turn_id']}" for s in summaries)
        assert set(turn_records) == set(turns)
        assert all(count == 1 for count in turn_records.values())
        receipt_ids = {r["receipt_id"] for r in receipts}
        assert {rid for s in summaries for rid in s["receipt_ids"]} == receipt_ids
        by_outcome = collections.Counter(r["outcome"] for r in receipts)
        codes = collections.Counter(r["error_code"] for r in receipts)
        assert {"ok", "denied", "timeout", "cancelled", "error"} <= set(by_outcome), codes
        assert codes["tool.denied"] >= 2, codes
        assert codes["relay.device_offline"] >= 2, codes  # bridge kills cost calls in flight
        assert audit_main(["verify", str(audit), "--key", str(public)]) == 0
