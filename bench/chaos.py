"""``python -m bench.chaos``: break the system on purpose and check it fails well.

Each scenario is one small async function that gets a fresh world of real processes
(``bench._chaos_world``: a host, and for the relay path a relay shard, a bridge and a
loopback TCP fault proxy between host and relay), breaks one thing with actor fault
injection (``POST /debug/faults``), a real ``kill -9``, a network fault, a misbehaving
upstream or MCP server, a full disk, or a policy bundle that runs out, and reports:

- **typed**: the client got the expected typed error (or, where the fault should be
  absorbed, a normal answer) within the scenario's deadline;
- **receipt**: the tool call that was hit left its receipt in the audit (``n/a`` where no
  tool call is involved; for the full disk, none can be written: the call must fail
  closed instead, and receipts must resume after);
- **recovery**: seconds from the fault's end to the first good turn;
- **hung**: sessions left behind once every client is gone (must be 0).

A scenario passes when all of that holds. The output is a table and, last, one JSON line.
``--only a,b`` runs some; ``--quick`` runs the ones the test suite runs.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import trio

from actors.provider.fake_upstream import Fault, Script

from ._chaos_world import Signed, TurnResult, World, open_world
from ._fault_proxy import Mode

#: How long the system may take to recover from a fault before the scenario fails.
RECOVERY_TIMEOUT_S = 30.0


@attrs.define
class Outcome:
    """One scenario's row of the table (see the module docstring)."""

    name: str
    fault: str
    typed: bool = False
    code: str | None = None
    within_s: float | None = None
    deadline_s: float = 0.0
    receipt: str = "n/a"
    recovery_s: float | None = None
    hung: int = 0
    note: str = ""

    @property
    def passed(self) -> bool:
        receipt_ok = self.receipt in ("yes", "n/a", "withheld")
        return self.typed and receipt_ok and self.recovery_s is not None and self.hung == 0

    def to_json(self) -> dict[str, Any]:
        return {**attrs.asdict(self), "passed": self.passed}


Scenario = Callable[[World, Outcome], Awaitable[None]]
SCENARIOS: dict[str, tuple[str, Scenario, dict[str, Any]]] = {}


def scenario(name: str, fault: str, **world: Any) -> Callable[[Scenario], Scenario]:
    """Register a scenario: a name, what it breaks, and how its world is built."""

    def register(function: Scenario) -> Scenario:
        SCENARIOS[name] = (fault, function, world)
        return function

    return register


def receipt_for(world: World, before: int, expected: str | None = None) -> str:
    """Whether a receipt came after the first ``before`` (with outcome ``expected``)."""
    new = world.receipts()[before:]
    if not new:
        return "no"
    if expected is not None and new[0]["outcome"] != expected:
        return f"no ({new[0]['outcome']})"
    return "yes"


def expect(outcome: Outcome, result: Any, codes: tuple[str, ...], deadline_s: float) -> None:
    outcome.code = result.typed_code or result.rpc_error
    outcome.within_s = round(result.elapsed_s, 2)
    outcome.deadline_s = deadline_s
    outcome.typed = result.typed_code in codes and result.elapsed_s <= deadline_s


# --- the provider ----------------------------------------------------------------------

PROVIDER = {
    "ZL_PROVIDER__KIND": "openai",
    "ZL_PROVIDER__DEFAULT_MODEL": "fake-model",
    "ZL_PROVIDER__OPENAI__FIRST_TOKEN_TIMEOUT_S": "2",
    "ZL_PROVIDER__OPENAI__IDLE_TIMEOUT_S": "2",
    "ZL_PROVIDER__OPENAI__RETRY__MAX_ATTEMPTS": "2",
    "ZL_PROVIDER__OPENAI__RETRY__BASE_DELAY_S": "0.05",
    "ZL_PROVIDER__BREAKER__MIN_CALLS": "3",
    "ZL_PROVIDER__BREAKER__COOL_DOWN_S": "1",
}


async def provider_host(world: World) -> None:
    await world.start_host(ZL_PROVIDER__OPENAI__BASE_URL=world.upstream.url, **PROVIDER)


@scenario("provider_5xx_storm", "every upstream request answers 503 (8 sessions at once)")
async def provider_5xx_storm(world: World, outcome: Outcome) -> None:
    await provider_host(world)
    world.upstream.default = Script(status=503)
    results: list[Any] = []

    async def one() -> None:
        results.append(await world.turn("hello", device=""))

    async with trio.open_nursery() as nursery:
        for _ in range(8):
            nursery.start_soon(one)
    slowest = max(results, key=lambda r: r.elapsed_s)
    expect(outcome, slowest, ("provider.unavailable",), deadline_s=10.0)
    outcome.typed = outcome.typed and all(
        r.typed_code in ("provider.unavailable",) for r in results
    )
    world.upstream.default = Script(text="back again")
    outcome.recovery_s = await world.until_ok("hello", device="", timeout_s=RECOVERY_TIMEOUT_S)


