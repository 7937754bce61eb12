"""The host with other people's tools and as a process: grpcurl, zl host, zl chat, zl demo."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import trio

from tests._grpcurl import grpcurl, parse_stream
from tests._policy import caller_public_key, caller_token

from .conftest import STEP_S, RunningHost

ROOT = Path(__file__).resolve().parents[2]


def zl(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "supervisors", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=dict(os.environ, **(env or {})),
        check=False,
    )


class TestGrpcurl:
    """grpcurl lists, describes and streams a chat through the host's reflection service."""

    async def test_list_describe_and_stream(self, plaintext_host: RunningHost) -> None:
        address = f"127.0.0.1:{plaintext_host.addresses.grpc_port}"
        services = (await grpcurl("-plaintext", address, "list")).split()
        assert "zl.agent.v0.Agent" in services
        assert "grpc.health.v1.Health" in services
        described = await grpcurl("-plaintext", address, "describe", "zl.agent.v0.Agent")
        assert "rpc StreamChat ( stream .zl.agent.v0.ChatRequest )" in described
        requests = "\n".join(
            json.dumps(r)
            for r in (
                {"start_session": {"tenant": "acme", "user": "u1"}},
                {"user_message": {"text": "hello from grpcurl"}},
            )
        )
        authorization = f"authorization: Bearer {caller_token()}"
        out = await grpcurl(
            "-plaintext",
            "-H",
            authorization,
            "-d",
            requests,
            address,
            "zl.agent.v0.Agent/StreamChat",
        )
        events = parse_stream(out)
        kinds = [next(k for k in e if k not in ("session_id", "turn_id", "seq")) for e in events]
        assert kinds[0] == "session_started"
        assert kinds[-1] == "assistant_done"
        text = "".join(e["assistant_delta"]["text"] for e in events if "assistant_delta" in e)
        assert text.startswith('You said: "hello from grpcurl".')


class TestHostCommand:
    """zl host: clear errors for bad configuration; serves, and drains on SIGTERM."""

    def test_bad_value_names_the_key(self) -> None:
        result = zl("host", env={"ZL_GRPC__PORT": "not-a-port"})
        assert result.returncode == 2
        assert "config.grpc.port" in result.stderr
        assert "Traceback" not in result.stderr

    def test_unknown_key_is_named(self, tmp_path: Path) -> None:
        config = tmp_path / "host.toml"
        config.write_text("[sessions]\nmax_sesions = 3\n")
        result = zl("host", "--config", str(config))
        assert result.returncode == 2
        assert "max_sesions" in result.stderr

    def test_tls_is_required_unless_plaintext_is_explicit(self) -> None:
        result = zl("host", env={"ZL_GRPC__PORT": "0", "ZL_DEBUG__PORT": "0"})
        assert result.returncode == 2
        assert "grpc.insecure_dev_plaintext" in result.stderr

    def test_missing_config_file(self, tmp_path: Path) -> None:
        result = zl("host", "--config", str(tmp_path / "nope.toml"))
        assert result.returncode == 2
        assert "does not exist" in result.stderr

    async def test_serve_chat_and_sigterm(self, tmp_path: Path) -> None:
        ready = tmp_path / "ready.json"
        env = dict(
            os.environ,
            ZL_GRPC__PORT="0",
            ZL_DEBUG__PORT="0",
            ZL_AUDIT__PATH=str(tmp_path / "audit.jsonl"),
            ZL_GRPC__DEV_CERTS_DIR=str(tmp_path / "certs"),
            ZL_PROVIDER__MOCK__TOKENS_PER_S="500",
            ZL_AUTH__TRUSTED_KEYS=str(caller_public_key(tmp_path)),
        )
        token_file = tmp_path / "caller.jwt"
        token_file.write_text(caller_token(tenant="dev-tenant", user="dev-user"))
        host = subprocess.Popen(
            [sys.executable, "-m", "supervisors", "host", "--ready-file", str(ready)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            with trio.fail_after(STEP_S):
                while not (ready.exists() and ready.stat().st_size):
                    assert host.poll() is None, host.communicate()
                    await trio.sleep(0.05)
            addresses = json.loads(ready.read_text())
            assert addresses["tls"] is True
            chat = await trio.to_thread.run_sync(
                lambda: zl(
                    "chat",
                    "--target",
                    f"localhost:{addresses['grpc_port']}",
                    "--ca",
                    addresses["ca_cert"],
                    "--token-file",
                    str(token_file),
                    "first message",
                    "second message",
                )
            )
            assert chat.returncode == 0, chat.stderr
            assert 'zl> You said: "first message".' in chat.stdout
            assert 'zl> You said: "second message".' in chat.stdout
            assert chat.stdout.count("[done: stop;") == 2
        finally:
            host.send_signal(signal.SIGTERM)
            out, err = await trio.to_thread.run_sync(lambda: host.communicate(timeout=STEP_S))
        assert host.returncode == 0, err
        assert "serving gRPC on" in out
        assert "zl host: stopped" in out
        assert "SIGTERM received" in err


class TestChatCommand:
    """zl chat fails clearly when it cannot connect."""

    def test_no_ca(self, tmp_path: Path) -> None:
        result = zl("chat", "--ca", str(tmp_path / "missing.pem"), "hi")
        assert result.returncode == 2
        assert "not found" in result.stderr


class TestDemo:
    """The README's demo command works from a clean folder and shows streamed tokens."""

    def test_demo(self, tmp_path: Path) -> None:
        result = zl("demo", "--certs", str(tmp_path / "certs"), timeout=120)
        assert result.returncode == 0, result.stderr
        out = result.stdout
        assert "starting the host" in out
        assert 'zl> You said: "Hello, Zero Latency!".' in out
        assert "[done: stop;" in out
        assert '[tool fs.read@1.0.0 on local {"path": "notes.txt"' in out
        assert "[tool ok " in out
        assert "It says: Zero Latency read this file through fs.read" in out
        assert "tool.receipt     fs.read@1.0.0" in out
        assert ": ok in " in out
        assert "policy demo-policy r1 allow by read-notes" in out
        # The read outside the path allow-list is denied, the model says why, and it has a
        # receipt too.
        assert '[tool fs.read@1.0.0 on local {"path": "secret.txt"}]' in out
        assert "[tool denied: tool.denied:" in out
        assert "I could not read it (tool.denied)" in out
        assert ": denied tool.denied in " in out
        assert "policy demo-policy r1 deny by default-deny" in out
        assert "outside the policy's path allow-list" not in out, "the secret is never read"
        assert "OK " in out
        assert "tool.receipt 2" in out
        assert "host [supervisor:Supervisor] running" in out
        assert "policy_cache [actor:PolicyCache] running" in out
        assert "mcp_server [actor:McpStdioClient] running" in out
        assert "stopping the host" in out
        # The BFF in front of the host: one turn over HTTPS/SSE, then the page's URL.
        assert "starting the BFF" in out
        assert "tool.call.started id 2: fs.read" in out
        assert ": ok, receipt rcpt_" in out
        assert "assistant.done id " in out
        assert "https://localhost:" in out
        assert "/#token=ey" in out
