"""Compare builds by rotating runs of one benchmark over them, and taking medians.

    python -m bench.compare REV [REV ...] [--rounds N] [--bench provider] [-- BENCH ARGS]

On this kind of machine one run's p95 can move two- or threefold between identical runs, so a
single run per build ranks noise. Each revision is checked out in a temporary git worktree;
every round runs the benchmark once per build, starting the rotation one build later each
round (so no build always runs first or last), with a pause between runs. ``WORKTREE`` as a
revision means the working tree itself, uncommitted changes included. ``--bench-from REV``
runs the benchmark code (``bench/``) of that revision in every build, so that an older build
is measured with the same instruments (CPU per token, core pinning) as a newer one. Each run's
figures go to stderr as they come; the last line is one JSON object with, per build, the median
and the spread of every numeric figure the benchmark printed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ._stats import emit, median, progress

REPO = Path(__file__).resolve().parent.parent
WORKTREE = "WORKTREE"


@contextmanager
def checkouts(revisions: list[str]) -> Iterator[dict[str, Path]]:
    """A folder per revision (temporary worktrees, removed at the end)."""
    folders: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="zl-compare-") as scratch:
        try:
            for index, revision in enumerate(revisions):
                if revision == WORKTREE:
                    folders[revision] = REPO
                    continue
                folder = Path(scratch) / f"build-{index}"
                subprocess.run(
                    ["git", "-C", str(REPO), "worktree", "add", "--detach", str(folder), revision],
                    check=True,
                    capture_output=True,
                )
                folders[revision] = folder
            yield folders
        finally:
            for folder in folders.values():
                if folder != REPO:
                    subprocess.run(
                        ["git", "-C", str(REPO), "worktree", "remove", "--force", str(folder)],
                        check=False,
                        capture_output=True,
                    )


def use_bench_code(revision: str, folders: dict[str, Path]) -> None:
    """Replace every checkout's ``bench/`` with that of ``revision`` (never the work tree's)."""
    with tempfile.TemporaryDirectory(prefix="zl-bench-code-") as scratch:
        source = REPO / "bench"
        if revision != WORKTREE:
            archive = subprocess.run(
                ["git", "-C", str(REPO), "archive", revision, "bench"],
                check=True,
                capture_output=True,
            ).stdout
            subprocess.run(["tar", "-x", "-C", scratch], input=archive, check=True)
            source = Path(scratch) / "bench"
        for folder in folders.values():
            if folder == REPO:
                if revision != WORKTREE:
                    raise SystemExit("--bench-from: the work tree itself cannot take other code")
                continue
            shutil.rmtree(folder / "bench")
            shutil.copytree(source, folder / "bench")


def run_once(folder: Path, bench: str, args: list[str]) -> dict[str, Any]:
    """One run of ``python -m bench.<bench>`` in ``folder``; its JSON line."""
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{bench}", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"bench.{bench} failed in {folder}: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return flatten_nested(flatten_levels(result))


def flatten_nested(result: dict[str, Any]) -> dict[str, Any]:
    """Lift figures nested in objects (``bench.bridge``'s ``concurrency_50``) to the top.

    ``{"concurrency_50": {"relay_cpu_ms_per_call": {"relay": 0.6}}}`` becomes
    ``concurrency_50_relay_cpu_ms_per_call_relay``, so that it is summarized too.
    """
    flat: dict[str, Any] = {}
    for key, value in result.items():
        if isinstance(value, dict):
            for inner, item in flatten_nested(value).items():
                flat[f"{key}_{inner}"] = item
        else:
            flat[key] = value
    return flat


def flatten_levels(result: dict[str, Any]) -> dict[str, Any]:
    """Lift the figures of a benchmark that reports one object per load level (``runs``).

    ``bench.ttft`` prints ``{"runs": [{"concurrency": 100, "ttft_ms_p95": ...}, ...]}``;
    each level's figures become top-level ``c100_ttft_ms_p95`` and so on, so they are
    summarized like everyone else's.
    """
    levels = result.get("runs")
    if not isinstance(levels, list):
        return result
    flat = {key: value for key, value in result.items() if key != "runs"}
    for level in levels:
        if isinstance(level, dict) and "concurrency" in level:
            for key, value in level.items():
                flat[f"c{level['concurrency']}_{key}"] = value
    return flat


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median, min and max of every numeric top-level figure over the runs."""
    summary: dict[str, Any] = {"runs": len(runs)}
    for key in sorted(runs[0]):
        values = [run[key] for run in runs if isinstance(run.get(key), int | float)]
        if len(values) == len(runs) and not isinstance(runs[0][key], bool):
            summary[key] = {
                "median": round(median(values), 2),
                "min": min(values),
                "max": max(values),
            }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("revisions", nargs="+", help=f"git revisions, or {WORKTREE}")
    parser.add_argument("--rounds", type=int, default=6, help="runs of every build (default 6)")
    parser.add_argument("--bench", default="provider", help="bench module (default provider)")
    parser.add_argument("--pause", type=float, default=6.0, help="seconds between runs")
    parser.add_argument(
        "--bench-from",
        default=None,
        help=f"run this revision's bench/ (or {WORKTREE}'s) in every build",
    )
    args, bench_args = parser.parse_known_args()
    if bench_args and bench_args[0] == "--":
        bench_args = bench_args[1:]
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    results: dict[str, list[dict[str, Any]]] = {revision: [] for revision in args.revisions}
    with checkouts(args.revisions) as folders:
        if args.bench_from is not None:
            use_bench_code(args.bench_from, folders)
        order = list(args.revisions)
        for round_ in range(args.rounds):
            rotation = order[round_ % len(order) :] + order[: round_ % len(order)]
            for revision in rotation:
                time.sleep(args.pause)
                result = run_once(folders[revision], args.bench, bench_args)
                results[revision].append(result)
                figures = {
                    key: value
                    for key, value in result.items()
                    if "p50" in key or "p95" in key or "cpu" in key
                }
                progress(f"round {round_ + 1}/{args.rounds} {revision}: {json.dumps(figures)}")
    emit(
        {
            "bench": "compare",
            "of": args.bench,
            "args": bench_args,
            "builds": {revision: summarize(runs) for revision, runs in results.items()},
        }
    )


if __name__ == "__main__":
    main()