@scenario("provider_hang", "the upstream accepts the request and never answers")
async def provider_hang(world: World, outcome: Outcome) -> None:
    await provider_host(world)
    world.upstream.default = Script(fault=Fault.HANG_BEFORE_RESPONSE)
    expect(outcome, await world.turn("hello", device=""), ("provider.timeout",), deadline_s=10.0)
    world.upstream.default = Script(text="back again")
    outcome.recovery_s = await world.until_ok("hello", device="", timeout_s=RECOVERY_TIMEOUT_S)


# --- the MCP server (stdio) and actors -----------------------------------------------------


async def stdio_call(world: World, outcome: Outcome, path: str, codes: tuple[str, ...]) -> None:
    await world.start_host(**world.stdio_settings(), ZL_TOOLS__TIMEOUT_MS="1500")
    before = len(world.receipts())
    expect(outcome, await world.turn(f"read {path}"), codes, deadline_s=10.0)
    outcome.receipt = receipt_for(world, before)
    outcome.recovery_s = await world.until_ok("read fine.txt", timeout_s=RECOVERY_TIMEOUT_S)


@scenario("mcp_crash", "the MCP server process exits in the middle of a call")
async def mcp_crash(world: World, outcome: Outcome) -> None:
    await stdio_call(world, outcome, "crash", ("tool.unavailable",))


@scenario("mcp_hang", "the MCP server never answers a call")
async def mcp_hang(world: World, outcome: Outcome) -> None:
    await stdio_call(world, outcome, "hang", ("tool.timeout",))


@scenario("mcp_garbage", "the MCP server answers with lines that are not JSON-RPC")
async def mcp_garbage(world: World, outcome: Outcome) -> None:
    await stdio_call(world, outcome, "garbage", ("tool.failed", "tool.invalid_result"))


@scenario("tool_call_actor_crash", "fault injection crashes the tool call's actor mid-call")
async def tool_call_actor_crash(world: World, outcome: Outcome) -> None:
    await world.start_host(**world.stdio_settings(), ZL_TOOLS__TIMEOUT_MS="20000")
    before = len(world.receipts())
    async with trio.open_nursery() as nursery:
        results: list[Any] = []

        async def call() -> None:
            results.append(await world.turn("read slow"))

        nursery.start_soon(call)
        path = await world.find_actor("tool_call-")
        crashed_at = trio.current_time()
        await world.inject("crash", path)
    result = results[0]
    result.elapsed_s = trio.current_time() - crashed_at
    expect(outcome, result, ("internal", "tool.cancelled"), deadline_s=5.0)
    outcome.receipt = receipt_for(world, before)
    outcome.recovery_s = await world.until_ok("read fine.txt", timeout_s=RECOVERY_TIMEOUT_S)


@scenario("audit_disk_full", "the audit's disk is full (writes fail past the file's size)")
async def audit_disk_full(world: World, outcome: Outcome) -> None:
    await world.start_host(**world.stdio_settings())
    first = await world.turn("read fine.txt")  # the file exists and has a receipt
    before = len(world.receipts())
    world.limit_host_file_size(world.audit.stat().st_size)
    result = await world.turn("read secret.txt")
    expect(outcome, result, ("internal",), deadline_s=10.0)
    # Fail closed: no receipt can be written, and the result was not delivered either.
    outcome.receipt = "withheld" if receipt_for(world, before) == "no" else "written?"
    outcome.typed = outcome.typed and first.ok and result.delta_status == "internal"
    world.limit_host_file_size(None)
    outcome.recovery_s = await world.until_ok("read fine.txt", timeout_s=RECOVERY_TIMEOUT_S)
    outcome.note = f"host up: {world.host is not None and world.host.poll() is None}"
    if receipt_for(world, before) != "yes":
        outcome.recovery_s = None  # receipts did not resume


# --- policy ----------------------------------------------------------------------------------

#: The bundle in force at first: long enough for the host to start and every session to
#: make a few calls under it.
EXPIRING_BUNDLE_S = 8.0
#: Sessions streaming a tool call every turn while the bundle runs out.
POLICY_SESSIONS = 4
#: Between two turns of one session.
TURN_PAUSE_S = 0.1
#: How long after a turn is sent its refused call must have come back to the client.
REFUSAL_DEADLINE_S = 5.0


