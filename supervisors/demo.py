"""``zl demo``: a control plane, a host on TLS, and a chat whose tool calls policy decides.

Everything is real: the control plane (``zl policy serve``, HTTPS with ETags) and the host
run as their own processes, the host pulls and verifies the tenant's signed bundle, the
chat is the standard grpcio client over TLS with a minted caller token, the model reads one
file the bundle allows and one it does not (denied, with a receipt naming the rule), and
the tree comes from the host's debug endpoint. Then the BFF starts as a fourth process in
front of the host: one turn goes through its HTTPS API (SSE), and the chat page's URL is
printed (with the development caller token in its fragment).
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
from supervisors.tls import DevCerts, generate_dev_certs

# How long the host may take to start listening.
READY_TIMEOUT_S = 30.0
# How long the host may take to drain and exit after SIGTERM.
EXIT_TIMEOUT_S = 20.0

QUIET = ("--log-level", "WARNING")
DEMO_TENANT = "demo-tenant"
DEMO_USER = "demo-user"
DEMO_MESSAGES = ("Hello, Zero Latency!", "Please read notes.txt", "Please read secret.txt")
DEMO_NOTE = (
    "Zero Latency read this file through fs.read: the host validated the arguments and the\n"
    "result against their JSON Schemas and wrote a receipt to the audit before telling you.\n"
)
DEMO_SECRET = "This file is outside the policy's path allow-list: nobody reads it.\n"
#: The demo tenant's policy: fs.read of notes.txt and notes/, on the host's own device.
DEMO_BUNDLE: dict[str, object] = {
    "iss": "zl-demo-control-plane",
    "aud": DEMO_TENANT,
    "policy_id": "demo-policy",
    "revision": 1,
    "rules": [
        {
            "id": "read-notes",
            "tool": "fs.read",
            "versions": "^1.0.0",
            "effect": "allow",
            "devices": ["local"],
            "caps": {"timeoutMs": 5000, "maxBytes": 65536},
            "paths": ["notes.txt", "notes/**"],
        }
    ],
}
POLICY_TTL_S = 900.0


def _step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def _start(argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "supervisors", *argv], env=env)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_file(path: Path, process: subprocess.Popen[bytes], what: str) -> str:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"zl demo: {what} exited with {process.returncode} before serving")
        if path.exists() and path.stat().st_size:
            return path.read_text()
        time.sleep(0.05)
    raise SystemExit(f"zl demo: {what} did not start within {READY_TIMEOUT_S:.0f} s")


def _keys_and_bundle(scratch: Path) -> tuple[Path, Path, Path, str]:
    """Caller and control-plane keys, and the demo tenant's signed bundle in a folder."""
    from actors.policy import mint_caller_token, sign_bundle
    from actors.relay import generate_signing_key, save_public_key

    keys = scratch / "keys"
    keys.mkdir()
    control_plane, caller = generate_signing_key(), generate_signing_key()
    save_public_key(control_plane.public_key(), keys / "control-plane.pub")
    save_public_key(caller.public_key(), keys / "caller.pub")
    bundles = scratch / "bundles"
    bundles.mkdir()
    jws = sign_bundle(DEMO_BUNDLE, control_plane, ttl_s=POLICY_TTL_S)
    (bundles / f"{DEMO_TENANT}.jws").write_text(jws)
    token = mint_caller_token(
        caller, tenant=DEMO_TENANT, user=DEMO_USER, devices=["local"], ttl_s=POLICY_TTL_S
    )
    return keys / "control-plane.pub", keys / "caller.pub", bundles, token


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
    scratch: Path,
    ca_cert: Path,
    args: argparse.Namespace,
    addresses: dict[str, object],
    *,
    caller_key: Path,
    token: str,
) -> int:
    """Start ``zl bff``, run one turn through it, print the chat page's URL."""
    import httpx

    ready = scratch / "bff-ready.json"
    env = dict(
        os.environ,
        ZL_HTTP__PORT="0",
        ZL_HTTP__DEV_CERTS_DIR=str(args.certs),
        ZL_HOST__TARGET=f"localhost:{addresses['grpc_port']}",
        ZL_HOST__CA=str(ca_cert),
        ZL_AUTH__PUBLIC_KEYS=str(caller_key),
    )
    bff = subprocess.Popen(
        [sys.executable, "-m", "supervisors", "bff", "--ready-file", str(ready), *QUIET],
        env=env,
    )
    try:
        url = str(json.loads(_wait_file(ready, bff, "the BFF"))["url"])
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


