"""Golden sequences over a real socket with the standard grpcio client, plaintext and TLS."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import trio

from supervisors.host import MockSection, ProviderSection

from .conftest import Conversation, host_config, in_thread, kind, start_host
from .golden import golden_files, load, normalise, request_of

# Set to rewrite the expected sequences from what the host does now (then review the diff).
UPDATE = os.environ.get("ZL_UPDATE_GOLDENS") == "1"


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def run_steps(conversation: Conversation, steps: list[dict[str, Any]]) -> None:
    for step in steps:
        if step.get("close"):
            conversation.close()
            conversation.rest()
            return
        conversation.send(request_of(step))
        wanted = step["until"]
        conversation.until(lambda event, wanted=wanted: camel(kind(event)) == wanted)


class TestGoldenSequences:
    """Every file in contracts/examples/streamchat holds against a live host."""

    @pytest.mark.parametrize("path", golden_files(), ids=lambda p: p.stem)
    @pytest.mark.parametrize("tls", [False, True], ids=["plaintext", "tls"])
    async def test_golden(self, path: Path, tls: bool, tmp_path: Path) -> None:
        golden = load(path)
        config = host_config(
            tmp_path, tls=tls, provider=ProviderSection(mock=MockSection(**golden["mock"]))
        )
        async with trio.open_nursery() as nursery:
            host = await start_host(nursery, config)
            with host.channel() as channel:
                conversation = Conversation(channel)
                await in_thread(run_steps, conversation, golden["steps"])
            # Nothing is left behind: the session and its turns are gone with the stream.
            with trio.fail_after(10):
                while await host.session_count():
                    await trio.sleep(0.01)
            host.shutdown.set()
        got = normalise(conversation.events)
        if UPDATE and not tls:
            golden["expected"] = got
            path.write_text(json.dumps(golden, indent=2) + "\n")
        assert "expected" in golden, f"{path.name} has no expected events (ZL_UPDATE_GOLDENS=1)"
        assert got == golden["expected"]
