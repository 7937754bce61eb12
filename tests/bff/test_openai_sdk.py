"""The official ``openai`` Python SDK, pointed at the BFF, streams a chat (and a tool call)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import trio

from supervisors.host import ToolsSection
from tests.host.conftest import host_config

from ._support import STEP_S, host_sessions, mock_section, open_stack, trusting


def _client(url: str, token: str, ca: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{url}/v1",
        api_key=token,
        http_client=httpx.Client(verify=trusting(ca), timeout=STEP_S),
        max_retries=0,
    )


class TestOpenAISdk:
    """Existing OpenAI tools work unchanged against the BFF."""

    async def test_streamed_and_whole_completions(self, tmp_path: Path) -> None:
        files = tmp_path / "files"
        files.mkdir()
        (files / "notes.txt").write_text("hello from the notes file\n")
        config = host_config(
            tmp_path,
            tls=True,
            provider=mock_section(answer_tokens=40),
            tools=ToolsSection(mode="stdio", roots=[str(files)]),
        )
        async with open_stack(tmp_path, host=config) as stack:
            client = _client(stack.bff.url, stack.keys.token(devices=("laptop",)), stack.ca)

            def stream(text: str) -> list[Any]:
                chunks = client.chat.completions.create(
                    model="zl-mock",
                    messages=[
                        {"role": "system", "content": "Be brief."},
                        {"role": "user", "content": text},
                    ],
                    stream=True,
                    stream_options={"include_usage": True},
                )
                return list(chunks)

            def whole(text: str) -> Any:
                return client.chat.completions.create(
                    model="zl-mock", messages=[{"role": "user", "content": text}]
                )

            chunks = await trio.to_thread.run_sync(stream, "hello")
            said = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert "hello" in said
            finishing = [c for c in chunks if c.choices and c.choices[0].finish_reason]
            assert finishing[-1].choices[0].finish_reason == "stop"
            assert finishing[-1].usage is not None
            assert chunks[-1].choices == []  # include_usage: the usage chunk comes last
            assert chunks[-1].usage.completion_tokens == finishing[-1].usage.completion_tokens > 0

            chunks = await trio.to_thread.run_sync(stream, "read notes.txt")
            events = [c.model_extra["zl"]["event"] for c in chunks if c.model_extra.get("zl")]
            kinds = [e["type"] for e in events]
            assert "tool.call.started" in kinds
            delta = next(e for e in events if e["type"] == "tool.call.delta")
            assert delta["status"] == "ok"
            assert delta["receipt_id"]
            said = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert "hello from the notes file" in said

            completion = await trio.to_thread.run_sync(whole, "hi there")
            assert completion.object == "chat.completion"
            assert "hi there" in completion.choices[0].message.content
            assert completion.usage.total_tokens > 0

            def refused() -> None:
                with _client(stack.bff.url, "not-a-token", stack.ca) as bad:
                    bad.chat.completions.create(
                        model="zl-mock", messages=[{"role": "user", "content": "x"}]
                    )

            try:
                with pytest.raises(openai.AuthenticationError) as refusal:
                    await trio.to_thread.run_sync(refused)
                assert refusal.value.status_code == 401
            finally:
                client.close()
            # Every request's session was closed after its answer, on the host too.
            with trio.fail_after(STEP_S):
                while await host_sessions(stack):
                    await trio.sleep(0.05)
