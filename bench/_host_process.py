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
from typing import Any

import attrs

from actors.relay import generate_signing_key, save_public_key
from supervisors.tls import generate_dev_certs

from ._proc import core_sets, cpu_s, pin_server, rss_mb

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
    #: A caller token the host trusts (None for the baseline servers, which check none).
    caller_token: str | None = None
    #: The public key the host verifies caller tokens with (a BFF in front of it needs it).
    caller_public_key: Path | None = None

    def cpu_s(self) -> float:
        """CPU time (user + system) the host process has used so far, in seconds."""
        return cpu_s(self.pid)

    def rss_mb(self) -> float:
        """Resident memory of the host process now, in MiB."""
        return rss_mb(self.pid)


@contextmanager
def otlp_sink(*, cpus: set[int] | None = None) -> Iterator[str]:
    """An OTLP/HTTP sink (bench._otlp_sink) in its own process; yields its base URL."""
    with tempfile.TemporaryDirectory(prefix="zl-bench-") as scratch:
        port_file = Path(scratch) / "port"
        process = subprocess.Popen(
            [sys.executable, "-m", "bench._otlp_sink", "--port-file", str(port_file)],
            stdout=subprocess.DEVNULL,
            preexec_fn=None if cpus is None else lambda: os.sched_setaffinity(0, cpus),
        )
        try:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while not (port_file.exists() and port_file.stat().st_size):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the OTLP sink did not start")
                time.sleep(0.05)
            yield f"http://127.0.0.1:{int(port_file.read_text())}"
        finally:
            process.terminate()
            process.wait(timeout=EXIT_TIMEOUT_S)


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
def host_process(
    settings: dict[str, str], *, tls: bool = False, cpus: set[int] | None = None
) -> Iterator[HostProcess]:
    """A loopback host configured by ``ZL_*`` settings; stopped with SIGTERM.

    Plaintext gRPC unless ``tls``: then the host serves TLS with development certificates
    made in a scratch folder, and ``HostProcess.ca_cert`` is the CA a client must trust.
    ``cpus`` pins the host (every thread it will ever start) to those cores; by default the
    server cores of ``_proc.core_sets`` (the load generator has the others).
    """
    with tempfile.TemporaryDirectory(prefix="zl-bench-") as scratch:
        ready = Path(scratch) / "ready.json"
        certs = generate_dev_certs(Path(scratch) / "certs") if tls else None
        transport = (
            {"ZL_GRPC__TLS_CERT": str(certs.server_cert), "ZL_GRPC__TLS_KEY": str(certs.server_key)}
            if certs is not None
            else {"ZL_GRPC__INSECURE_DEV_PLAINTEXT": "true"}
        )
        auth, token, public_key = _caller_auth(Path(scratch))
        env = dict(
            os.environ,
            ZL_GRPC__PORT="0",
            ZL_DEBUG__PORT="0",
            ZL_AUDIT__PATH=str(Path(scratch) / "audit.jsonl"),
            **auth,
            **transport,
            **settings,
        )
        server_cores = cpus if cpus is not None else core_sets()[0]
        with zl_process("host", env, ready, cpus=server_cores) as (pid, addresses):
            yield HostProcess(
                pid=pid,
                grpc_port=addresses["grpc_port"],
                debug_url=addresses.get("debug_url"),
                ca_cert=certs.ca_cert if certs is not None else None,
                caller_token=token,
                caller_public_key=public_key,
            )


def _caller_auth(scratch: Path) -> tuple[dict[str, str], str | None, Path | None]:
    """The host's caller-key setting, a caller token it trusts, and the key's file.

    Callers are proven, as deployed: the load generator sends a token signed by a key the
    host trusts (verified once per stream). A build from before caller tokens (which
    ``bench.compare`` may run) gets no setting and no token.
    """
    from supervisors.host._config import HostConfig

    if "auth" not in attrs.fields_dict(HostConfig):
        return {}, None, None
    from actors.policy import mint_caller_token

    caller_key = generate_signing_key()
    public_key = scratch / "caller.pub"
    save_public_key(caller_key.public_key(), public_key)
    token = mint_caller_token(caller_key, tenant="bench", user="u", devices=["*"], ttl_s=3600)
    return {"ZL_AUTH__TRUSTED_KEYS": str(public_key)}, token, public_key


@contextmanager
def zl_process(
    command: str, env: dict[str, str], ready: Path, *, cpus: set[int] | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``zl COMMAND`` (host, bff) with ``env``: its pid and ready file once it serves.

    ``cpus`` pins it (every thread it will ever start) to those cores.

    Stopped with SIGTERM at the end (killed if it has not drained within
    ``EXIT_TIMEOUT_S``).

    Raises:
        RuntimeError: it exited, or did not write its ready file within ``READY_TIMEOUT_S``
            (the message ends with what it wrote to stderr).
    """
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "supervisors", command),
            *("--ready-file", str(ready), "--log-level", "WARNING"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        # Before exec, so that the interpreter and all its threads start on those cores.
        preexec_fn=None if cpus is None else lambda: os.sched_setaffinity(0, cpus),
    )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not (ready.exists() and ready.stat().st_size):
            if process.poll() is not None or time.monotonic() > deadline:
                _, err = process.communicate(timeout=EXIT_TIMEOUT_S)
                raise RuntimeError(f"zl {command} did not start: {err.decode()[-2000:]}")
            time.sleep(0.05)
        yield process.pid, json.loads(ready.read_text())
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