async def wait_for(check: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    """Until ``check()`` holds, at most ``timeout_s``. What it reads is changed by the client
    threads and other processes, which cannot set a Trio event: polling is the simple wait."""
    with trio.move_on_after(timeout_s):
        while not check():  # noqa: ASYNC110 - see above
            await trio.sleep(0.05)
        return
    raise RuntimeError(f"timed out after {timeout_s:g} s waiting until {what}")


def policy_verdict(
    outcome: Outcome,
    streams: list[list[TurnResult]],
    receipts: list[dict[str, Any]],
    *,
    first: Signed,
    fresh_at: float,
) -> None:
    """Fill ``outcome`` from what each session saw and the receipts.

    Typed: each session's first call sent past the first bundle's ``exp`` is refused
    ``policy.expired`` within ``REFUSAL_DEADLINE_S``, every call sent from then until the
    fresh bundle is too (a call allowed there is a fail-open), every turn still ends
    ``assistant_done`` and no session breaks. Receipt: one per call, each refused one
    ``denied`` with decision ``deny``, ``policy.expired`` and the first bundle's revision.
    Recovery: from publishing the fresh bundle to the last session's first allowed call.
    """
    turns = [turn for stream in streams for turn in stream]
    expired = [t for t in turns if first.expires_at <= t.sent_at < fresh_at]
    refused = [t for t in turns if t.delta_code == "policy.expired"]
    firsts = [next(t for t in s if t.sent_at >= first.expires_at) for s in streams]
    outcome.code = (
        "policy.expired"
        if all(t.delta_code == "policy.expired" for t in firsts)
        else (
            next(
                (t.typed_code or t.rpc_error for t in firsts if t.delta_code != "policy.expired"),
                None,
            )
        )
    )
    outcome.within_s = round(max(t.elapsed_s for t in firsts), 2)
    outcome.deadline_s = REFUSAL_DEADLINE_S
    fail_open = [t for t in expired if t.delta_code != "policy.expired"]
    outcome.typed = (
        outcome.code == "policy.expired"
        and outcome.within_s <= REFUSAL_DEADLINE_S
        and not fail_open
        # Text kept streaming: every turn ended as a turn, none broke its session.
        and all(t.kinds[-1:] == ["assistant_done"] and t.rpc_error is None for t in turns)
        and all(any(t.ok and t.sent_at < first.expires_at for t in s) for s in streams)
    )
    denied = [r for r in receipts if r["outcome"] == "denied"]
    outcome.receipt = (
        "yes"
        if len(receipts) == len(turns)
        and len(denied) == len(refused)
        and all(
            r["decision"] == "deny"
            and r["error_code"] == "policy.expired"
            and r["policy_revision"] == first.revision
            for r in denied
        )
        and all(r["decision"] == "allow" for r in receipts if r["outcome"] == "ok")
        else f"no ({len(receipts)} receipts for {len(turns)} calls, {len(denied)} denied)"
    )
    recovered = [next((t for t in s if t.ok and t.sent_at >= fresh_at), None) for s in streams]
    if all(t is not None for t in recovered):
        outcome.recovery_s = round(max(t.ended_at for t in recovered if t) - fresh_at, 2)
    lag = max(t.ended_at for t in firsts) - first.expires_at
    outcome.note = (
        f"{len(streams)} sessions, {len(turns)} turns: "
        f"{sum(t.ok and t.sent_at < first.expires_at for t in turns)} allowed before exp, "
        f"{len(refused)} refused policy.expired, {len(fail_open)} not refused past exp "
        f"(each session's first call past exp answered by exp + {lag:.2f} s); the expired "
        "bundle the control plane came back with was refused"
    )


@scenario(
    "policy_expiry_mid_stream",
    "the control plane is killed (kill -9) and the bundle in force expires under "
    f"{POLICY_SESSIONS} streaming sessions; it returns serving an expired bundle, then a fresh one",
)
async def policy_expiry_mid_stream(world: World, outcome: Outcome) -> None:
    await world.start_control_plane()
    first = world.write_policy(ttl_s=EXPIRING_BUNDLE_S)
    await world.start_host(**world.stdio_settings(), **world.control_plane_settings())
    before = len(world.receipts())
    stop = threading.Event()
    streams: list[list[TurnResult]] = [[] for _ in range(POLICY_SESSIONS)]
    fresh_at = float("inf")

    def each(check: Callable[[TurnResult], bool]) -> Callable[[], bool]:
        return lambda: all(any(check(t) for t in list(s)) for s in streams)

    try:
        async with trio.open_nursery() as nursery:
            for results in streams:
                nursery.start_soon(
                    functools.partial(
                        world.stream,
                        text="read fine.txt",
                        stop=stop,
                        results=results,
                        pause_s=TURN_PAUSE_S,
                    )
                )
            # Every session has made a call under the bundle: then the control plane dies,
            # and nothing fresh can come before the bundle runs out.
            await wait_for(each(lambda t: t.ok), timeout_s=EXPIRING_BUNDLE_S, what="calls ran")
            world.kill(world.control_plane_process)
            await wait_for(
                each(lambda t: t.sent_at >= first.expires_at + 1.0),
                timeout_s=first.expires_at - time.time() + RECOVERY_TIMEOUT_S,
                what="every session made a call past exp",
            )
            # It comes back serving a newer revision that has expired already: refused.
            world.write_policy(ttl_s=10, issued_at=time.time() - 60)
            await world.start_control_plane()
            await wait_for(
                lambda: "bundle rejected (expired): the bundle has expired" in world.host_log(),
                timeout_s=RECOVERY_TIMEOUT_S,
                what="the host refused the expired bundle",
            )
            seen = time.time()
            await wait_for(each(lambda t: t.sent_at > seen), timeout_s=10, what="more calls")
            # Then a fresh one.
            fresh_at = time.time()
            world.write_policy()
            await wait_for(
                each(lambda t: t.ok and t.sent_at >= fresh_at),
                timeout_s=RECOVERY_TIMEOUT_S,
                what="calls were allowed again",
            )
            stop.set()
    finally:
        stop.set()
    policy_verdict(outcome, streams, world.receipts()[before:], first=first, fresh_at=fresh_at)


# --- the relay path ------------------------------------------------------------------------


async def relay_world(world: World) -> None:
    await world.start_relay()
    world.start_bridge()
    await world.start_host(**world.relay_settings())
    if await world.until_ok("read fine.txt", timeout_s=RECOVERY_TIMEOUT_S) is None:
        raise RuntimeError("the relay path never worked")


async def mid_call(
    world: World, break_it: Callable[[], Awaitable[None] | None]
) -> tuple[Any, float]:
    """Start a slow call, break something once it runs; the result and when it broke."""
    results: list[Any] = []
    async with trio.open_nursery() as nursery:

        async def call() -> None:
            results.append(await world.turn("read slow"))

        nursery.start_soon(call)
        await world.find_actor("tool_call-")
        await trio.sleep(0.3)  # the call has reached the device
        broke_at = trio.current_time()
        maybe = break_it()
        if maybe is not None:
            await maybe
    results[0].elapsed_s = trio.current_time() - broke_at
    return results[0], broke_at


@scenario("bridge_kill_9", "the device's bridge is killed (kill -9) mid-call", relay=True)
async def bridge_kill_9(world: World, outcome: Outcome) -> None:
    await relay_world(world)
    before = len(world.receipts())
    result, _ = await mid_call(world, lambda: world.kill(world.bridge))
    expect(outcome, result, ("relay.device_offline",), deadline_s=5.0)
    outcome.receipt = receipt_for(world, before)
    world.start_bridge()
    outcome.recovery_s = await world.until_ok("read fine.txt", timeout_s=RECOVERY_TIMEOUT_S)


@scenario(
    "relay_kill_9_restart",
    "the relay shard is killed (kill -9) mid-call, then restarted",
    relay=True,
)
async def relay_kill_9_restart(world: World, outcome: Outcome) -> None:
    await relay_world(world)
    before = len(world.receipts())
    result, _ = await mid_call(world, lambda: world.kill(world.relay))
    expect(outcome, result, ("tool.unavailable", "relay.device_offline"), deadline_s=5.0)
    outcome.receipt = receipt_for(world, before)
    restarted = trio.current_time()
    await world.start_relay()
    recovery = await world.until_ok("read fine.txt", timeout_s=RECOVERY_TIMEOUT_S)
    outcome.recovery_s = None if recovery is None else round(trio.current_time() - restarted, 2)


@scenario("network_latency", "200 ms added each way between host and relay", relay=True, proxy=True)
async def network_latency(world: World, outcome: Outcome) -> None:
    await relay_world(world)
    assert world.proxy is not None
    before = len(world.receipts())
    world.proxy.mode, world.proxy.latency_s = Mode.LATENCY, 0.2
    result = await world.turn("read fine.txt")
    # Absorbed: a slower network is not an error.
    outcome.code = result.typed_code
    outcome.within_s, outcome.deadline_s = round(result.elapsed_s, 2), 10.0
    outcome.typed = result.ok and result.elapsed_s <= outcome.deadline_s
    outcome.receipt = receipt_for(world, before, "ok")
    world.proxy.mode = Mode.PASS
    outcome.recovery_s = await world.until_ok("read fine.txt", timeout_s=RECOVERY_TIMEOUT_S)


@scenario(
    "network_reset", "the host-relay connection is reset (RST) mid-call", relay=True, proxy=True
)
async def network_reset(world: World, outcome: Outcome) -> None:
    await relay_world(world)
    assert world.proxy is not None
    proxy = world.proxy
    before = len(world.receipts())

    def reset() -> None:
        proxy.reset()

    result, _ = await mid_call(world, reset)
    expect(outcome, result, ("tool.unavailable",), deadline_s=5.0)
    outcome.receipt = receipt_for(world, before)
    outcome.recovery_s = await world.until_ok("read fine.txt", timeout_s=RECOVERY_TIMEOUT_S)


@scenario(
    "network_blackhole",
    "host-relay traffic silently dropped mid-call, then restored",
    relay=True,
    proxy=True,
)
async def network_blackhole(world: World, outcome: Outcome) -> None:
    await relay_world(world)
    assert world.proxy is not None
    proxy = world.proxy
    before = len(world.receipts())

    def drop() -> None:
        proxy.mode = Mode.BLACKHOLE

    result, _ = await mid_call(world, drop)
    # The host's link hears nothing for three heartbeats and gives the call up.
    expect(outcome, result, ("tool.unavailable", "tool.timeout"), deadline_s=8.0)
    outcome.receipt = receipt_for(world, before)
    proxy.mode = Mode.PASS
    proxy.reset()  # what the black hole held open is gone; reconnections go through
    outcome.recovery_s = await world.until_ok("read fine.txt", timeout_s=RECOVERY_TIMEOUT_S)


#: What ``--quick`` (and the test suite) runs: one of each kind of fault, a few seconds each.
QUICK = ("mcp_crash", "tool_call_actor_crash", "audit_disk_full", "network_reset")


async def run_one(name: str, scratch: Path) -> Outcome:
    fault, function, options = SCENARIOS[name]
    outcome = Outcome(name=name, fault=fault)
    async with open_world(scratch, proxy_to_relay=bool(options.get("proxy"))) as world:
        try:
            with trio.fail_after(120):
                await function(world, outcome)
        except Exception as exc:  # a scenario that breaks is a failed row, not a crash
            outcome.note = f"{type(exc).__name__}: {exc}"[:200]
        outcome.hung = await world.hung_sessions() if world.host is not None else 0
    return outcome


def table(outcomes: list[Outcome]) -> str:
    rows = [
        ("scenario", "typed error (code, s / deadline)", "receipt", "recovery s", "hung", "pass")
    ]
    for o in outcomes:
        typed = f"{'yes' if o.typed else 'NO'} ({o.code or '-'}, {o.within_s} / {o.deadline_s})"
        recovery = "-" if o.recovery_s is None else f"{o.recovery_s}"
        rows.append(
            (o.name, typed, o.receipt, recovery, str(o.hung), "PASS" if o.passed else "FAIL")
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    for o in outcomes:
        if o.note:
            lines.append(f"  {o.name}: {o.note}")
    return "\n".join(lines)


async def run(names: list[str]) -> list[Outcome]:
    outcomes = []
    for name in names:
        with tempfile.TemporaryDirectory(prefix=f"zl-chaos-{name}-") as scratch:
            outcome = await run_one(name, Path(scratch))
        print(f"  {name}: {'PASS' if outcome.passed else 'FAIL'}", file=sys.stderr, flush=True)
        outcomes.append(outcome)
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--only", default="", help="comma-separated scenario names (default: all)")
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, (fault, _, _) in SCENARIOS.items():
            print(f"{name:<24} {fault}")
        return 0
    names = [n for n in args.only.split(",") if n] or (
        list(QUICK) if args.quick else list(SCENARIOS)
    )
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"bench.chaos: unknown scenario {', '.join(unknown)} (see --list)", file=sys.stderr)
        return 2
    outcomes = trio.run(run, names)
    print(table(outcomes))
    passed = sum(o.passed for o in outcomes)
    print(
        json.dumps(
            {
                "bench": "chaos",
                "scenarios": len(outcomes),
                "passed": passed,
                "results": [o.to_json() for o in outcomes],
            }
        )
    )
    return 0 if passed == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
