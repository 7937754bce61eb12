"""Every command, run for real: a start-up error is one line on stderr that names the
setting and says what to do, with exit status 2, never a traceback; ``| head`` never
prints ``BrokenPipeError``; Ctrl-C in ``zl chat`` ends quietly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.audit import RECEIPT_KIND, AuditFile, FsyncPolicy
from actors.relay import generate_signing_key, mint_device_token, save_public_key
from supervisors.tls import generate_dev_certs
from tests.audit._support import receipt

REPO = Path(__file__).resolve().parents[2]
ZL = [sys.executable, "-m", "supervisors"]
BRIDGE = [sys.executable, "-m", "supervisors.bridge"]
RUN_TIMEOUT_S = 60
WITHOUT_OTLP = Path(__file__).resolve().parent / "_without_otlp"


def run(argv: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ZL_")}
    environ.update(env)
    return subprocess.run(
        argv, cwd=cwd, env=environ, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )


def one_line(result: subprocess.CompletedProcess[str], prog: str, *needles: str) -> str:
    """The result is exit 2 and exactly one stderr line, naming what it must."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith(f"{prog}: "), line
    assert "Traceback" not in line
    for needle in needles:
        assert needle in line, line
    return line


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("certs")
    generate_dev_certs(folder)
    return folder


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def key_file(path: Path) -> Path:
    save_public_key(generate_signing_key().public_key(), path)
    return path


def host_env(certs: Path, tmp_path: Path, **more: str) -> dict[str, str]:
    """A host that would start: TLS, caller tokens checked, a policy for its tools."""
    (tmp_path / "audit").mkdir(exist_ok=True)
    return {
        "ZL_GRPC__PORT": "0",
        "ZL_DEBUG__PORT": "0",
        "ZL_GRPC__DEV_CERTS_DIR": str(certs),
        "ZL_AUDIT__PATH": str(tmp_path / "audit" / "audit.jsonl"),
        "ZL_AUTH__TRUSTED_KEYS": json.dumps([str(key_file(tmp_path / "callers.pub"))]),
        "ZL_POLICY__SOURCE": f"file:{tmp_path}/policy/{{tenant}}.jws",
        "ZL_POLICY__TRUSTED_KEYS": json.dumps([str(key_file(tmp_path / "control-plane.pub"))]),
        "ZL_POLICY__STATE_DIR": str(tmp_path / "policy-state"),
        **more,
    }


class TestHost:
    """``zl host``: each setting it cannot start with, in one line."""

    @pytest.mark.parametrize(
        ("change", "needles"),
        [
            pytest.param(
                {"ZL_GRPC__TLS_CERT": "/nope/cert.pem", "ZL_GRPC__TLS_KEY": "/nope/key.pem"},
                ("grpc.tls_cert", "/nope/cert.pem"),
                id="missing-certificate",
            ),
            pytest.param(
                {"ZL_GRPC__PORT": "70000"}, ("config.grpc.port", "65535"), id="port-range"
            ),
            pytest.param(
                {"ZL_TOOLS__MODE": "bogus"},
                ("config.tools.mode", "none, stdio, relay", "bogus"),
                id="bad-choice",
            ),
            pytest.param(
                {"ZL_AUDIT__PATH": "/nonexistent-folder/audit.jsonl"},
                ("audit.path", "/nonexistent-folder", "create its folder"),
                id="missing-audit-folder",
            ),
            pytest.param(
                # (The package is installed here: the folder hides it from the host.)
                {"ZL_TELEMETRY__EXPORTER": "otlp", "PYTHONPATH": str(WITHOUT_OTLP)},
                ("telemetry.exporter", "opentelemetry-exporter-otlp-proto-http"),
                id="missing-otlp-exporter",
            ),
            pytest.param(
                {
                    "ZL_TOOLS__MODE": "relay",
                    "ZL_TOOLS__RELAY_SHARDS": "r1=wss://127.0.0.1:1/v1/host",
                    "ZL_TOOLS__RELAY_CA": "/nope/ca.pem",
                    "ZL_TOOLS__RELAY_TOKEN_FILE": "/nope/host.jwt",
                },
                ("tools.relay_token_file", "/nope/host.jwt"),
                id="missing-token-file",
            ),
        ],
    )
    def test_bad_setting(
        self, certs: Path, tmp_path: Path, change: dict[str, str], needles: tuple[str, ...]
    ) -> None:
        one_line(
            run([*ZL, "host"], tmp_path, **{**host_env(certs, tmp_path), **change}),
            "zl host",
            *needles,
        )

    @pytest.mark.parametrize("which", ["ZL_GRPC__PORT", "ZL_DEBUG__PORT"])
    def test_port_in_use(self, certs: Path, tmp_path: Path, busy_port: int, which: str) -> None:
        env = {**host_env(certs, tmp_path), which: str(busy_port)}
        key = "grpc.port" if which == "ZL_GRPC__PORT" else "debug.port"
        one_line(run([*ZL, "host"], tmp_path, **env), "zl host", key, str(busy_port), "in use")

    def test_unknown_log_level(self, certs: Path, tmp_path: Path) -> None:
        result = run([*ZL, "host", "--log-level", "LOUD"], tmp_path, **host_env(certs, tmp_path))
        one_line(result, "zl host", "--log-level", "LOUD", "DEBUG, INFO")


