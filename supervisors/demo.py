"""``zl demo``: start a host on TLS with development certificates and chat with it.

Everything is real: the host runs as its own process, the chat is the standard grpcio
client over TLS, the tree comes from the host's debug endpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import grpc

from contracts.generated import agent_pb2
from supervisors.chat_client import CONNECT_TIMEOUT_S, converse, open_channel
from supervisors.tls import generate_dev_certs

# How long the host may take to start listening.
READY_TIMEOUT_S = 30.0
# How long the host may take to drain and exit after SIGTERM.
EXIT_TIMEOUT_S = 20.0

DEMO_MESSAGES = ("Hello, Zero Latency!", "Please read notes.txt")
DEMO_NOTE = (
    "Zero Latency read this file through fs.read: the host validated the arguments and the\n"
    "result against their JSON Schemas and wrote a receipt to the audit before telling you.\n"
)


def _step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def _wait_ready(ready: Path, host: subprocess.Popen[bytes]) -> dict[str, object]:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if host.poll() is not None:
            raise SystemExit(f"zl demo: the host exited with {host.returncode} before serving")
        if ready.exists() and ready.stat().st_size:
            data: dict[str, object] = json.loads(ready.read_text())
            return data
        time.sleep(0.05)
    raise SystemExit(f"zl demo: the host did not start within {READY_TIMEOUT_S:.0f} s")


def demo_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zl demo", description=__doc__)
    parser.add_argument("--certs", type=Path, default=Path(".zl/certs"))
    args = parser.parse_args(argv)

    _step(f"development certificates in {args.certs}")
    certs = generate_dev_certs(args.certs)
    for name in ("ca_cert", "server_cert", "client_cert"):
        made = "made" if str(getattr(certs, name)) in certs.generated else "kept"
        print(f"   {made}: {getattr(certs, name)}")

    with tempfile.TemporaryDirectory(prefix="zl-demo-") as scratch:
        ready = Path(scratch) / "ready.json"
        audit = Path(scratch) / "audit.jsonl"
        files = Path(scratch) / "files"
        files.mkdir()
        (files / "notes.txt").write_text(DEMO_NOTE)
        env = dict(
            os.environ,
            ZL_GRPC__PORT="0",
            ZL_DEBUG__PORT="0",
            ZL_AUDIT__PATH=str(audit),
            ZL_TOOLS__MODE="stdio",
            ZL_TOOLS__ROOTS=json.dumps([str(files)]),
            ZL_GRPC__DEV_CERTS_DIR=str(args.certs),
            ZL_PROVIDER__MOCK__TOKENS_PER_S="25",
        )
        _step(f"starting the host (its own process; mock model; TLS; fs.read on {files})")
        host = subprocess.Popen(
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
        )
        try:
            addresses = _wait_ready(ready, host)
            target = f"localhost:{addresses['grpc_port']}"
            _step(f"chatting with {target} over TLS (tokens print as they stream)")
            channel = open_channel(target, ca=certs.ca_cert, plaintext=False)
            with channel:
                grpc.channel_ready_future(channel).result(timeout=CONNECT_TIMEOUT_S)
                status = converse(
                    channel,
                    agent_pb2.StartSession(tenant="demo-tenant", user="demo-user"),
                    iter(DEMO_MESSAGES),
                    out=sys.stdout,
                    err=sys.stderr,
                )
            _step(f"the receipt and the turn's record in the audit ({audit})")
            from actors.audit import audit_main

            audit_main(["tail", str(audit), "-n", "2"])
            audit_main(["verify", str(audit)])
            debug_url = addresses.get("debug_url")
            if debug_url:
                _step(f"the host's live actor tree ({debug_url}/debug/actors)")
                from supervisors.tree_cli import tree_main

                tree_main(["--url", str(debug_url)])
        finally:
            _step("stopping the host (SIGTERM: drain, then stop the tree)")
            host.send_signal(signal.SIGTERM)
            try:
                host.wait(timeout=EXIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                host.kill()
                host.wait()
    return status
