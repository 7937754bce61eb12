"""A real host (in this process, on loopback) and grpcio clients for the host tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import grpc
import httpx
import pytest
import trio

from actors.provider import ScriptedMockProvider
from contracts.generated import agent_pb2
from supervisors.chat_client import stream_chat
from supervisors.host import (
    AuditSection,
    AuthSection,
    DebugSection,
    GrpcSection,
    HostAddresses,
    HostConfig,
    MockSection,
    ProviderSection,
    SessionsSection,
    run_host,
)
from tests._policy import bearer, caller_public_key, caller_token, make_test_policy, with_metadata

# Bound on any one step, so that a regression fails instead of hanging.
STEP_S = 20.0


@attrs.define
class RunningHost:
    addresses: HostAddresses
    provider: ScriptedMockProvider
    config: HostConfig
    shutdown: trio.Event

    @property
    def target(self) -> str:
        host = "localhost" if self.addresses.tls else "127.0.0.1"
        return f"{host}:{self.addresses.grpc_port}"

    def channel(self, *, token: str | None = None, anonymous: bool = False) -> grpc.Channel:
        """A grpcio channel whose calls carry a caller token (for acme/u1, any device)."""
        if self.addresses.tls:
            assert self.addresses.ca_cert is not None
            creds = grpc.ssl_channel_credentials(Path(self.addresses.ca_cert).read_bytes())
            channel = grpc.secure_channel(self.target, creds)
        else:
            channel = grpc.insecure_channel(self.target)
        if anonymous:
            return channel
        return with_metadata(channel, bearer(token or caller_token()))

    async def tree(self) -> dict[str, Any]:
        assert self.addresses.debug_url is not None
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(f"{self.addresses.debug_url}/debug/actors?format=json")
            response.raise_for_status()
            result: dict[str, Any] = response.json()
            return result

    async def session_count(self) -> int:
        tree = await self.tree()
        sessions = next(c for c in tree["children"] if c["name"] == "sessions")
        return len(sessions["children"])


def host_config(tmp_path: Path, *, tls: bool, **sections: Any) -> HostConfig:
    grpc_section = GrpcSection(
        port=0,
        dev_certs_dir=str(tmp_path / "certs") if tls else "",
        insecure_dev_plaintext=not tls,
        shutdown_grace_s=2.0,
    )
    tools = sections.get("tools")
    if tools is not None and tools.mode != "none" and "policy" not in sections:
        # Deny by default: tools run under a signed (permissive) bundle for the test tenant.
        sections["policy"] = make_test_policy(tmp_path).section()
    return HostConfig(
        auth=sections.pop("auth", AuthSection(trusted_keys=[str(caller_public_key(tmp_path))])),
        grpc=sections.pop("grpc", grpc_section),
        debug=sections.pop("debug", DebugSection(port=0)),
        provider=sections.pop(
            "provider",
            ProviderSection(
                mock=MockSection(first_token_delay_ms=5, tokens_per_s=1000, answer_tokens=8)
            ),
        ),
        sessions=sections.pop("sessions", SessionsSection()),
        audit=sections.pop("audit", AuditSection(path=str(tmp_path / "audit.jsonl"))),
        **sections,
    )


async def start_host(nursery: trio.Nursery, config: HostConfig) -> RunningHost:
    provider = ScriptedMockProvider(config.provider.mock.to_provider_config())
    shutdown = trio.Event()
    addresses: HostAddresses = await nursery.start(
        lambda task_status: run_host(
            config, shutdown=shutdown, provider=provider, task_status=task_status
        )
    )
    return RunningHost(addresses=addresses, provider=provider, config=config, shutdown=shutdown)


@pytest.fixture
async def plaintext_host(tmp_path: Path) -> AsyncIterator[RunningHost]:
    async with trio.open_nursery() as nursery:
        host = await start_host(nursery, host_config(tmp_path, tls=False))
        yield host
        host.shutdown.set()


@pytest.fixture(params=["plaintext", "tls"])
async def any_host(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RunningHost]:
    async with trio.open_nursery() as nursery:
        host = await start_host(nursery, host_config(tmp_path, tls=request.param == "tls"))
        yield host
        host.shutdown.set()


def start_request(tenant: str = "acme", **limits: int) -> agent_pb2.ChatRequest:
    return agent_pb2.ChatRequest(
        start_session=agent_pb2.StartSession(
            tenant=tenant, user="u1", limits=agent_pb2.Limits(**limits)
        )
    )


def say(text: str) -> agent_pb2.ChatRequest:
    return agent_pb2.ChatRequest(user_message=agent_pb2.UserMessage(text=text))


def cancel() -> agent_pb2.ChatRequest:
    return agent_pb2.ChatRequest(cancel_turn=agent_pb2.CancelTurn())


class Conversation:
    """A grpcio StreamChat call driven step by step from a worker thread."""

    def __init__(
        self,
        channel: grpc.Channel,
        timeout_s: float = STEP_S,
        metadata: tuple[tuple[str, str], ...] | None = None,
    ) -> None:
        import queue

        self._requests: queue.Queue[agent_pb2.ChatRequest | None] = queue.Queue()
        self.call = stream_chat(channel)(self._iterate(), timeout=timeout_s, metadata=metadata)
        self.events: list[agent_pb2.ChatEvent] = []

    def _iterate(self) -> Iterator[agent_pb2.ChatRequest]:
        while True:
            request = self._requests.get()
            if request is None:
                return
            yield request

    def send(self, request: agent_pb2.ChatRequest) -> None:
        self._requests.put(request)

    def close(self) -> None:
        self._requests.put(None)

    def next_event(self) -> agent_pb2.ChatEvent:
        event: agent_pb2.ChatEvent = next(self.call)
        self.events.append(event)
        return event

    def until(self, predicate: Callable[[agent_pb2.ChatEvent], bool]) -> list[agent_pb2.ChatEvent]:
        """Read events until one matches ``predicate``; return them all (that one included)."""
        seen = []
        while True:
            event = self.next_event()
            seen.append(event)
            if predicate(event):
                return seen

    def rest(self) -> list[agent_pb2.ChatEvent]:
        """Every remaining event until the server ends the call."""
        remaining = list(self.call)
        self.events.extend(remaining)
        return remaining


def kind(event: agent_pb2.ChatEvent) -> str:
    return event.WhichOneof("event") or ""


def turn_done(event: agent_pb2.ChatEvent) -> bool:
    return kind(event) in ("assistant_done", "error")


async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    with trio.fail_after(STEP_S):
        return await trio.to_thread.run_sync(fn, *args, abandon_on_cancel=True)
