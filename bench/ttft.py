"""Time to first token and streaming smoothness of the host under concurrent sessions.

    python -m bench.ttft [--quick]

The host runs as its own process (mock provider, first-token delay 50 ms); this process
is the load generator (the standard grpcio client, asyncio flavour). For each run, every
session starts (ramped over one second); once all are open, each sends its turns one
after another, the first at a random offset so the load is even. Per turn we record the
time from sending the message to the first delta (TTFT) and the gaps between deltas. The mock's own
delay and pace are subtracted, so ``added_*`` is what the host (and the client library)
add. The last line is one JSON object with a ``runs`` list.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import threading
import time
from typing import Any

import attrs
import grpc
import grpc.aio

from contracts.generated import agent_pb2

from ._host_process import HostProcess, baseline_process, host_process, otlp_sink
from ._proc import core_sets, pin_load_generator
from ._stats import emit, median, percentile, progress

FIRST_TOKEN_DELAY_MS = 50.0
STREAM_CHAT = "/zl.agent.v0.Agent/StreamChat"
# Streams share a few HTTP/2 connections, as a BFF's pool would.
CHANNELS = 4
# Sessions start spread over this long, so that the run measures steady load, not a stampede.
RAMP_S = 1.0


@attrs.frozen(kw_only=True)
class RunSpec:
    concurrency: int
    tokens_per_s: float
    answer_tokens: int
    turns: int


@attrs.define
class Samples:
    ttft_ms: list[float] = attrs.Factory(list)
    gaps_ms: list[float] = attrs.Factory(list)
    tokens: int = 0
    errors: int = 0


async def one_session(
    channel: grpc.aio.Channel,
    spec: RunSpec,
    samples: Samples,
    start_delay: float,
    all_started: asyncio.Barrier,
    turn_offset: float,
    metadata: tuple[tuple[str, str], ...] | None = None,
) -> None:
    """Start a session (ramped), wait until every session has started, then run turns.

    Only the turns are measured: with every session open, the host is at the run's
    concurrency for the whole measurement.
    """
    await asyncio.sleep(start_delay)
    call = channel.stream_stream(
        STREAM_CHAT,
        request_serializer=agent_pb2.ChatRequest.SerializeToString,
        response_deserializer=agent_pb2.ChatEvent.FromString,
    )(timeout=300, metadata=metadata)
    try:
        await call.write(
            agent_pb2.ChatRequest(start_session=agent_pb2.StartSession(tenant="bench", user="u"))
        )
        started = await call.read()
        ok = started.WhichOneof("event") == "session_started"
        await all_started.wait()
        if not ok:
            samples.errors += 1
            return
        # Turns start spread over one turn's length, so that the load is even.
        await asyncio.sleep(turn_offset)
        for turn in range(spec.turns):
            sent = time.perf_counter()
            await call.write(
                agent_pb2.ChatRequest(user_message=agent_pb2.UserMessage(text=f"turn {turn}"))
            )
            last: float | None = None
            while True:
                event = await call.read()
                now = time.perf_counter()
                kind = event.WhichOneof("event")
                if kind == "assistant_delta":
                    pieces = max(1, len(event.assistant_delta.text.split()))
                    samples.tokens += pieces
                    if last is None:
                        samples.ttft_ms.append((now - sent) * 1000)
                    else:
                        # A merged delta carries several tokens: its gap covers them all.
                        samples.gaps_ms.append((now - last) * 1000 / pieces)
                    last = now
                elif kind == "assistant_done":
                    break
                else:
                    samples.errors += 1
                    return
        await call.done_writing()
        while await call.read() is not grpc.aio.EOF:
            pass
    except grpc.aio.AioRpcError:
        samples.errors += 1


def open_channel(host: HostProcess) -> grpc.aio.Channel:
    """A channel of its own (no shared subchannel) to the host, over TLS when it serves TLS."""
    target = f"127.0.0.1:{host.grpc_port}"
    options: list[tuple[str, str | int]] = [("grpc.use_local_subchannel_pool", 1)]
    if host.ca_cert is None:
        return grpc.aio.insecure_channel(target, options=options)
    credentials = grpc.ssl_channel_credentials(root_certificates=host.ca_cert.read_bytes())
    # The development certificate names "localhost"; the connection goes to its address.
    options.append(("grpc.ssl_target_name_override", "localhost"))
    return grpc.aio.secure_channel(target, credentials, options=options)


async def run_load(host: HostProcess, spec: RunSpec) -> tuple[Samples, float, float, float]:
    samples = Samples()
    peak_rss = [host.rss_mb()]
    stop = threading.Event()

    def watch_memory() -> None:
        while not stop.wait(0.2):
            peak_rss.append(host.rss_mb())

    watcher = threading.Thread(target=watch_memory, daemon=True)
    watcher.start()
    channels = [open_channel(host) for _ in range(CHANNELS)]
    token = host.caller_token
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    all_started = asyncio.Barrier(spec.concurrency)
    turn_s = FIRST_TOKEN_DELAY_MS / 1000 + spec.answer_tokens / spec.tokens_per_s
    rng = random.Random(1)
    began = time.perf_counter()
    cpu_before = host.cpu_s()
    try:
        await asyncio.gather(
            *(
                one_session(
                    channels[index % CHANNELS],
                    spec,
                    samples,
                    RAMP_S * index / max(1, spec.concurrency),
                    all_started,
                    rng.uniform(0, turn_s),
                    metadata,
                )
                for index in range(spec.concurrency)
            )
        )
    finally:
        elapsed = time.perf_counter() - began
        cpu_pct = 100 * (host.cpu_s() - cpu_before) / elapsed
        stop.set()
        watcher.join()
        for channel in channels:
            await channel.close()
    return samples, elapsed, max(peak_rss), cpu_pct


def run(spec: RunSpec, *, tls: bool = False) -> dict[str, Any]:
    settings = {
        "ZL_PROVIDER__MOCK__FIRST_TOKEN_DELAY_MS": str(FIRST_TOKEN_DELAY_MS),
        "ZL_PROVIDER__MOCK__TOKENS_PER_S": str(spec.tokens_per_s),
        "ZL_PROVIDER__MOCK__ANSWER_TOKENS": str(spec.answer_tokens),
        "ZL_SESSIONS__MAX_SESSIONS": str(max(2000, spec.concurrency * 2)),
    }
    with host_process(settings, tls=tls) as host:
        samples, elapsed, rss, cpu_pct = asyncio.run(run_load(host, spec))
    with baseline_process(
        first_token_delay_ms=FIRST_TOKEN_DELAY_MS,
        tokens_per_s=spec.tokens_per_s,
        answer_tokens=spec.answer_tokens,
        tls=tls,
    ) as baseline_host:
        baseline, baseline_elapsed, _, baseline_cpu_pct = asyncio.run(run_load(baseline_host, spec))
    host_us = cpu_us_per_token(cpu_pct, elapsed, samples.tokens)
    baseline_us = cpu_us_per_token(baseline_cpu_pct, baseline_elapsed, baseline.tokens)
    pace_ms = 1000 / spec.tokens_per_s
    added_gaps = [gap - pace_ms for gap in samples.gaps_ms]
    expected_turns = spec.concurrency * spec.turns
    return {
        "concurrency": spec.concurrency,
        "tokens_per_s": spec.tokens_per_s,
        "turns": len(samples.ttft_ms),
        "turns_expected": expected_turns,
        "delivered_tokens_per_s": round(samples.tokens / elapsed, 1),
        "ttft_ms_p50": round(median(samples.ttft_ms), 2),
        "ttft_ms_p95": round(percentile(samples.ttft_ms, 95), 2),
        "ttft_ms_p99": round(percentile(samples.ttft_ms, 99), 2),
        "added_ttft_ms_p50": round(median(samples.ttft_ms) - FIRST_TOKEN_DELAY_MS, 2),
        "added_ttft_ms_p95": round(percentile(samples.ttft_ms, 95) - FIRST_TOKEN_DELAY_MS, 2),
        "added_gap_ms_p50": round(median(added_gaps), 2),
        "added_gap_ms_p99": round(percentile(added_gaps, 99), 2),
        "errors": samples.errors + (expected_turns - len(samples.ttft_ms)),
        # The same load against grpcio's C-core server with no actors in between, in the same
        # run: the host's own share is the difference (robust to a busy machine).
        "baseline_ttft_ms_p50": round(median(baseline.ttft_ms), 2),
        "baseline_ttft_ms_p95": round(percentile(baseline.ttft_ms, 95), 2),
        "host_minus_baseline_ttft_ms_p95": round(
            percentile(samples.ttft_ms, 95) - percentile(baseline.ttft_ms, 95), 2
        ),
        "baseline_gap_ms_p99": round(percentile(baseline.gaps_ms, 99) - pace_ms, 2),
        "server_rss_mb": round(rss, 1),
        "server_cpu_pct": round(cpu_pct, 1),
        # CPU per streamed token, from /proc: the host's, and grpcio's C-core baseline server's
        # under the same load in the same run (each alone on the server core).
        "server_cpu_us_per_token": round(host_us, 1),
        "baseline_cpu_pct": round(baseline_cpu_pct, 1),
        "baseline_cpu_us_per_token": round(baseline_us, 1),
        "server_over_baseline_cpu_per_token": round(host_us / baseline_us, 2)
        if baseline_us
        else 0.0,
    }


WARM_UP = RunSpec(concurrency=20, tokens_per_s=50, answer_tokens=25, turns=2)


def telemetry_cost(rounds: int, spec: RunSpec) -> dict[str, Any]:
    """CPU per token of the host with telemetry off and on, alternating in the same run.

    "on" exports spans and metrics by OTLP/HTTP protobuf to a sink process (as to a
    Collector) and keeps the /metrics reader; "off" exports nothing and keeps no metrics
    (trace context still propagates); "metrics_only" is the default configuration
    (``exporter = "none"``: no spans, but /metrics kept). The audit is written in every
    mode. The host is pinned to the server cores, the load generator and the sink to the
    others (``_proc.core_sets``); CPU time comes from /proc. Each round runs every mode back
    to back, in a rotating order, and the increase is also given per round (robust to a
    machine whose load drifts between rounds).
    """
    _, load_cores = core_sets()
    pin_load_generator()
    base = {
        "ZL_PROVIDER__MOCK__FIRST_TOKEN_DELAY_MS": str(FIRST_TOKEN_DELAY_MS),
        "ZL_PROVIDER__MOCK__TOKENS_PER_S": str(spec.tokens_per_s),
        "ZL_PROVIDER__MOCK__ANSWER_TOKENS": str(spec.answer_tokens),
        "ZL_SESSIONS__MAX_SESSIONS": str(max(2000, spec.concurrency * 2)),
    }
    names = ("off", "metrics_only", "on")
    figures: dict[str, list[float]] = {name: [] for name in names}
    ttft: dict[str, list[float]] = {name: [] for name in names}
    with otlp_sink(cpus=load_cores) as sink:
        modes = {
            "off": {"ZL_TELEMETRY__EXPORTER": "none", "ZL_TELEMETRY__PROMETHEUS": "false"},
            "metrics_only": {"ZL_TELEMETRY__EXPORTER": "none", "ZL_TELEMETRY__PROMETHEUS": "true"},
            "on": {
                "ZL_TELEMETRY__EXPORTER": "otlp",
                "ZL_TELEMETRY__OTLP_ENDPOINT": sink,
                "ZL_TELEMETRY__METRIC_INTERVAL_S": "5",
                "ZL_TELEMETRY__PROMETHEUS": "true",
            },
        }
        for round_ in range(rounds):
            order = names[round_ % 3 :] + names[: round_ % 3]
            for mode in order:
                with host_process({**base, **modes[mode]}) as host:
                    # A short load first: one-time costs (lazy imports, first connections,
                    # caches) are not what a token costs.
                    asyncio.run(run_load(host, WARM_UP))
                    cpu_before = host.cpu_s()
                    samples, _, _, _ = asyncio.run(run_load(host, spec))
                    cpu = host.cpu_s() - cpu_before
                if samples.errors or not samples.tokens:
                    raise RuntimeError(f"telemetry {mode}: {samples.errors} errors")
                figures[mode].append(cpu * 1e6 / samples.tokens)
                ttft[mode].append(percentile(samples.ttft_ms, 95))
                progress(f"  round {round_ + 1} {mode}: {figures[mode][-1]:.1f} µs/token")

    def increase(base_mode: str) -> list[float]:
        return [100 * (b - a) / a for a, b in zip(figures[base_mode], figures["on"], strict=True)]

    result: dict[str, Any] = {"concurrency": spec.concurrency, "rounds": rounds}
    for name in names:
        result[f"host_cpu_us_per_token_{name}"] = [round(v, 2) for v in figures[name]]
        result[f"host_cpu_us_per_token_{name}_median"] = round(median(figures[name]), 2)
        result[f"ttft_ms_p95_{name}_median"] = round(median(ttft[name]), 2)
    for base_mode in ("off", "metrics_only"):
        paired = increase(base_mode)
        result[f"on_vs_{base_mode}_pct_paired"] = [round(v, 2) for v in paired]
        result[f"on_vs_{base_mode}_pct_median"] = round(median(paired), 2)
    return result


def cpu_us_per_token(cpu_pct: float, elapsed_s: float, tokens: int) -> float:
    """Microseconds of a server's CPU per token it streamed, from its share of one core."""
    return cpu_pct / 100 * elapsed_s / tokens * 1e6 if tokens else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="shorter runs; under 60 s")
    parser.add_argument(
        "--only",
        default=None,
        help="run just the runs with these concurrencies (comma-separated, e.g. 1,100)",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="host and baseline serve gRPC over TLS (development certificates)",
    )
    parser.add_argument(
        "--telemetry-cost",
        type=int,
        metavar="ROUNDS",
        help="only compare the host's CPU per token with telemetry off and on at 100 "
        "sessions, over ROUNDS alternating rounds (host pinned to the server cores)",
    )
    args = parser.parse_args()
    if args.telemetry_cost:
        spec = RunSpec(concurrency=100, tokens_per_s=50, answer_tokens=25, turns=5)
        progress(f"telemetry cost: {args.telemetry_cost} rounds at 100 sessions ...")
        result = telemetry_cost(args.telemetry_cost, spec)
        progress(
            f"  telemetry on adds {result['on_vs_off_pct_median']} % host CPU per token to "
            f"off, {result['on_vs_metrics_only_pct_median']} % to the default (metrics only)"
        )
        emit({"bench": "ttft", "mode": "telemetry_cost", **result})
        return
    server_cores, _ = core_sets()
    load_cores = pin_load_generator()
    if args.quick:
        specs = [
            RunSpec(concurrency=1, tokens_per_s=50, answer_tokens=10, turns=10),
            RunSpec(concurrency=100, tokens_per_s=50, answer_tokens=10, turns=2),
            RunSpec(concurrency=1000, tokens_per_s=5, answer_tokens=10, turns=1),
        ]
    else:
        specs = [
            RunSpec(concurrency=1, tokens_per_s=50, answer_tokens=25, turns=40),
            RunSpec(concurrency=100, tokens_per_s=50, answer_tokens=25, turns=5),
            RunSpec(concurrency=1000, tokens_per_s=5, answer_tokens=25, turns=2),
        ]
    if args.only is not None:
        try:
            wanted = {int(level) for level in args.only.split(",")}
        except ValueError:
            parser.error(f"--only: expected concurrencies like 1,100, got {args.only!r}")
        specs = [spec for spec in specs if spec.concurrency in wanted]
    runs = []
    for spec in specs:
        progress(f"run: {spec.concurrency} sessions at {spec.tokens_per_s:g} tokens/s ...")
        result = run(spec, tls=args.tls)
        progress(
            f"  ttft p50 {result['ttft_ms_p50']} ms, p95 {result['ttft_ms_p95']} ms; "
            f"added gap p99 {result['added_gap_ms_p99']} ms; errors {result['errors']}; "
            f"host RSS {result['server_rss_mb']} MB"
        )
        runs.append(result)
    emit(
        {
            "bench": "ttft",
            "quick": args.quick,
            "grpc_tls": args.tls,
            "first_token_delay_ms": FIRST_TOKEN_DELAY_MS,
            "server_cores": ",".join(map(str, sorted(server_cores))),
            "load_cores": load_cores,
            "runs": runs,
        }
    )


if __name__ == "__main__":
    main()
