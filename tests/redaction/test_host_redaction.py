"""Before the model: a real host (gRPC on loopback, grpcio client), the OpenAI-compatible
adapter against the fake upstream (a real HTTP server), fs.read over a stdio MCP server.

What the upstream received is checked byte for byte: no secret of a user message or of a
file read by the tool reaches it, the client's own stream is unchanged, the audit holds
digests only, and a tenant pattern written to backtrack forever neither hangs nor slows
the host (RE2).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import grpc
import pytest
import trio
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from actors.provider.fake_upstream import FakeUpstream, Script, ScriptedToolCall, open_fake_upstream
from actors.redaction import RedactionSettings, TenantRedaction
from actors.telemetry import Telemetry, TelemetryConfig
from supervisors.host import AuditSection, HostAddresses, PolicySection, ToolsSection, run_host
from supervisors.host._provider import open_host_provider
from supervisors.tls import generate_dev_certs
from tests._policy import (
    TENANT,
    bearer,
    caller_token,
    make_test_policy,
    with_metadata,
)
from tests.host.conftest import Conversation, host_config, in_thread, kind, say, start_request
from tests.host_provider.conftest import provider_section
from tests.policy_host.test_expiry import ControlPlane

FIXTURES = Path(__file__).with_name("fixtures")

# Values of several classes, as a user pastes them.
SECRETS = {
    "github_token": "ghp_R8kT2mVq9XwL4pZs7NbC1dFh6JyG3aEo5uIt",
    "aws_key_id": "AKIAQ3EGRIOSFODN7XYZ",
    "password": "Tr0ub4dor&3",
    "email": "maria.rossi@example-bank.it",
    "card": "4111 1111 1111 1111",
    "stripe_key": "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
}
USER_TEXT = (
    f"my token {SECRETS['github_token']} and key {SECRETS['aws_key_id']} fail; "
    f"password={SECRETS['password']}, mail {SECRETS['email']}, card {SECRETS['card']}"
)
FILE_TEXT = (
    "# billing service\n"
    f"STRIPE_SECRET_KEY={SECRETS['stripe_key']}\n"
    f"ADMIN_EMAIL={SECRETS['email']}\n"
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEpAIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\n"
    "aFDrBz9vFqU4yRfT0kR0ZxS2LtpQkPcuNq8BoCK9UwkJ2t8IfV9cRzgE3XhM1o2D\n"
    "-----END RSA PRIVATE KEY-----\n"
    "version = 1.4.2  # commit 9fceb02d0ae598e95dc970b74767f19372d61af8\n"
)
PEM_LINE = "MIIEpAIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB"


def _escapes(value: str) -> set[str]:
    """The forms a value can take inside a JSON body (as is, JSON-escaped, \\/ escaped)."""
    escaped = json.dumps(value)[1:-1]
    return {value, escaped, escaped.replace("/", "\\/")}


def leaked(body: Mapping[str, Any], values: list[str]) -> list[str]:
    raw = json.dumps(body, ensure_ascii=False)
    return [v for v in values if any(form in raw for form in _escapes(v))]


@attrs.define
class Host:
    addresses: HostAddresses
    upstream: FakeUpstream
    metrics: InMemoryMetricReader

    def channel(self, tenant: str = TENANT) -> grpc.Channel:
        """A channel whose calls carry a caller token for ``tenant`` (user u1, any device)."""
        channel = grpc.insecure_channel(f"127.0.0.1:{self.addresses.grpc_port}")
        return with_metadata(channel, bearer(caller_token(tenant)))

    def redaction_counts(self) -> dict[tuple[str, str], int]:
        """``zl.redaction.count`` by (class, site), as the metric reader sees it."""
        data = self.metrics.get_metrics_data()
        counts: dict[tuple[str, str], int] = {}
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name != "zl.redaction.count":
                        continue
                    for point in metric.data.data_points:
                        key = (str(point.attributes["class"]), str(point.attributes["site"]))
                        counts[key] = int(point.value)
        return counts


@asynccontextmanager
async def open_host(
    tmp_path: Path,
    script: Script,
    *,
    root: Path | None = None,
    redaction: TenantRedaction | None = None,
    policy: PolicySection | None = None,
) -> AsyncIterator[Host]:
    """Fake upstream, provider stack, telemetry with a metric reader, and the host.

    With a ``root``, tools run (fs.read over stdio) under ``policy``, by default a
    permissive bundle for acme from a file source.
    """
    tools = ToolsSection(mode="stdio", roots=[str(root)]) if root is not None else ToolsSection()
    sections: dict[str, Any] = {} if policy is None else {"policy": policy}
    config = host_config(
        tmp_path,
        tls=False,
        tools=tools,
        audit=AuditSection(path=str(tmp_path / "audit.jsonl")),
        **sections,
    )
    reader = InMemoryMetricReader()
    telemetry = Telemetry.from_config(TelemetryConfig(), metric_readers=[reader])
    async with (
        open_fake_upstream(script) as upstream,
        open_host_provider(provider_section(upstream.url)) as stack,
        trio.open_nursery() as nursery,
    ):
        shutdown = trio.Event()
        addresses: HostAddresses = await nursery.start(
            lambda task_status: run_host(
                config,
                shutdown=shutdown,
                provider=stack.provider,
                telemetry=telemetry,
                redaction=redaction,
                task_status=task_status,
            )
        )
        try:
            yield Host(addresses=addresses, upstream=upstream, metrics=reader)
        finally:
            shutdown.set()
    telemetry.shutdown()


async def chat(host: Host, *texts: str, tenant: str = TENANT, **limits: int) -> list[Any]:
    """One session: each text is a turn; every event the client received."""
    with host.channel(tenant) as channel:
        talk = Conversation(channel)
        talk.send(start_request(tenant, **limits))
        await in_thread(talk.next_event)
        events: list[Any] = []
        for text in texts:
            talk.send(say(text))
            events += await in_thread(
                lambda: talk.until(lambda e: kind(e) in ("assistant_done", "error"))
            )
        talk.close()
        await in_thread(talk.rest)
    return events


class TestUserMessages:
    """A user's secrets never reach the provider; the client's stream is unchanged."""

    async def test_secrets_in_a_user_message(self, tmp_path: Path) -> None:
        async with open_host(tmp_path, Script(text="Noted, thanks.")) as host:
            events = await chat(host, USER_TEXT)
            counts = host.redaction_counts()
        bodies = [r.body for r in host.upstream.requests]
        assert bodies, "the upstream was never called"
        for body in bodies:
            assert leaked(body, list(SECRETS.values())) == []
        user = next(m for m in bodies[0]["messages"] if m["role"] == "user")
        for kind_ in ("github_token", "aws_key_id", "password", "email", "card"):
            assert f"[REDACTED:{kind_}]" in user["content"]
        answer = "".join(e.assistant_delta.text for e in events if kind(e) == "assistant_delta")
        assert answer == "Noted, thanks."
        assert kind(events[-1]) == "assistant_done"
        assert counts[("email", "model")] == 1
        assert counts[("github_token", "model")] == 1

    async def test_a_big_message_is_redacted_too(self, tmp_path: Path) -> None:
        """Past the inline limit the message is redacted in a worker thread: same result."""
        filler = "lorem ipsum dolor sit amet " * 4000  # ~108 KB
        text = f"{filler}\nkey {SECRETS['stripe_key']}\n{filler}"
        async with open_host(tmp_path, Script(text="ok")) as host:
            events = await chat(host, text, max_message_bytes=512 * 1024)
        assert kind(events[-1]) == "assistant_done", events[-1]
        body = host.upstream.requests[0].body
        assert leaked(body, [SECRETS["stripe_key"]]) == []
        assert "[REDACTED:stripe_key]" in json.dumps(body)

    async def test_pseudonyms_are_stable_within_a_session(self, tmp_path: Path) -> None:
        tenants = TenantRedaction()
        tenants.update_from_bundle("acme", {"pseudonyms": True})
        first, second = "ana@firma.de", "ben@firma.de"
        async with open_host(tmp_path, Script(text="ok"), redaction=tenants) as host:
            await chat(host, f"write to {first} and {second}", f"and again to {first}")
        bodies = [r.body for r in host.upstream.requests]
        last = json.dumps(bodies[-1]["messages"])
        assert leaked(bodies[-1], [first, second]) == []
        assert last.count("[email_1]") == 2
        assert last.count("[email_2]") == 1


class TestToolResults:
    """A file read by fs.read reaches the model redacted; the client gets it as it is."""

    async def test_secrets_in_a_file_read_by_fs_read(self, tmp_path: Path) -> None:
        root = tmp_path / "root"
        root.mkdir()
        (root / "billing.env").write_text(FILE_TEXT)
        script = Script(
            text="",
            tool_call=ScriptedToolCall(arguments='{"path": "billing.env"}', fragments=3),
        )
        async with open_host(tmp_path, script, root=root) as host:
            events = await chat(host, "what is in billing.env?")
            counts = host.redaction_counts()
        requests = list(host.upstream.requests)
        assert len(requests) == 2
        secrets = [SECRETS["stripe_key"], SECRETS["email"], PEM_LINE]
        for request in requests:
            assert leaked(request.body, secrets) == []
        tool = next(m for m in requests[1].body["messages"] if m["role"] == "tool")
        content = json.loads(tool["content"])["content"]  # still valid JSON for the model
        assert "STRIPE_SECRET_KEY=[REDACTED:stripe_key]" in content
        assert "[REDACTED:private_key]" in content
        assert "9fceb02d0ae598e95dc970b74767f19372d61af8" in content  # a git SHA stays
        # The client's own stream carries its file unredacted.
        delta = next(e.tool_call_delta for e in events if kind(e) == "tool_call_delta")
        assert json.loads(delta.result_json)["content"] == FILE_TEXT
        assert counts[("private_key", "model")] == 1

    async def test_the_audit_keeps_digests_and_no_content(self, tmp_path: Path) -> None:
        root = tmp_path / "root"
        root.mkdir()
        (root / "billing.env").write_text(FILE_TEXT)
        script = Script(text="", tool_call=ScriptedToolCall(arguments='{"path": "billing.env"}'))
        async with open_host(tmp_path, script, root=root) as host:
            await chat(host, USER_TEXT)
        audit = (tmp_path / "audit.jsonl").read_text()
        receipts = [json.loads(line) for line in audit.splitlines()]
        assert any(r["kind"] == "tool.receipt" for r in receipts)
        for value in [*SECRETS.values(), PEM_LINE, "billing service"]:
            assert not any(form in audit for form in _escapes(value)), value
        receipt = next(r["payload"] for r in receipts if r["kind"] == "tool.receipt")
        assert receipt["args_digest"].startswith("sha256:")
        assert receipt["result_digest"].startswith("sha256:")


class TestTenantPatterns:
    """A tenant's patterns come from its bundle section; RE2 makes them safe to run."""

    async def test_catastrophic_backtracking_neither_hangs_nor_slows_the_host(
        self, tmp_path: Path
    ) -> None:
        """``(a+)+$`` on 200 000 a's and a '!' takes a backtracking engine 2^200000 steps."""
        section = json.loads((FIXTURES / "catastrophic.json").read_text())
        tenants = TenantRedaction()
        tenants.update_from_bundle("evil", section)
        attack = "a" * 200_000 + "!"
        async with open_host(tmp_path, Script(text="ok"), redaction=tenants) as host:
            with trio.fail_after(60):  # a backtracking engine would never return
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(
                        lambda: chat(
                            host,
                            attack,
                            "badge EMP-123456 please",
                            tenant="evil",
                            max_message_bytes=512 * 1024,
                        )
                    )
                    # Another tenant's session is served meanwhile.
                    other = await chat(host, "hello", tenant="acme")
        assert kind(other[-1]) == "assistant_done"
        bodies = [json.dumps(r.body) for r in host.upstream.requests]
        evil = [b for b in bodies if "badge" in b]
        assert evil
        assert "EMP-123456" not in evil[-1]
        assert "[REDACTED:employee_id]" in evil[-1]
        assert any(attack in b for b in bodies)  # no match: the a's go as they are

    async def test_classes_switched_off_for_one_tenant(self, tmp_path: Path) -> None:
        tenants = TenantRedaction()
        tenants.set_settings(
            "ops",
            RedactionSettings.from_bundle({"classes": {"ipv4": False, "email": False}}),
        )
        text = "ssh to 10.20.30.40 as ops@acme.io with key AKIAQ3EGRIOSFODN7XYZ"
        async with open_host(tmp_path, Script(text="ok"), redaction=tenants) as host:
            await chat(host, text, tenant="ops")
            await chat(host, text, tenant="acme")
        ops, acme = (json.dumps(r.body) for r in host.upstream.requests)
        assert "10.20.30.40" in ops
        assert "ops@acme.io" in ops
        assert "AKIAQ3EGRIOSFODN7XYZ" not in ops
        assert "10.20.30.40" not in acme
        assert "ops@acme.io" not in acme


