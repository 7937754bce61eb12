"""``zl demo``: a control plane, a host on TLS, and a chat whose tool calls policy decides.

Everything is real: the control plane (``zl policy serve``, HTTPS with ETags) and the host
run as their own processes, the host pulls and verifies the tenant's signed bundle, the
chat is the standard grpcio client over TLS with a minted caller token, the model reads one
file the bundle allows and one it does not (denied, with a receipt naming the rule), and
the tree comes from the host's debug endpoint.
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


def demo_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zl demo", description=__doc__)
    parser.add_argument("--certs", type=Path, default=Path(".zl/certs"))
    args = parser.parse_args(argv)

    _step(f"development certificates in {args.certs}")
    certs = generate_dev_certs(args.certs)
    for name in ("ca_cert", "server_cert", "client_cert"):
        made = "made" if str(getattr(certs, name)) in certs.generated else "kept"
        print(f"   {made}: {getattr(certs, name)}")

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
            host = _start(["host", "--ready-file", str(ready), "--log-level", "WARNING"], env)
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
            _step(f"the receipts in the audit ({audit}): one allowed read, one denied")
            from actors.audit import audit_main

            audit_main(["tail", str(audit), "-n", "2"])
            status = audit_main(["verify", str(audit)])
            debug_url = addresses.get("debug_url")
            if debug_url:
                _step(f"the host's live actor tree ({debug_url}/debug/actors)")
                from supervisors.tree_cli import tree_main

                tree_main(["--url", str(debug_url)])
        finally:
            _step("stopping the host (SIGTERM: drain, then stop the tree) and the control plane")
            if host is not None:
                _stop(host)
            _stop(control)
    return status