def cert_lines(certs: DevCerts) -> list[str]:
    """Whether each certificate was just made or kept from an earlier run."""
    lines = []
    for name in ("ca_cert", "server_cert", "client_cert"):
        path: Path = getattr(certs, name)
        # ``generated`` holds file names (ca.pem, ...), not paths.
        made = "made" if path.name in certs.generated else "kept"
        lines.append(f"   {made}: {path}")
    return lines


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
    for line in cert_lines(certs):
        print(line)

    with tempfile.TemporaryDirectory(prefix="zl-demo-") as scratch_dir:
        scratch = Path(scratch_dir)
        ready = scratch / "ready.json"
        audit = scratch / "audit.jsonl"
        files = scratch / "files"
        files.mkdir()
        (files / "notes.txt").write_text(DEMO_NOTE)
        (files / "secret.txt").write_text(DEMO_SECRET)
        control_plane_key, caller_key, bundles, token = _keys_and_bundle(scratch)
        _step(
            f"the control plane (zl policy serve, HTTPS) serves {DEMO_TENANT}'s signed policy: "
            "fs.read of notes.txt and notes/** only"
        )
        policy_ready = scratch / "policy.url"
        control = _start(
            [
                "policy",
                "serve",
                str(bundles),
                "--port",
                "0",
                "--dev-certs",
                str(args.certs),
                "--ready-file",
                str(policy_ready),
            ],
            dict(os.environ),
        )
        host: subprocess.Popen[bytes] | None = None
        try:
            source = _wait_file(policy_ready, control, "the control plane")
            print(f"   {source}")
            env = dict(
                os.environ,
                ZL_GRPC__PORT="0",
                ZL_DEBUG__PORT="0",
                ZL_AUDIT__PATH=str(audit),
                ZL_TOOLS__MODE="stdio",
                ZL_TOOLS__ROOTS=json.dumps([str(files)]),
                ZL_GRPC__DEV_CERTS_DIR=str(args.certs),
                ZL_PROVIDER__MOCK__TOKENS_PER_S="25",
                ZL_AUTH__TRUSTED_KEYS=str(caller_key),
                ZL_POLICY__SOURCE=source,
                ZL_POLICY__CA=str(certs.ca_cert),
                ZL_POLICY__TRUSTED_KEYS=str(control_plane_key),
                ZL_POLICY__STATE_DIR=str(scratch / "policy-state"),
            )
            _step(
                "starting the host (its own process; mock model; TLS; callers need a signed "
                f"token; fs.read on {files} under the signed policy)"
            )
            host = _start(["host", "--ready-file", str(ready), *QUIET], env)
            addresses = json.loads(_wait_file(ready, host, "the host"))
            target = f"localhost:{addresses['grpc_port']}"
            _step(
                f"chatting with {target} over TLS as {DEMO_USER} of {DEMO_TENANT} "
                "(tokens print as they stream; the second read is outside the allow-list)"
            )
            channel = open_channel(target, ca=certs.ca_cert, plaintext=False)
            with channel:
                grpc.channel_ready_future(channel).result(timeout=CONNECT_TIMEOUT_S)
                converse(
                    channel,
                    agent_pb2.StartSession(tenant=DEMO_TENANT, user=DEMO_USER),
                    iter(DEMO_MESSAGES),
                    out=sys.stdout,
                    err=sys.stderr,
                    token=token,
                )
            _step(f"the receipts and turn records in the audit ({audit}): one allowed, one denied")
            from actors.audit import audit_main

            audit_main(["tail", str(audit), "-n", "4"])
            status = audit_main(["verify", str(audit)])
            debug_url = addresses.get("debug_url")
            if debug_url:
                _step(f"the host's live actor tree ({debug_url}/debug/actors)")
                from supervisors.tree_cli import tree_main

                tree_main(["--url", str(debug_url)])
            _step("starting the BFF in front of the host (its own process; HTTPS, SSE)")
            status = max(
                status,
                _bff_demo(
                    scratch, certs.ca_cert, args, addresses, caller_key=caller_key, token=token
                ),
            )
        finally:
            _step("stopping the host (SIGTERM: drain, then stop the tree) and the control plane")
            if host is not None:
                _stop(host)
            _stop(control)
    return status
