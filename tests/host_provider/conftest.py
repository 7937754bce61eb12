"""A real host whose provider is the OpenAI-compatible stack, against the fake upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import grpc
import httpx
import trio

from actors.provider.fake_upstream import FakeUpstream, Script, open_fake_upstream
from supervisors.host import HostAddresses, HostConfig, run_host
from supervisors.host._provider import (
    BreakerSection,
    MockSection,
    ProviderSection,
    ProviderStack,
    RetrySection,
    UpstreamSection,
    open_host_provider,
)
from tests._policy import bearer, caller_token, with_metadata
from tests.host.conftest import host_config

FAKE_MODEL = "fake-model"


def upstream_section(url: str, **overrides: Any) -> UpstreamSection:
    """Deadlines short enough for tests, long enough for a loaded CI machine."""
    values: dict[str, Any] = {
        "base_url": url,
        "connect_timeout_s": 2.0,
        "first_token_timeout_s": 5.0,
        "idle_timeout_s": 5.0,
        "total_timeout_s": 20.0,
        "retry": RetrySection(max_attempts=1),
    }
    values.update(overrides)
    return UpstreamSection(**values)


def provider_section(url: str, **overrides: Any) -> ProviderSection:
    values: dict[str, Any] = {
        "kind": "openai",
        "default_model": FAKE_MODEL,
        "openai": upstream_section(url),
        "mock": MockSection(first_token_delay_ms=1, tokens_per_s=2000, answer_tokens=6),
        "breaker": BreakerSection(),
    }
    values.update(overrides)
    return ProviderSection(**values)


@attrs.define
class ProviderHost:
    """A running host, its provider stack and the fake upstream behind it."""

    addresses: HostAddresses
    stack: ProviderStack
    upstream: FakeUpstream

    def channel(self) -> grpc.Channel:
        channel = grpc.insecure_channel(f"127.0.0.1:{self.addresses.grpc_port}")
        return with_metadata(channel, bearer(caller_token()))

    async def debug_text(self) -> str:
        assert self.addresses.debug_url is not None
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(f"{self.addresses.debug_url}/debug/actors?format=json")
            response.raise_for_status()
            return response.text

    async def session_count(self) -> int:
        assert self.addresses.debug_url is not None
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(f"{self.addresses.debug_url}/debug/actors?format=json")
            tree: dict[str, Any] = response.json()
        sessions = next(c for c in tree["children"] if c["name"] == "sessions")
        return len(sessions["children"])


@asynccontextmanager
async def open_provider_host(
    tmp_path: Path,
    section: ProviderSection | None = None,
    *,
    default: Script | None = None,
    environ: Mapping[str, str] | None = None,
) -> AsyncIterator[ProviderHost]:
    """Fake upstream, provider stack and host (plaintext gRPC on loopback), for the block."""
    async with open_fake_upstream(default) as upstream:
        section = section if section is not None else provider_section(upstream.url)
        if not section.openai.base_url:
            section = attrs.evolve(
                section, openai=attrs.evolve(section.openai, base_url=upstream.url)
            )
        config: HostConfig = host_config(tmp_path, tls=False)
        async with (
            open_host_provider(section, environ=environ) as stack,
            trio.open_nursery() as nursery,
        ):
            shutdown = trio.Event()
            addresses: HostAddresses = await nursery.start(
                lambda task_status: run_host(
                    config, shutdown=shutdown, provider=stack.provider, task_status=task_status
                )
            )
            try:
                yield ProviderHost(addresses=addresses, stack=stack, upstream=upstream)
            finally:
                shutdown.set()
