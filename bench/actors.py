"""Benchmark the actor runtime against bare Trio channels in the same run.

    python -m bench.actors [--quick] [--rounds N]

The last line is one JSON object: throughput of ``tell`` and of a bare memory channel
(and their ratio), ``ask`` round trips against a bare request/reply over two channels,
spawn+stop cost per actor, and the memory one idle actor holds (10,000 of them).
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from typing import Any

import attrs
import trio

from zl_actors import (
    Actor,
    ActorContext,
    ActorSpec,
    Request,
    Restart,
    SupervisorSpec,
    open_actor_system,
)

from ._stats import emit, median, percentile, progress

# Same capacity for the actor's mailbox and the bare channel, so that both pay the same
# back-pressure; 64 is the runtime's default mailbox.
CAPACITY = 64
IDLE_ACTORS = 10_000


@attrs.frozen(kw_only=True)
class Tick:
    pass


@attrs.frozen(kw_only=True)
class Ping(Request[int]):
    pass


class Sink(Actor[Tick | Ping]):
    mailbox_capacity = CAPACITY

    def __init__(self) -> None:
        self.count = 0

    async def handle(self, message: Tick | Ping, ctx: ActorContext[Tick | Ping]) -> int | None:
        self.count += 1
        if isinstance(message, Ping):
            return self.count
        return None


class Idle(Actor[Tick]):
    mailbox_capacity = 1

    async def handle(self, message: Tick, ctx: ActorContext[Tick]) -> None:
        return None


async def raw_throughput(messages: int) -> float:
    send, receive = trio.open_memory_channel[Tick](CAPACITY)
    count = 0

    async def consume() -> None:
        nonlocal count
        async for _ in receive:
            count += 1

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        tick = Tick()
        async with send:
            for _ in range(messages):
                await send.send(tick)
    elapsed = time.perf_counter() - start
    assert count == messages
    return messages / elapsed


async def tell_throughput(messages: int) -> float:
    async with open_actor_system("bench") as system:
        ref = await system.spawn(ActorSpec(name="sink", factory=Sink))
        tick = Tick()
        start = time.perf_counter()
        for _ in range(messages):
            await ref.send(tick)
        handled = await ref.ask(Ping(), timeout=60)
        elapsed = time.perf_counter() - start
    assert handled == messages + 1
    return messages / elapsed


async def raw_rtt(samples: int) -> list[float]:
    req_send, req_recv = trio.open_memory_channel[Ping](CAPACITY)
    rep_send, rep_recv = trio.open_memory_channel[int](1)
    rtts: list[float] = []

    async def server() -> None:
        count = 0
        async for _ in req_recv:
            count += 1
            await rep_send.send(count)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server)
        ping = Ping()
        for _ in range(samples):
            start = time.perf_counter_ns()
            await req_send.send(ping)
            await rep_recv.receive()
            rtts.append((time.perf_counter_ns() - start) / 1000)
        await req_send.aclose()
    return rtts


async def ask_rtt(samples: int) -> list[float]:
    rtts: list[float] = []
    async with open_actor_system("bench") as system:
        ref = await system.spawn(ActorSpec(name="sink", factory=Sink))
        ping = Ping()
        for _ in range(samples):
            start = time.perf_counter_ns()
            await ref.ask(ping)
            rtts.append((time.perf_counter_ns() - start) / 1000)
    return rtts


async def spawn_stop(actors: int) -> float:
    async with open_actor_system("bench", max_children=4) as system:
        sup = await system.spawn(SupervisorSpec(name="calls", max_children=actors))
        spec_names = [f"a{index}" for index in range(actors)]
        start = time.perf_counter()
        for name in spec_names:
            await sup.start_child(ActorSpec(name=name, factory=Idle, restart=Restart.TEMPORARY))
        for name in reversed(spec_names):
            await sup.stop_child(name)
        elapsed = time.perf_counter() - start
    return elapsed / actors * 1e6


async def idle_bytes(actors: int) -> float:
    async with open_actor_system("bench") as system:
        sup = await system.spawn(SupervisorSpec(name="idle", max_children=actors + 1))
        # Warm up allocator caches and lazily created objects with one actor.
        await sup.start_child(ActorSpec(name="warm", factory=Idle, restart=Restart.TEMPORARY))
        gc.collect()
        tracemalloc.start()
        before, _ = tracemalloc.get_traced_memory()
        for index in range(actors):
            await sup.start_child(
                ActorSpec(name=f"i{index}", factory=Idle, restart=Restart.TEMPORARY)
            )
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return (after - before) / actors


async def run(quick: bool, rounds: int) -> dict[str, Any]:
    messages = 20_000 if quick else 200_000
    rtt_samples = 5_000 if quick else 50_000
    spawns = 1_000 if quick else 5_000
    tell: list[float] = []
    raw: list[float] = []
    ratios: list[float] = []
    for index in range(rounds):
        # Interleaved so that both see the same machine load.
        raw_rate = await raw_throughput(messages)
        tell_rate = await tell_throughput(messages)
        raw.append(raw_rate)
        tell.append(tell_rate)
        ratios.append(tell_rate / raw_rate)
        progress(
            f"round {index + 1}/{rounds}: raw {raw_rate:,.0f} msg/s, tell {tell_rate:,.0f} msg/s"
        )
    raw_rtts: list[float] = []
    ask_rtts: list[float] = []
    for _ in range(rounds):
        raw_rtts += await raw_rtt(rtt_samples)
        ask_rtts += await ask_rtt(rtt_samples)
    progress(f"ask rtt p50 {median(ask_rtts):.1f} us, raw rtt p50 {median(raw_rtts):.1f} us")
    spawn_costs = [await spawn_stop(spawns) for _ in range(rounds)]
    progress(f"spawn+stop {median(spawn_costs):.1f} us per actor")
    idle = await idle_bytes(IDLE_ACTORS)
    progress(f"idle actor {idle:,.0f} bytes ({IDLE_ACTORS:,} actors)")
    return {
        "bench": "actors",
        "quick": quick,
        "rounds": rounds,
        "messages_per_round": messages,
        "tell_msgs_per_s": round(median(tell)),
        "raw_channel_msgs_per_s": round(median(raw)),
        "tell_ratio": round(median(ratios), 3),
        "ask_rtt_us_p50": round(median(ask_rtts), 2),
        "ask_rtt_us_p99": round(percentile(ask_rtts, 99), 2),
        "raw_rtt_us_p50": round(median(raw_rtts), 2),
        "raw_rtt_us_p99": round(percentile(raw_rtts, 99), 2),
        "ask_to_raw_rtt_ratio_p50": round(median(ask_rtts) / median(raw_rtts), 3),
        "spawn_stop_us_per_actor": round(median(spawn_costs), 2),
        "idle_actor_bytes": round(idle),
        "idle_actors": IDLE_ACTORS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller runs; finishes in < 30 s")
    parser.add_argument("--rounds", type=int, default=None, help="repetitions (default 3, quick 3)")
    args = parser.parse_args()
    rounds = args.rounds or 3
    emit(trio.run(run, args.quick, rounds))


if __name__ == "__main__":
    main()