class TestRelay:
    """``zl relay``: keys, certificates and ports, in one line."""

    def config(self, tmp_path: Path, certs: Path, *, key: Path, port: int = 0) -> Path:
        path = tmp_path / "relay.toml"
        path.write_text(
            f"""
shard_id = "r1"
public_keys = [{json.dumps(str(key))}]
[[shards]]
shard_id = "r1"
url = "wss://127.0.0.1:1/v1/device"
host_url = "wss://127.0.0.1:1/v1/host"
[devices]
port = {port}
[tls]
cert = {json.dumps(str(certs / "server.pem"))}
key = {json.dumps(str(certs / "server.key"))}
"""
        )
        return path

    def test_missing_public_key(self, tmp_path: Path, certs: Path) -> None:
        config = self.config(tmp_path, certs, key=tmp_path / "missing.pub")
        result = run([*ZL, "relay", "--config", str(config)], tmp_path)
        one_line(result, "zl relay", "public_keys", "missing.pub")

    def test_port_in_use(self, tmp_path: Path, certs: Path, busy_port: int) -> None:
        key = tmp_path / "relay.pub"
        save_public_key(generate_signing_key().public_key(), key)
        config = self.config(tmp_path, certs, key=key, port=busy_port)
        result = run([*ZL, "relay", "--config", str(config)], tmp_path)
        one_line(result, "zl relay", "devices.port", str(busy_port))


class TestBridge:
    """``zl-bridge``: token file, CA, roots, log level, in one line."""

    @pytest.mark.parametrize(
        ("extra", "needles"),
        [
            pytest.param(
                ["--token-file", "/nope/device.jwt"], ("--token-file",), id="missing-token"
            ),
            pytest.param(["--ca", "/nope/ca.pem"], ("--ca", "/nope/ca.pem"), id="missing-ca"),
            pytest.param(["--root", "/nope/root"], ("--root", "/nope/root"), id="bad-root"),
            pytest.param(["--log-level", "LOUD"], ("--log-level",), id="bad-log-level"),
        ],
    )
    def test_bad_argument(
        self, tmp_path: Path, certs: Path, extra: list[str], needles: tuple[str, ...]
    ) -> None:
        token = tmp_path / "device.jwt"
        token.write_text(
            mint_device_token(generate_signing_key(), tenant="acme", device_id="d1", ttl=600)
        )
        argv = [*BRIDGE, "--relay", "wss://127.0.0.1:1/v1/device", "--device-id", "d1"]
        base = {
            "--token-file": str(token),
            "--ca": str(certs / "ca.pem"),
            "--root": str(tmp_path),
            "--policy-key": str(key_file(tmp_path / "control-plane.pub")),
        }
        for option, value in zip(extra[::2], extra[1::2], strict=True):
            base[option] = value
        for option, value in base.items():
            argv += [option, value]
        if "--log-level" in extra:
            argv += extra
        one_line(run(argv, tmp_path), "zl-bridge", *needles)


class TestPipesAndInterrupts:
    """``| head`` and Ctrl-C end quietly."""

    def test_audit_tail_into_head(self, tmp_path: Path) -> None:
        audit = tmp_path / "audit.jsonl"
        # Enough records that the reader goes away while the writer still writes.
        file = AuditFile.open(audit, fsync=FsyncPolicy(), writer="cli-test")
        file.append(
            [(RECEIPT_KIND, receipt(n).to_payload(), "2026-01-01T00:00:00Z") for n in range(3000)]
        )
        file.close()
        shell = f"{' '.join(ZL)} audit tail {audit} -n 3000 | head -n 1"
        result = subprocess.run(
            shell, shell=True, cwd=REPO, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
        )
        assert len(result.stdout.splitlines()) == 1
        assert "BrokenPipeError" not in result.stderr
        assert result.stderr == ""

    def test_chat_ctrl_c_is_quiet(self, tmp_path: Path) -> None:
        # A host that never answers: the chat waits for it, and is interrupted there.
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen()
            port = silent.getsockname()[1]
            chat = subprocess.Popen(
                [*ZL, "chat", "--plaintext", "--target", f"127.0.0.1:{port}", "hello"],
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            time.sleep(1.0)  # it is waiting for the channel now
            chat.send_signal(signal.SIGINT)
            _, err = chat.communicate(timeout=RUN_TIMEOUT_S)
        assert chat.returncode == 130
        assert "Traceback" not in err
        assert "KeyboardInterrupt" not in err
