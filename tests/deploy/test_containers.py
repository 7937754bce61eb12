"""The host and relay images, built and run with podman: a chat with a tool call through them.

The images are built by ``deploy/scripts/build-images.sh`` (the script CI and the runbook
use), then run as a user would: read-only root filesystem, no capabilities, configuration
from a mounted file and ``ZL_*`` variables, secrets from mounted files, ``--network host``
on loopback ports the processes pick. The bridge is the ``pipx``-installed lean package on
this machine; the chat is ``zl chat`` (grpcio over TLS). ``podman stop`` must drain both.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import attrs
import pytest

from actors.audit import verify_audit
from tests._policy import (
    USER,
    caller_key,
    caller_token,
    control_plane_key,
    permissive_bundle,
    public_key_file,
)
from tests.relay._support import Bridge, Env, make_env

from .conftest import BIN, REPO, LeanBridge

BUILD_SCRIPT = REPO / "deploy" / "scripts" / "build-images.sh"
TAG = "dev"
#: Building from nothing (debootstrap, wheels, two images) takes a few minutes.
BUILD_TIMEOUT_S = 1500
#: Bound on any one wait for a container (start, answer, drain).
STEP_S = 90.0
TENANT = "acme"
DEVICE = "laptop-1"
NOTES = "written on the device, read through two containers\n"
#: The non-root user the images run as.
IMAGE_UID = 10001

T = TypeVar("T")


def podman_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(REPO / "deploy" / "podman" / "containers.conf"))
    return env


def podman(
    *args: str, check: bool = True, timeout: float = STEP_S
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args],
        env=podman_env(),
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
    )


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float = STEP_S) -> T:
    """Poll ``probe`` until it returns a value (podman has no event to wait on here)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value is not None:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@attrs.frozen(kw_only=True)
class Images:
    host: str
    relay: str
    build_s: float


@pytest.fixture(scope="session")
def images() -> Images:
    if shutil.which("podman") is None:
        pytest.skip(
            "podman is not installed (apt-get install podman runc debootstrap; .ci/run does)"
        )
    started = time.monotonic()
    subprocess.run(
        [str(BUILD_SCRIPT), "host", "relay"],
        env=dict(podman_env(), ZL_IMAGE_TAG=TAG, ZL_PYTHON=str(BIN / "python")),
        check=True,
        timeout=BUILD_TIMEOUT_S,
    )
    return Images(
        host=f"localhost/zero-latency-host:{TAG}",
        relay=f"localhost/zero-latency-relay:{TAG}",
        build_s=time.monotonic() - started,
    )


