"""Token accounting: when the upstream gives usage, that is the count (reported, charged to
the session's budget and priced alike); the running count of streamed chunks is only an
estimate, used and marked as one when the upstream gives none."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
import trio

from actors.provider.fake_upstream import Script
from contracts.generated import agent_pb2
from supervisors.host._provider import PriceSection
from tests.host.conftest import Conversation, in_thread, kind, say, turn_done

from .conftest import FAKE_MODEL, ProviderHost, open_provider_host, provider_section

STEP_S = 20.0
#: 21 word pieces: as many content chunks unless several share one.
TEXT = " ".join(f"w{n}" for n in range(21))
PRICE = PriceSection(input_usd_per_mtok=1_000_000.0, output_usd_per_mtok=2_000_000.0)


async def session(host: ProviderHost, budget: int) -> Conversation:
    conv: Conversation = await in_thread(Conversation, host.channel())
    limits = agent_pb2.Limits(token_budget=budget)
    conv.send(
        agent_pb2.ChatRequest(
            start_session=agent_pb2.StartSession(
                tenant="acme", user="u1", model=FAKE_MODEL, limits=limits
            )
        )
    )
    assert kind(await in_thread(conv.next_event)) == "session_started"
    return conv


async def turn(conv: Conversation) -> list[agent_pb2.ChatEvent]:
    conv.send(say("hello"))
    with trio.fail_after(STEP_S):
        events: list[agent_pb2.ChatEvent] = await in_thread(conv.until, turn_done)
    return events


def priced(tmp_path: Path, script: Script) -> object:
    section = provider_section("")
    section = attrs.evolve(section, openai=attrs.evolve(section.openai, prices={FAKE_MODEL: PRICE}))
    return open_provider_host(tmp_path, section, default=script)


class TestUpstreamUsageIsTheCount:
    """Reported, charged and priced from the upstream's figure, whatever the chunking."""

    @pytest.mark.parametrize(
        ("pieces_per_chunk", "completion_tokens"),
        [
            pytest.param(3, None, id="several-tokens-per-chunk"),
            pytest.param(1, 15, id="fewer-tokens-than-chunks"),
        ],
    )
    async def test_usage_wins(
        self, tmp_path: Path, pieces_per_chunk: int, completion_tokens: int | None
    ) -> None:
        script = Script(
            text=TEXT, pieces_per_chunk=pieces_per_chunk, completion_tokens=completion_tokens
        )
        expected = completion_tokens if completion_tokens is not None else 21
        async with priced(tmp_path, script) as host:  # type: ignore[attr-defined]
            # The session is charged what each turn reports (TurnEnded carries the same
            # usage); while a turn streams, its guard counts one token per chunk.
            conv = await session(host, budget=2 * expected + len(TEXT.split()) + 5)
            for _ in range(2):
                events = await turn(conv)
                done = events[-1]
                assert kind(done) == "assistant_done", done
                usage = done.assistant_done.usage
                assert usage.output_tokens == expected
                assert not usage.estimated
                assert usage.cost_usd == pytest.approx(
                    (usage.input_tokens * 1_000_000.0 + expected * 2_000_000.0) / 1e6
                )
            conv.close()
            await in_thread(conv.rest)

    async def test_estimate_only_without_usage(self, tmp_path: Path) -> None:
        async with open_provider_host(
            tmp_path, default=Script(text=TEXT, send_usage=False)
        ) as host:
            conv = await session(host, budget=1000)
            done = (await turn(conv))[-1]
            usage = done.assistant_done.usage
            assert usage.estimated
            assert usage.output_tokens >= 21  # at least one per streamed chunk
            conv.close()
            await in_thread(conv.rest)
