"""``zl demo``: start a host on TLS with development certificates and chat with it.

Everything is real: the host runs as its own process, the chat is the standard grpcio
client over TLS, the tree comes from the host's debug endpoint. Then the BFF starts as a
third process in front of the host: one turn goes through its HTTPS API (SSE), and the
chat page's URL is printed (with a development caller token in its fragment).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc

from contracts.generated import agent_pb2
from supervisors.chat_client import CONNECT_TIMEOUT_S, converse, open_channel
from supervisors.tls import generate_dev_certs

# How long the host may take to start listening.
READY_TIMEOUT_S = 30.0
# How long the host may take to drain and exit after SIGTERM.
EXIT_TIMEOUT_S = 20.0

QUIET = ("--log-level", "WARNING")
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
            raise SystemExit(f"zl demo: a process exited with {host.returncode} before serving")
        if ready.exists() and ready.stat().st_size:
            data: dict[str, object] = json.loads(ready.read_text())
            return data
        time.sleep(0.05)
    raise SystemExit(f"zl demo: the host did not start within {READY_TIMEOUT_S:.0f} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _show_events(lines: Iterator[str]) -> None:
    """One line per tool event, the answer's deltas as one line, then the done event."""
    deltas: list[str] = []
    for line in lines:
        if not line.startswith("data: "):
            continue
        event = json.loads(line[6:])
        kind = event["type"]
        if kind == "assistant.delta":
            deltas.append(event["text"])
            continue
        if deltas:
            print(
                f"     assistant.delta x{len(deltas)} (ids ..{event['seq'] - 1}): {''.join(deltas)}"
            )
            deltas = []
        if kind == "tool.call.started":
            print(f"     tool.call.started id {event['seq']}: {event['tool']} {event['args']}")
        elif kind == "tool.call.delta":
            receipt = event.get("receipt_id")
            print(f"     tool.call.delta id {event['seq']}: {event['status']}, receipt {receipt}")
        else:
            print(
                f"     {kind} id {event['seq']}: {event.get('finish_reason') or event.get('error')}"
            )


def _bff_demo(
    scratch: Path, ca_cert: Path, args: argparse.Namespace, addresses: dict[str, object]
) -> int:
    """Start ``zl bff``, run one turn through it, print the chat page's URL."""
    import httpx

    from actors.relay import generate_signing_key, save_public_key
    from supervisors.bff import mint_caller_token

    key = generate_signing_key()
    save_public_key(key.public_key(), scratch / "caller.pub")
    token = mint_caller_token(
        key, tenant="demo-tenant", user="demo-user", devices=["*"], ttl_s=3600
    )
    ready = scratch / "bff-ready.json"
    env = dict(
        os.environ,
        ZL_HTTP__PORT="0",
        ZL_HTTP__DEV_CERTS_DIR=str(args.certs),
        ZL_HOST__TARGET=f"localhost:{addresses['grpc_port']}",
        ZL_HOST__CA=str(ca_cert),
        ZL_AUTH__PUBLIC_KEYS=str(scratch / "caller.pub"),
    )
    bff = subprocess.Popen(
        [sys.executable, "-m", "supervisors", "bff", "--ready-file", str(ready), *QUIET],
        env=env,
    )
    try:
        url = str(_wait_ready(ready, bff)["url"])
        headers = {"authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, verify=ssl.create_default_context(cafile=ca_cert)) as http:
            session = http.post("/v1/sessions", json={}, headers=headers).json()
            print(f"   POST /v1/sessions -> session {session['session_id']}")
            body = {"session_id": session["session_id"], "message": "Please read notes.txt"}
            print("   POST /v1/chat/stream: the turn's SSE events")
            with http.stream("POST", "/v1/chat/stream", json=body, headers=headers) as answer:
                _show_events(answer.iter_lines())
            http.delete(f"/v1/sessions/{session['session_id']}", headers=headers)
        _step("the chat page")
        print(f"   {url}/#token={token}")
        print(f"   (the browser must trust {ca_cert}, the development CA; see README)")
        if args.serve:
            print("   serving until Ctrl-C ...", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                bff.wait()
        return 0
    finally:
        _stop(bff)


def demo_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zl demo", description=__doc__)
    parser.add_argument("--certs", type=Path, default=Path(".zl/certs"))
    parser.add_argument(
        "--serve",
        action="store_true",
        help="keep the host and the BFF running (for the chat page) until Ctrl-C",
    )
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
            _step(f"the receipt in the audit ({audit})")
            from actors.audit import audit_main

            audit_main(["tail", str(audit), "-n", "1"])
            audit_main(["verify", str(audit)])
            debug_url = addresses.get("debug_url")
            if debug_url:
                _step(f"the host's live actor tree ({debug_url}/debug/actors)")
                from supervisors.tree_cli import tree_main

                tree_main(["--url", str(debug_url)])
            _step("starting the BFF in front of the host (its own process; HTTPS, SSE)")
            status = max(status, _bff_demo(Path(scratch), certs.ca_cert, args, addresses))
        finally:
            _step("stopping the host (SIGTERM: drain, then stop the tree)")
            host.send_signal(signal.SIGTERM)
            try:
                host.wait(timeout=EXIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                host.kill()
                host.wait()
    return status
