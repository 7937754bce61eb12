"""Fixtures for the provider tests: a fake upstream on loopback and a way to drain a stream."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest
import trio

from actors.provider import ChatMessage, CompletionRequest, LlmProvider, ProviderEvent, ToolSpec
from actors.provider._openai_config import OpenAIProviderConfig
from actors.provider._retry import RetryConfig
from actors.provider.fake_upstream import FakeUpstream, open_fake_upstream

# Room for every event of the scripted answers, so draining after the call never blocks.
EVENTS_CAPACITY = 256
FS_READ = ToolSpec(
    name="fs.read",
    description="Read a file under an allowed root.",
    parameters={"type": "object", "properties": {"path": {"type": "string"}}},
)


def user_request(
    text: str = "hello", *, model: str = "fake-model", tools: bool = False
) -> CompletionRequest:
    return CompletionRequest(
        model=model,
        messages=(ChatMessage(role="user", content=text),),
        tools=(FS_READ,) if tools else (),
    )


def fast_config(url: str, **overrides: object) -> OpenAIProviderConfig:
    """Deadlines short enough for tests, long enough for a loaded CI machine."""
    values: dict[str, object] = {
        "base_url": url,
        "name": "primary",
        "connect_timeout": 2.0,
        "first_token_timeout": 2.0,
        "idle_timeout": 2.0,
        "total_timeout": 10.0,
        "retry": RetryConfig(max_attempts=3, base_delay=0.01, max_delay=0.05, max_retry_after=1.0),
    }
    values.update(overrides)
    return OpenAIProviderConfig(**values)  # type: ignore[arg-type]


async def collect(provider: LlmProvider, request: CompletionRequest) -> list[ProviderEvent]:
    """Run one stream to the end and return its events."""
    send, receive = trio.open_memory_channel[ProviderEvent](EVENTS_CAPACITY)
    with trio.fail_after(20):
        async with send:
            await provider.stream(request, send)
    return [event async for event in receive]


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with open_fake_upstream() as fake:
        yield fake


@pytest.fixture
def rng() -> random.Random:
    return random.Random(1234)
