"""What a benchmark reads about a running process from Linux ``/proc``."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_s(pid: int) -> float:
    """CPU time (user + system) the process has used so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident memory of the process now, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def child_pids(pid: int) -> list[int]:
    """The direct children of the process."""
    pids: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        pids += [int(child) for child in (task / "children").read_text().split()]
    return pids


def open_fds(pid: int) -> int:
    """How many file descriptors the process has open now."""
    return len(os.listdir(f"/proc/{pid}/fd"))


#: Which cores the process under test gets, and which the load generator and the fakes get
#: (``ZL_BENCH_SERVER_CORES`` / ``ZL_BENCH_LOAD_CORES``: comma-separated core numbers, for
#: bigger machines). By default the server has core 0 and everything else the other cores.
SERVER_CORES_ENV = "ZL_BENCH_SERVER_CORES"
LOAD_CORES_ENV = "ZL_BENCH_LOAD_CORES"


def _cores(variable: str, default: set[int]) -> set[int]:
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    try:
        cores = {int(part) for part in raw.split(",") if part.strip()}
    except ValueError:
        raise SystemExit(f"{variable}: expected core numbers like 0,1; got {raw!r}") from None
    usable = os.sched_getaffinity(0) | _all_cores()
    if not cores or not cores <= usable:
        raise SystemExit(f"{variable}: cores {sorted(cores)} are not all on this machine")
    return cores


def _all_cores() -> set[int]:
    return set(range(os.cpu_count() or 1))


def core_sets() -> tuple[set[int], set[int]]:
    """``(server cores, load cores)``: disjoint unless the machine has one core."""
    every = _all_cores()
    server = _cores(SERVER_CORES_ENV, {min(every)})
    load = _cores(LOAD_CORES_ENV, (every - server) or every)
    return server, load


def pin(pid: int, cores: set[int]) -> None:
    """Run every thread of ``pid`` (and what it starts later) on ``cores`` only."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cores)
        except (ProcessLookupError, FileNotFoundError):
            continue  # a thread that ended meanwhile


def pin_server(pid: int) -> str:
    """Pin a server under test to the server cores; returns them as text for the report."""
    server, _ = core_sets()
    pin(pid, server)
    return ",".join(map(str, sorted(server)))


def pin_load_generator() -> str:
    """Pin this process (the load generator; fakes it starts inherit it) to the load cores."""
    _, load = core_sets()
    pin(os.getpid(), load)
    return ",".join(map(str, sorted(load)))
