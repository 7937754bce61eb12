"""One stack for every observability test of the session: the host, relay and bridge as
processes exporting to one OTLP receiver, a chat with a tool call through them, and a real
Prometheus scraping all three (started once: together they take a few seconds)."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import attrs
import grpc
import pytest

from actors.telemetry import new_traceparent
from contracts.generated import agent_pb2
from tests._policy import bearer, caller_token
from tests.host.conftest import Conversation, cancel, kind, say

from ._support import (
    DEVICE,
    TENANT,
    Prometheus,
    Stack,
    start_prometheus,
    start_stack,
)


@attrs.frozen(kw_only=True)
class Chat:
    """The chat every test looks at: its trace id and the events of its tool turn."""

    trace_id: str
    events: tuple[Any, ...]


def _scrape(base: str) -> str:
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as answer:
        text: str = answer.read().decode()
    # Absent until the first sample: read as a zero count.
    return text if "host_to_device_rtt_ms_count" in text else text + "host_to_device_rtt_ms_count 0"


def _chat(stack: Stack) -> Chat:
    traceparent = new_traceparent()
    with grpc.insecure_channel(stack.host_grpc) as channel:
        metadata = (("traceparent", str(traceparent)), *bearer(caller_token()))
        talk = Conversation(channel, timeout_s=60, metadata=metadata)
        talk.send(
            agent_pb2.ChatRequest(
                start_session=agent_pb2.StartSession(tenant=TENANT, user="u1", device_id=DEVICE)
            )
        )
        talk.next_event()
        # A request that is refused: the errors-by-code panel has something to show.
        talk.send(cancel())
        talk.until(lambda e: kind(e) == "error")
        events: list[Any] = []
        for _ in range(200):
            # Until the bridge has announced itself, the device offers no tools; until the
            # first heartbeats came back, a result carries no round trip time.
            talk.send(say("read notes.txt"))
            turn = talk.until(lambda e: kind(e) in ("assistant_done", "error"))
            if any(kind(e) == "tool_call_started" for e in turn):
                events = events or turn
                if "host_to_device_rtt_ms_count 0" not in _scrape(stack.host_debug):
                    break
            time.sleep(0.1)
        talk.send(say("and thank you"))
        talk.until(lambda e: kind(e) == "assistant_done")
        talk.close()
        talk.rest()
    return Chat(trace_id=traceparent.trace_id, events=tuple(events))


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = start_stack(tmp_path_factory.mktemp("stack"))
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(scope="session")
def chat(stack: Stack) -> Chat:
    return _chat(stack)


@pytest.fixture(scope="session")
def prometheus(
    stack: Stack, chat: Chat, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    del chat  # scraped after the chat: every figure has something in it
    running = start_prometheus(
        tmp_path_factory.mktemp("prometheus"),
        {
            "zl-host": stack.host_debug,
            "zl-relay": stack.relay_debug,
            "zl-bridge": stack.bridge_debug,
        },
    )
    try:
        yield running
    finally:
        running.close()
