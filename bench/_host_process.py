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

from supervisors.tls import generate_dev_certs

from ._proc import cpu_s, pin_server, rss_mb

# How long a host may take to start listening.
READY_TIMEOUT_S = 30.0
# How long a host may take to drain and exit.
EXIT_TIMEOUT_S = 30.0


@attrs.frozen(kw_only=True)
class HostProcess:
    pid: int
    grpc_port: int
    debug_url: str | None
    #: The CA that signed the host's certificate when it serves TLS; None for plaintext.
    ca_cert: Path | None = None

    def cpu_s(self) -> float:
        """CPU time (user + system) the host process has used so far, in seconds."""
        return cpu_s(self.pid)

    def rss_mb(self) -> float:
        """Resident memory of the host process now, in MiB."""
        return rss_mb(self.pid)


@contextmanager
def baseline_process(
    *, first_token_delay_ms: float, tokens_per_s: float, answer_tokens: int, tls: bool = False
) -> Iterator[HostProcess]:
    """The grpcio baseline StreamChat server (bench._baseline_chat) in its own process.

    Over TLS when ``tls`` (development certificates, as ``host_process`` makes them).
    """
    with tempfile.TemporaryDirectory(prefix="zl-bench-") as scratch:
        port_file = Path(scratch) / "port"
        certs = generate_dev_certs(Path(scratch) / "certs") if tls else None
        transport = (
            ["--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key)]
            if certs is not None
            else []
        )
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
                *transport,
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            # On its own core, as the host is: the two servers' CPU compare like for like.
            pin_server(process.pid)
            deadline = time.monotonic() + READY_TIMEOUT_S
            while not (port_file.exists() and port_file.stat().st_size):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the baseline server did not start")
                time.sleep(0.05)
            yield HostProcess(
                pid=process.pid,
                grpc_port=int(port_file.read_text()),
                debug_url=None,
                ca_cert=certs.ca_cert if certs is not None else None,
            )
        finally:
            process.terminate()
            try:
                process.wait(timeout=EXIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def host_process(settings: dict[str, str], *, tls: bool = False) -> Iterator[HostProcess]:
    """A loopback host configured by ``ZL_*`` settings; stopped with SIGTERM.

    Plaintext gRPC unless ``tls``: then the host serves TLS with development certificates
    made in a scratch folder, and ``HostProcess.ca_cert`` is the CA a client must trust.
    """
    with tempfile.TemporaryDirectory(prefix="zl-bench-") as scratch:
        ready = Path(scratch) / "ready.json"
        certs = generate_dev_certs(Path(scratch) / "certs") if tls else None
        transport = (
            {"ZL_GRPC__TLS_CERT": str(certs.server_cert), "ZL_GRPC__TLS_KEY": str(certs.server_key)}
            if certs is not None
            else {"ZL_GRPC__INSECURE_DEV_PLAINTEXT": "true"}
        )
        env = dict(
            os.environ,
            ZL_GRPC__PORT="0",
            ZL_DEBUG__PORT="0",
            ZL_AUDIT__PATH=str(Path(scratch) / "audit.jsonl"),
            **transport,
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
            # The server under test gets its own core; the load generator has the others.
            pin_server(process.pid)
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
                ca_cert=certs.ca_cert if certs is not None else None,
            )
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=EXIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
