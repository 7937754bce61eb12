"""Start a real host process for a benchmark and read its memory while it runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs

from ._proc import cpu_s, rss_mb

# How long a host may take to start listening.
READY_TIMEOUT_S = 30.0
# How long a host may take to drain and exit.
EXIT_TIMEOUT_S = 30.0


@attrs.frozen(kw_only=True)
class HostProcess:
    pid: int
    grpc_port: int
    debug_url: str | None

    def cpu_s(self) -> float:
        """CPU time (user + system) the host process has used so far, in seconds."""
        return cpu_s(self.pid)

    def rss_mb(self) -> float:
        """Resident memory of the host process now, in MiB."""
        return rss_mb(self.pid)


@contextmanager
def baseline_process(
    *, first_token_delay_ms: float, tokens_per_s: float, answer_tokens: int
) -> Iterator[HostProcess]:
    """The grpcio baseline StreamChat server (bench._baseline_chat) in its own process."""
    with tempfile.TemporaryDirectory(prefix="zl-bench-") as scratch:
        port_file = Path(scratch) / "port"
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench._baseline_chat",
                "--port-file",
                str(port_file),
                "--first-token-delay-ms",
                str(first_token_delay_ms),
                "--tokens-per-s",
                str(tokens_per_s),
                "--answer-tokens",
                str(answer_tokens),
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while not (port_file.exists() and port_file.stat().st_size):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the baseline server did not start")
                time.sleep(0.05)
            yield HostProcess(pid=process.pid, grpc_port=int(port_file.read_text()), debug_url=None)
        finally:
            process.terminate()
            try:
                process.wait(timeout=EXIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def host_process(settings: dict[str, str]) -> Iterator[HostProcess]:
    """A plaintext loopback host configured by ``ZL_*`` settings; stopped with SIGTERM."""
    with tempfile.TemporaryDirectory(prefix="zl-bench-") as scratch:
        ready = Path(scratch) / "ready.json"
        env = dict(
            os.environ,
            ZL_GRPC__PORT="0",
            ZL_GRPC__INSECURE_DEV_PLAINTEXT="true",
            ZL_DEBUG__PORT="0",
            ZL_AUDIT__PATH=str(Path(scratch) / "audit.jsonl"),
            **settings,
        )
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "supervisors",
                "host",
                "--ready-file",
                str(ready),
                "--log-level",
                "WARNING",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while not (ready.exists() and ready.stat().st_size):
                if process.poll() is not None or time.monotonic() > deadline:
                    _, err = process.communicate(timeout=EXIT_TIMEOUT_S)
                    raise RuntimeError(f"the host did not start: {err.decode()[-2000:]}")
                time.sleep(0.05)
            addresses = json.loads(ready.read_text())
            yield HostProcess(
                pid=process.pid,
                grpc_port=addresses["grpc_port"],
                debug_url=addresses.get("debug_url"),
            )
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=EXIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