EMPLOYEE_ID = {"name": "employee_id", "pattern": "\\bEMP-[0-9]{6}\\b"}
TICKET = {"name": "ticket", "pattern": "\\bTCK-[0-9]{4}\\b"}
#: Look-behind: RE2 refuses it (it cannot run it in linear time).
LOOK_BEHIND = {"name": "pin", "pattern": "(?<=PIN:)[0-9]{4}"}


def rejections(host: Host) -> dict[str, int]:
    """``zl.policy.rejections`` by reason, as the metric reader sees it."""
    data = host.metrics.get_metrics_data()
    counts: dict[str, int] = {}
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "zl.policy.rejections":
                    for point in metric.data.data_points:
                        counts[str(point.attributes["reason"])] = int(point.value)
    return counts


class TestSettingsFromTheServedBundle:
    """The tenant's bundle, pulled from ``zl policy serve`` over HTTPS, sets its redaction."""

    async def _served(self, tmp_path: Path, nursery: trio.Nursery, **bundle: Any) -> Any:
        policy = make_test_policy(tmp_path)
        policy.write(revision=1, **bundle)
        certs = generate_dev_certs(tmp_path / "control-plane-certs")
        control = ControlPlane(directory=policy.directory, certs=certs, nursery=nursery)
        binding = await control.start()
        section = policy.section(
            source=binding.source(),
            ca=str(certs.ca_cert),
            refresh_s=0.2,
            retry_initial_s=0.1,
            retry_max_s=0.3,
        )
        root = tmp_path / "root"
        root.mkdir()
        return policy, section, root

    async def test_a_pattern_in_the_bundle_redacts_what_the_model_sees(
        self, tmp_path: Path, nursery: trio.Nursery
    ) -> None:
        _, section, root = await self._served(
            tmp_path, nursery, redaction={"patterns": [EMPLOYEE_ID], "classes": {"ipv4": False}}
        )
        async with open_host(tmp_path, Script(text="ok"), root=root, policy=section) as host:
            # The host's first session of the tenant: its bundle is in force from the start.
            events = await chat(host, "badge EMP-123456 from 10.20.30.40")
        assert kind(events[-1]) == "assistant_done", events[-1]
        body = json.dumps(host.upstream.requests[0].body)
        assert "EMP-123456" not in body
        assert "[REDACTED:employee_id]" in body
        assert "10.20.30.40" in body  # the bundle switched ipv4 off for this tenant
        assert rejections(host) == {}

    async def test_a_pattern_re2_cannot_compile_has_the_bundle_rejected(
        self, tmp_path: Path, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
    ) -> None:
        policy, section, root = await self._served(
            tmp_path, nursery, redaction={"patterns": [EMPLOYEE_ID]}
        )
        (root / "notes.txt").write_text("the file holds EMP-654321 and TCK-4321\n")
        script = Script(text="", tool_call=ScriptedToolCall(arguments='{"path": "notes.txt"}'))
        text = "badge EMP-123456, ticket TCK-1234"
        async with open_host(tmp_path, script, root=root, policy=section) as host:
            before = await chat(host, text)
            # Revision 2 adds a pattern RE2 compiles and one it cannot, and denies every tool.
            deny_all = {"id": "no-tools", "tool": "*", "versions": "*", "effect": "deny"}
            policy.write(
                revision=2,
                rules=[{**deny_all, "devices": ["*"]}],
                redaction={"patterns": [EMPLOYEE_ID, TICKET, LOOK_BEHIND]},
            )
            with caplog.at_level(logging.WARNING, logger="zl.policy"), trio.fail_after(30):
                while "redaction" not in rejections(host):
                    await trio.sleep(0.05)
            after = await chat(host, text)
        # Each turn: the user's message with the tool call, then the tool's result.
        bodies = [json.dumps(r.body) for r in host.upstream.requests]
        assert len(bodies) == 4
        for body in bodies:
            assert "EMP-123456" not in body
            assert "EMP-654321" not in body
            assert "TCK-1234" in body, "nothing of the rejected bundle is in force"
        assert "[REDACTED:employee_id]" in bodies[3]
        assert "TCK-4321" in bodies[3]
        for events in (before, after):
            delta = next(e.tool_call_delta for e in events if kind(e) == "tool_call_delta")
            assert delta.status == "ok", "revision 1's rules still hold"
        assert (
            "bundle rejected (redaction): redaction.patterns[2] (pin): RE2 cannot compile"
            in caplog.text
        )
        assert rejections(host)["redaction"] >= 1
