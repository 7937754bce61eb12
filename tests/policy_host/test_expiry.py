"""Expiry and outages with a real control plane (``zl policy serve``'s server, HTTPS with
ETags) and a real host: text keeps streaming past ``exp``, tool calls are denied
``policy.expired``, and a fresh bundle restores them without a restart."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from actors.policy import unverified_claims
from supervisors.host import AuditSection, MockSection, ProviderSection, ToolsSection
from supervisors.policy_server import PolicyServerBinding, serve_policy
from supervisors.tls import generate_dev_certs, server_ssl_context
from tests._policy import make_test_policy
from tests.host.conftest import (
    Conversation,
    RunningHost,
    host_config,
    in_thread,
    kind,
    say,
    start_host,
)
from tests.tools.test_tool_turns import receipts

NOTE = "policy lets you read this\n"
#: Short enough to expire within a test, long enough for a loaded machine to stream past.
TTL_S = 3.0


@attrs.define
class ControlPlane:
    """A ``zl policy serve`` server in this process that can be stopped and started again."""

    directory: Path
    certs: Any
    nursery: trio.Nursery
    port: int = 0
    scope: trio.CancelScope | None = None
    binding: PolicyServerBinding | None = None

    async def start(self) -> PolicyServerBinding:
        scope = trio.CancelScope()

        async def run(task_status: trio.TaskStatus[PolicyServerBinding]) -> None:
            with scope:
                await serve_policy(
                    self.directory,
                    port=self.port,
                    ssl_context=server_ssl_context(self.certs.server_cert, self.certs.server_key),
                    task_status=task_status,
                )

        self.binding = await self.nursery.start(run)
        self.port, self.scope = self.binding.port, scope
        return self.binding

    def stop(self) -> None:
        assert self.scope is not None
        self.scope.cancel()


async def turn(talk: Conversation, text: str) -> list[Any]:
    talk.send(say(text))
    return await in_thread(lambda: talk.until(lambda e: kind(e) in ("assistant_done", "error")))


def tool_delta(events: list[Any]) -> Any:
    return next(e.tool_call_delta for e in events if kind(e) == "tool_call_delta")


async def until_read_ok(talk: Conversation) -> list[Any]:
    """Read notes.txt again and again (the fresh bundle is picked up by polling)."""
    with trio.fail_after(30):
        while True:
            events = await turn(talk, "read notes.txt")
            if any(
                kind(e) == "tool_call_delta" and e.tool_call_delta.status == "ok" for e in events
            ):
                return events
            await trio.sleep(0.2)


@pytest.fixture
async def setup(tmp_path: Path, nursery: trio.Nursery) -> Any:
    root = tmp_path / "files"
    root.mkdir()
    (root / "notes.txt").write_text(NOTE)
    policy = make_test_policy(tmp_path)
    certs = generate_dev_certs(tmp_path / "certs")
    control = ControlPlane(directory=policy.directory, certs=certs, nursery=nursery)
    binding = await control.start()
    audit = tmp_path / "audit.jsonl"
    config = host_config(
        tmp_path,
        tls=False,
        tools=ToolsSection(mode="stdio", roots=[str(root)]),
        audit=AuditSection(path=str(audit), fsync_every_records=1),
        # 20 tokens/s for 120 tokens: a turn streams for 6 s, past the bundle's exp.
        provider=ProviderSection(
            mock=MockSection(first_token_delay_ms=5, tokens_per_s=20, answer_tokens=120)
        ),
        policy=policy.section(
            source=binding.source(),
            ca=str(certs.ca_cert),
            refresh_s=0.3,
            retry_initial_s=0.1,
            retry_max_s=0.5,
        ),
    )
    host = await start_host(nursery, config)
    # Signed now, so that its short life starts when the host is up.
    policy.write(revision=1, ttl_s=TTL_S)
    yield host, policy, control, audit
    host.shutdown.set()


class TestExpiry:
    """A session streaming text while its bundle expires."""

    async def test_expiry_mid_stream(self, setup: Any) -> None:
        host, policy, _control, audit = setup
        assert isinstance(host, RunningHost)
        with host.channel() as channel:
            talk = Conversation(channel, timeout_s=120)
            talk.send(agent_start())
            await in_thread(talk.next_event)
            ok = await turn(talk, "read notes.txt")
            assert tool_delta(ok).status == "ok"
            jws = (policy.directory / "acme.jws").read_text()
            # The control plane has nothing newer from now on: the bundle will expire.
            (policy.directory / "acme.jws").unlink()
            long = await turn(talk, "tell me a long story")
            finished_at = time.time()
            expires_at = unverified_claims(jws)["exp"]
            assert finished_at > expires_at, "the premise: the bundle expired during the stream"
            deltas = [e for e in long if kind(e) == "assistant_delta"]
            assert kind(long[-1]) == "assistant_done", "text keeps streaming past exp"
            assert long[-1].assistant_done.usage.output_tokens == 120
            assert len(deltas) > 0
            denied = await turn(talk, "read notes.txt")
            delta = tool_delta(denied)
            assert delta.status == "denied"
            assert delta.error.code == "policy.expired"
            assert kind(denied[-1]) == "assistant_done", "the model answers after the denial"
            # A fresh bundle restores tools, no restart.
            policy.write(revision=2, ttl_s=600)
            await until_read_ok(talk)
            talk.close()
            await in_thread(talk.rest)
        found = receipts(audit)
        expired = [r for r in found if r["error_code"] == "policy.expired"]
        assert expired, found
        assert expired[0]["outcome"] == "denied"
        assert expired[0]["decision"] == "deny"
        assert expired[0]["policy_revision"] == 1
        assert found[-1]["outcome"] == "ok"
        assert found[-1]["policy_revision"] == 2
        assert found[-1]["decision"] == "allow"
        assert found[-1]["rule_id"] == "allow-all"

    async def test_control_plane_down_longer_than_the_ttl(self, setup: Any) -> None:
        host, policy, control, _audit = setup
        with host.channel() as channel:
            talk = Conversation(channel, timeout_s=120)
            talk.send(agent_start())
            await in_thread(talk.next_event)
            assert tool_delta(await turn(talk, "read notes.txt")).status == "ok"
            control.stop()
            await trio.sleep(TTL_S + 0.5)
            delta = tool_delta(await turn(talk, "read notes.txt"))
            assert (delta.status, delta.error.code) == ("denied", "policy.expired")
            policy.write(revision=2, ttl_s=600)
            await control.start()  # back, on the same address
            await until_read_ok(talk)
            talk.close()
            await in_thread(talk.rest)
        assert control.binding is not None
        assert control.binding.answered[200] >= 1


def agent_start() -> Any:
    from tests.host.conftest import start_request

    return start_request()
