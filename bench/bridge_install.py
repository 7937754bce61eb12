"""What installing the bridge costs a user: ``pipx install`` of each distribution, timed.

    python -m bench.bridge_install [--rounds 3] [--pip-cache]

Installs, in alternating rounds, the main distribution (``.``: the bridge with the host's
whole stack, what a user had to install before ``packages/bridge`` existed) and the
bridge's own (``./packages/bridge``), each into an empty ``PIPX_HOME``, from the package
index as a user would (``--no-cache-dir`` unless ``--pip-cache``: downloads included).
Reports per distribution the median wall time of ``pipx install``, the size of the
virtualenv it made (its ``lib`` folder: the installed packages), and how many
distributions it holds. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ._stats import emit, median, progress

REPO = Path(__file__).resolve().parent.parent
#: name -> (what pipx installs, the distribution and so pipx's venv name)
TARGETS = {"main": (".", "zero-latency"), "bridge": ("./packages/bridge", "zero-latency-bridge")}
INSTALL_TIMEOUT_S = 900


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def install_once(target: str, distribution: str, *, pip_cache: bool) -> dict[str, float]:
    """One ``pipx install`` into a fresh home; its time, venv size and distribution count."""
    with tempfile.TemporaryDirectory(prefix="zl-pipx-") as scratch:
        home = Path(scratch)
        env = dict(
            os.environ,
            PIPX_HOME=str(home / "home"),
            PIPX_BIN_DIR=str(home / "bin"),
            PIPX_MAN_DIR=str(home / "man"),
        )
        argv = [str(Path(sys.executable).parent / "pipx"), "install", "--python", sys.executable]
        if not pip_cache:
            argv.append("--pip-args=--no-cache-dir")
        started = time.perf_counter()
        subprocess.run(
            [*argv, target],
            cwd=REPO,
            env=env,
            check=True,
            capture_output=True,
            timeout=INSTALL_TIMEOUT_S,
        )
        elapsed = time.perf_counter() - started
        venv = home / "home" / "venvs" / distribution
        site = next((venv / "lib").glob("python*/site-packages"))
        return {
            "seconds": elapsed,
            "mb": folder_bytes(venv / "lib") / 1e6,
            "distributions": float(len(list(site.glob("*.dist-info")))),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pip-cache", action="store_true", help="let pip use its cache")
    parser.add_argument("--quick", action="store_true", help="one round")
    args = parser.parse_args()
    if shutil.which("pipx", path=str(Path(sys.executable).parent)) is None:
        sys.exit("bench.bridge_install: pipx is not installed in this environment")
    rounds = 1 if args.quick else args.rounds
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in TARGETS}
    for round_ in range(rounds):
        order = list(TARGETS) if round_ % 2 == 0 else list(reversed(TARGETS))
        for name in order:
            target, distribution = TARGETS[name]
            run = install_once(target, distribution, pip_cache=args.pip_cache)
            progress(f"round {round_ + 1} {name}: {run}")
            runs[name].append(run)
    result: dict[str, Any] = {"rounds": rounds, "pip_cache": args.pip_cache}
    for name, samples in runs.items():
        result[name] = {
            "install_s_median": round(median([s["seconds"] for s in samples]), 2),
            "install_s_max": round(max(s["seconds"] for s in samples), 2),
            "venv_mb": round(median([s["mb"] for s in samples]), 1),
            "distributions": int(median([s["distributions"] for s in samples])),
        }
    result["bridge_over_main_size"] = round(
        result["bridge"]["venv_mb"] / result["main"]["venv_mb"], 2
    )
    result["bridge_over_main_time"] = round(
        result["bridge"]["install_s_median"] / result["main"]["install_s_median"], 2
    )
    emit(result)


if __name__ == "__main__":
    main()
