"""Redaction throughput on a 10 MiB mixed corpus, and what it adds to a 1 MiB fs.read result.

    python -m bench.redact [--quick] [--rounds N]

The mixed corpus (deterministic: one seed) is the text a host redacts, by bytes:

- 40 % source code and docs: this repository's own ``.py``, ``.md`` and ``.json`` files,
  as ``fs.read`` returns them;
- 35 % log lines in the host's format (timestamps, ids, latencies, loopback and private
  addresses), with a secret or an address in about one line in twenty;
- 15 % JSON: fs.read results wrapping pieces of those files;
- 10 % the labelled corpus (``tests/redaction/corpus``): every kind of value and look-alike,
  about 40 values per KiB.

``mb_per_s`` is 10 MiB (in decimal MB) over the median CPU time of ``rounds`` scans with
every built-in class on: what one core redacts per second (the scan is CPU-bound and
single-threaded; the process is pinned to one core). ``mb_per_s_wall`` is the same over
wall time, lower when other processes share the core.
``mb_per_s_dense`` is the same on the labelled corpus alone, repeated to 10 MiB: the worst
case, where almost every line holds a candidate. ``added_ms_p50`` is what the host's turn
adds (wall time) before the model sees a 1 MiB fs.read result: ``redact_json`` of the
result's JSON text in a worker thread, as the turn runs it; ``added_cpu_ms_p50`` is its
CPU time. ``backtracking_ms`` is the scan of 1 MiB of ``a`` and a ``!`` with the tenant
pattern ``(a+)+$`` (RE2: linear). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import time
from pathlib import Path

import trio

from actors.redaction import RedactionSettings, Redactor
from actors.session import redact_off_loop

from ._stats import emit, median, percentile, progress

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "redaction" / "corpus" / "corpus.jsonl"
MIB = 1024 * 1024
SEED = 15
SOURCES = ("actors", "supervisors", "zl_actors", "docs", "contracts/api", "README.md")
SHARES = {"code": 0.40, "logs": 0.35, "json": 0.15, "labelled": 0.10}


def _source_texts() -> list[str]:
    texts = []
    for source in SOURCES:
        path = ROOT / source
        files = [path] if path.is_file() else sorted(path.rglob("*"))
        for file in files:
            if file.suffix in (".py", ".md", ".json") and "generated" not in file.parts:
                texts.append(file.read_text(encoding="utf-8"))
    return texts


def _log_lines(rng: random.Random, size: int) -> str:
    lines, total = [], 0
    secrets = [
        "token=ghp_R8kT2mVq9XwL4pZs7NbC1dFh6JyG3aEo5uIt",
        "user=maria.rossi@example-bank.it",
        "client=81.2.69.160",
        "card=4111 1111 1111 1111",
        "password=Tr0ub4dor&3",
    ]
    while total < size:
        ts = f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}"
        ts += f":{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}.{rng.randint(0, 999):03d}Z"
        session = f"{rng.getrandbits(128):032x}"
        extra = (
            rng.choice(secrets)
            if rng.random() < 0.05
            else f"peer=127.0.0.1:{50000 + rng.randint(0, 9999)}"
        )
        line = (
            f"{ts} INFO zl.session: session={session} turn=t{rng.randint(1, 9)} "
            f"ttft_ms={rng.random() * 400:.1f} tokens_out={rng.randint(1, 900)} "
            f"tool=fs.read outcome=ok {extra}\n"
        )
        lines.append(line)
        total += len(line.encode())
    return "".join(lines)


def _fs_read_result(path: str, content: str) -> str:
    return json.dumps(
        {"path": path, "content": content, "bytes": len(content.encode()), "truncated": False}
    )


def mixed_corpus(size: int) -> str:
    """The mixed corpus described in the module docstring, ``size`` bytes or a little more."""
    rng = random.Random(SEED)
    sources = _source_texts()
    labelled = [json.loads(line)["text"] for line in CORPUS.read_text().splitlines()]
    parts: dict[str, list[str]] = {name: [] for name in SHARES}
    for name, share in SHARES.items():
        want, have, at = int(size * share), 0, 0
        while have < want:
            if name == "code":
                piece = sources[at % len(sources)]
            elif name == "logs":
                piece = _log_lines(rng, 64 * 1024)
            elif name == "json":
                text = sources[rng.randrange(len(sources))]
                piece = _fs_read_result(f"src/file{at}.py", text)
            else:
                piece = labelled[at % len(labelled)]
            parts[name].append(piece)
            have += len(piece.encode())
            at += 1
    # Interleave so that each kind is spread over the whole text.
    pieces = [p for group in parts.values() for p in group]
    rng.shuffle(pieces)
    return "\n".join(pieces)


def dense_corpus(size: int) -> str:
    labelled = [json.loads(line)["text"] for line in CORPUS.read_text().splitlines()]
    pieces, have, at = [], 0, 0
    while have < size:
        pieces.append(labelled[at % len(labelled)])
        have += len(pieces[-1].encode())
        at += 1
    return "\n".join(pieces)


def _throughput(redactor: Redactor, text: str, rounds: int) -> dict[str, float]:
    size = len(text.encode())
    walls, cpus = [], []
    found = 0
    for _ in range(rounds):
        cpu, wall = time.process_time(), time.perf_counter()
        found = len(redactor.redact(text).spans)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {
        "mb_per_s": round(size / 1e6 / median(cpus), 2),
        "mb_per_s_slowest_run": round(size / 1e6 / max(cpus), 2),
        "mb_per_s_wall": round(size / 1e6 / median(walls), 2),
        "cpu_s_per_mb": round(median(cpus) / (size / 1e6), 4),
        "spans": found,
        "bytes": size,
    }


async def _added_ms(
    redactor: Redactor, result_json: str, rounds: int
) -> tuple[list[float], list[float]]:
    walls, cpus = [], []
    for _ in range(rounds):
        cpu, started = time.process_time(), time.perf_counter()
        await redact_off_loop(redactor.redact_json, result_json)
        walls.append((time.perf_counter() - started) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    return walls, cpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="2 MiB corpora, 3 rounds")
    parser.add_argument("--rounds", type=int, default=7, help="scans per figure (default 7)")
    args = parser.parse_args()
    rounds = 3 if args.quick else args.rounds
    size = (2 if args.quick else 10) * MIB
    with contextlib.suppress(AttributeError, OSError):  # not Linux: no pinning
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as a host has
    redactor = Redactor()
    progress(f"bench.redact: building a {size // MIB} MiB mixed corpus")
    mixed = mixed_corpus(size)
    redactor.redact(mixed[: 64 * 1024])  # compile the patterns outside the timing
    progress("bench.redact: mixed corpus")
    mixed_figures = _throughput(redactor, mixed, rounds)
    progress("bench.redact: dense corpus (the labelled samples only)")
    dense_figures = _throughput(redactor, dense_corpus(size), rounds)
    progress("bench.redact: a 1 MiB fs.read result")
    file_text = mixed[:MIB]
    while len(file_text.encode()) > MIB:
        file_text = file_text[: len(file_text) - 1024]
    result_json = _fs_read_result("big.txt", file_text)
    added, added_cpu = trio.run(_added_ms, redactor, result_json, max(rounds, 5))
    progress("bench.redact: (a+)+$ on 1 MiB of a's")
    tenant = Redactor(
        RedactionSettings.from_bundle({"patterns": [{"name": "bt", "pattern": "(a+)+$"}]})
    )
    attack = "a" * MIB + "!"
    backtracking = []
    for _ in range(rounds):
        started = time.perf_counter()
        tenant.find(attack)
        backtracking.append((time.perf_counter() - started) * 1000)
    emit(
        {
            "bench": "redact",
            "rounds": rounds,
            "corpus_mib": size // MIB,
            "mb_per_s": mixed_figures["mb_per_s"],
            "mb_per_s_slowest_run": mixed_figures["mb_per_s_slowest_run"],
            "mb_per_s_wall": mixed_figures["mb_per_s_wall"],
            "cpu_s_per_mb": mixed_figures["cpu_s_per_mb"],
            "spans_mixed": mixed_figures["spans"],
            "mb_per_s_dense": dense_figures["mb_per_s"],
            "spans_dense": dense_figures["spans"],
            "added_ms_p50": round(median(added), 2),
            "added_ms_p95": round(percentile(added, 95), 2),
            "added_cpu_ms_p50": round(median(added_cpu), 2),
            "fs_read_result_bytes": len(result_json.encode()),
            "backtracking_ms": round(median(backtracking), 2),
        }
    )


if __name__ == "__main__":
    main()