@attrs.define
class Container:
    name: str
    started_at: float

    def logs(self) -> str:
        out = podman("logs", self.name, check=False)
        return out.stdout + out.stderr

    def wait_log(self, pattern: str) -> re.Match[str]:
        regex = re.compile(pattern)
        return wait_for(
            f"{pattern!r} in the logs of {self.name}", lambda: regex.search(self.logs())
        )

    def exec(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return podman("exec", self.name, *argv, check=False)

    def stop(self) -> int:
        podman("stop", "--time", "60", self.name, timeout=STEP_S)
        return int(podman("inspect", "--format", "{{.State.ExitCode}}", self.name).stdout)


@pytest.fixture
def containers() -> Iterator[list[Container]]:
    started: list[Container] = []
    yield started
    for container in started:
        podman("rm", "--force", "--time", "5", container.name, check=False)


def run(containers: list[Container], image: str, role: str, *options: str) -> Container:
    name = f"zl-test-{role}-{uuid.uuid4().hex[:8]}"
    started_at = time.monotonic()
    podman(
        "run",
        "--detach",
        "--name",
        name,
        "--network",
        "host",
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        *options,
        image,
    )
    container = Container(name=name, started_at=started_at)
    containers.append(container)
    return container


def secrets(env: Env, tmp_path: Path) -> Path:
    """The files the containers mount read-only: TLS pair, CA, the relay signing public key,
    the host's relay token, the caller-token and control-plane public keys."""
    folder = tmp_path / "secrets"
    folder.mkdir()
    for source, name in (
        (env.cert, "tls.crt"),
        (env.cert_key, "tls.key"),
        (env.ca, "ca.crt"),
        (env.public_key, "relay-signing.pub"),
    ):
        shutil.copyfile(source, folder / name)
    (folder / "host.jwt").write_text(env.host_token(TENANT))
    public_key_file(caller_key(), folder / "caller.pub")
    public_key_file(control_plane_key(), folder / "control-plane.pub")
    return folder


@pytest.fixture
def control_plane(tmp_path: Path) -> Iterator[str]:
    """``zl policy serve`` on loopback (HTTPS) with the tenant's signed bundle; its source URL.

    The host container pulls the bundle from it, and the bridge verifies the same bundle.
    """
    bundles = tmp_path / "bundles"
    bundles.mkdir()
    (bundles / f"{TENANT}.jws").write_text(permissive_bundle(TENANT))
    certs = tmp_path / "control-plane-certs"
    ready = tmp_path / "control-plane.url"
    process = subprocess.Popen(
        [
            *(str(BIN / "zl"), "policy", "serve", str(bundles), "--port", "0"),
            *("--dev-certs", str(certs), "--ready-file", str(ready)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield wait_for(
            "the control plane's ready file",
            lambda: ready.read_text().strip() if ready.exists() and ready.stat().st_size else None,
        )
    finally:
        process.terminate()
        process.wait(timeout=STEP_S)


RELAY_TOML = """\
shard_id = "relay-0"
public_keys = ["/etc/zl/secrets/relay-signing.pub"]

[[shards]]      # one shard: nobody is redirected, so its URLs are not dialled
shard_id = "relay-0"
url = "wss://127.0.0.1/v1/device"
host_url = "wss://127.0.0.1/v1/host"

[devices]
host = "127.0.0.1"
port = 0
[hosts]
host = "127.0.0.1"
port = 0
[tls]
cert = "/etc/zl/secrets/tls.crt"
key = "/etc/zl/secrets/tls.key"
[debug]
host = "127.0.0.1"
port = 0
"""

HOST_TOML = """\
[grpc]
host = "127.0.0.1"
port = 0
tls_cert = "/etc/zl/secrets/tls.crt"
tls_key = "/etc/zl/secrets/tls.key"
shutdown_grace_s = 5

[debug]
host = "127.0.0.1"
port = 0

[audit]
path = "/var/lib/zl/audit.jsonl"
fsync_every_records = 1

[auth]
trusted_keys = ["/etc/zl/secrets/caller.pub"]

[policy]
trusted_keys = ["/etc/zl/secrets/control-plane.pub"]
ca = "/etc/zl/secrets/control-plane-ca.crt"
state_dir = "/var/lib/zl/policy"
"""


class TestContainers:
    """Host and relay images: run, chat with a tool call via the lean bridge, stop and drain."""

    def test_chat_with_a_tool_call_through_the_containers(
        self,
        images: Images,
        lean_bridge: LeanBridge,
        containers: list[Container],
        control_plane: str,
        tmp_path: Path,
    ) -> None:
        env = make_env(tmp_path, n_shards=1)
        folder = secrets(env, tmp_path)
        # The control plane's development CA, which the host checks its certificate with.
        shutil.copyfile(
            tmp_path / "control-plane-certs" / "ca.pem", folder / "control-plane-ca.crt"
        )
        (tmp_path / "relay.toml").write_text(RELAY_TOML)
        (tmp_path / "host.toml").write_text(HOST_TOML)
        state = tmp_path / "state"
        state.mkdir()
        mount_secrets = f"{folder}:/etc/zl/secrets:ro,U"

        relay = run(
            containers,
            images.relay,
            "relay",
            "--volume",
            f"{tmp_path / 'relay.toml'}:/etc/zl/relay.toml:ro",
            "--volume",
            mount_secrets,
        )
        found = relay.wait_log(r"devices at (wss://\S+), hosts at (wss://\S+)")
        relay_ready_s = time.monotonic() - relay.started_at
        device_url, host_url = found.group(1), found.group(2)

        host = run(
            containers,
            images.host,
            "host",
            "--volume",
            f"{tmp_path / 'host.toml'}:/etc/zl/host.toml:ro",
            "--volume",
            mount_secrets,
            "--volume",
            f"{state}:/var/lib/zl:U",
            "--env",
            "ZL_TOOLS__MODE=relay",
            "--env",
            f"ZL_TOOLS__RELAY_SHARDS=relay-0={host_url}",
            "--env",
            "ZL_TOOLS__RELAY_TOKEN_FILE=/etc/zl/secrets/host.jwt",
            "--env",
            "ZL_TOOLS__RELAY_CA=/etc/zl/secrets/ca.crt",
            "--env",
            f"ZL_POLICY__SOURCE={control_plane}",
        )
        port = int(host.wait_log(r"serving gRPC on 127\.0\.0\.1:(\d+) \(TLS\)").group(1))
        host_ready_s = time.monotonic() - host.started_at

        for container in (relay, host):
            check = podman("healthcheck", "run", container.name, check=False)
            assert check.returncode == 0, (container.name, check.stdout, check.stderr)
        assert host.exec("id", "-u").stdout.strip() == str(IMAGE_UID)
        assert host.exec("touch", "/opt/zl/written").returncode != 0  # read-only root
        assert (
            host.exec("sh", "-c", "command -v gcc || command -v cc || command -v make").returncode
            != 0
        )

        root = tmp_path / "device-files"
        root.mkdir()
        (root / "notes.txt").write_text(NOTES)
        bridge = Bridge(
            env, device_url, TENANT, DEVICE, root=root, command=(str(lean_bridge.zl_bridge),)
        )
        try:
            chat = wait_for(
                "a chat whose model reads notes.txt", lambda: chat_once(env, port), STEP_S
            )
        finally:
            bridge.stop()
        assert f"[tool fs.read@1.0.0 on {DEVICE}" in chat
        assert "[tool ok" in chat
        assert "written on the device" in chat

        assert host.stop() == 0
        host_logs = host.logs()
        assert "host: SIGTERM received, shutting down" in host_logs
        assert "host: draining gRPC streams" in host_logs
        assert "zl host: stopped" in host_logs
        assert relay.stop() == 0
        relay_logs = relay.logs()
        assert "relay: SIGTERM received, shutting down" in relay_logs
        assert "zl relay: stopped" in relay_logs
        assert "Traceback" not in host_logs + relay_logs

        audit = state / "audit.jsonl"
        receipts = [
            json.loads(line)["payload"]
            for line in audit.read_text().splitlines()
            if json.loads(line)["kind"] == "tool.receipt"
        ]
        assert [(r["device_id"], r["outcome"]) for r in receipts[-1:]] == [(DEVICE, "ok")]
        assert verify_audit(audit).ok
        sizes = {
            name: int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout)
            for name, image in (("host", images.host), ("relay", images.relay))
        }
        print(
            json.dumps(
                {
                    "build_s": round(images.build_s, 1),
                    "relay_ready_s": round(relay_ready_s, 2),
                    "host_ready_s": round(host_ready_s, 2),
                    "image_mb": {k: round(v / 1e6) for k, v in sizes.items()},
                }
            )
        )


def chat_once(env: Env, port: int) -> str | None:
    """One ``zl chat`` turn; its output once the model used the device's tool, else None."""
    token = env.tmp / "caller.jwt"
    token.write_text(caller_token(TENANT, USER, devices=(DEVICE,)))
    out = subprocess.run(
        [
            str(BIN / "zl"),
            "chat",
            "--target",
            f"localhost:{port}",
            "--ca",
            str(env.ca),
            "--token-file",
            str(token),
            "--tenant",
            TENANT,
            "--user",
            USER,
            "--device",
            DEVICE,
            "read notes.txt",
        ],
        capture_output=True,
        text=True,
        timeout=STEP_S,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout if "[tool fs.read" in out.stdout else None


class TestBffImage:
    """The BFF's image builds from the same pattern and its process starts in it."""

    def test_bff_image_builds_and_runs(self, images: Images) -> None:
        subprocess.run(
            [str(BUILD_SCRIPT), "bff"],
            env=dict(podman_env(), ZL_IMAGE_TAG=TAG, ZL_PYTHON=str(BIN / "python")),
            check=True,
            timeout=BUILD_TIMEOUT_S,
        )
        image = f"localhost/zero-latency-bff:{TAG}"
        out = podman("run", "--rm", "--read-only", "--cap-drop", "ALL", image, "bff", "--help")
        assert "bff" in out.stdout
        assert podman("run", "--rm", "--entrypoint", "id", image, "-u").stdout.strip() == str(
            IMAGE_UID
        )
