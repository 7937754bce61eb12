"""The tools' byte caps and the relay's frame limits agree: a result too big for its frame is
cut to fit by the bridge and marked ``truncated`` (as stdio cuts at the cap), never failed."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import trio

from actors.bridge import ResultTooLarge, fit_result
from actors.bridge._local import MIRROR_DROPPED_TEXT, result_size
from actors.relay import DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_HOST_FRAME_BYTES, result_budget
from actors.tools import ToolInvocation, ToolsConfig
from tests._policy import permissive_bundle

from ._support import Bridge, Env, open_link
from .test_relay_e2e import FRAMES, TENANT, framed, json_flag, owner, wait_online

MIB = 1024 * 1024


def fs_result(content: str, encoding: str = "utf-8", size: int | None = None) -> dict[str, Any]:
    data = base64.b64decode(content) if encoding == "base64" else content.encode()
    structured = {
        "content": content,
        "encoding": encoding,
        "bytesReturned": len(data),
        "fileSize": size if size is not None else len(data),
        "truncated": False,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    text = json.dumps(structured, ensure_ascii=False, separators=(",", ":"))
    return {"content": [{"type": "text", "text": text}], "structuredContent": structured}


def check_cut(result: dict[str, Any], original: bytes, budget: int) -> bytes:
    """The fitted result is within budget, marked truncated, and describes a prefix."""
    assert result_size(result) <= budget
    structured = result["structuredContent"]
    assert structured["truncated"] is True
    if structured["encoding"] == "base64":
        data = base64.b64decode(structured["content"])
    else:
        data = structured["content"].encode()
    assert original.startswith(data)
    assert structured["bytesReturned"] == len(data)
    assert structured["sha256"] == hashlib.sha256(data).hexdigest()
    return data


class TestFitResult:
    """``fit_result``: as is, then without the text copy, then cut on a boundary."""

    def test_small_result_unchanged(self) -> None:
        result = fs_result("hello")
        assert fit_result(result, 10_000) == result

    def test_text_copy_dropped_first(self) -> None:
        result = fs_result("x" * 6000)
        fitted = fit_result(result, 8000)
        assert fitted["structuredContent"] == result["structuredContent"]
        assert fitted["content"] == [{"type": "text", "text": MIRROR_DROPPED_TEXT}]

    @pytest.mark.parametrize(
        "text",
        [
            pytest.param('"quoted"\n' * 5000, id="escapes-double-the-size"),
            pytest.param("\x01" * 20000, id="control-characters-cost-six"),
            pytest.param("zoë ファイル 🙂 " * 2000, id="multibyte-never-split"),
        ],
    )
    def test_text_cut_on_a_character_boundary(self, text: str) -> None:
        budget = 10_000
        data = check_cut(fit_result(fs_result(text), budget), text.encode(), budget)
        assert len(data) > budget // 8  # cut to fit, not emptied
        data.decode("utf-8")  # whole characters only

    def test_base64_cut_on_a_three_byte_boundary(self) -> None:
        raw = os.urandom(30_000)
        budget = 12_000
        data = check_cut(
            fit_result(fs_result(base64.b64encode(raw).decode(), "base64"), budget), raw, budget
        )
        assert len(data) % 3 == 0
        assert len(data) > budget // 2

    def test_nothing_to_cut(self) -> None:
        result = {"content": [{"type": "text", "text": "y" * 5000}], "isError": False}
        with pytest.raises(ResultTooLarge):
            fit_result(result, 1000)

    def test_default_limits_agree(self) -> None:
        # What a device may send reaches its host; and a cut result leaves room for its frame.
        assert DEFAULT_MAX_HOST_FRAME_BYTES > DEFAULT_MAX_FRAME_BYTES
        assert 0 < result_budget(DEFAULT_MAX_FRAME_BYTES) < DEFAULT_MAX_FRAME_BYTES
        assert ToolsConfig().max_bytes <= DEFAULT_MAX_FRAME_BYTES


def read(path: str, encoding: str = "utf-8") -> ToolInvocation:
    return ToolInvocation(
        call_id=f"c-{uuid.uuid4().hex[:12]}",
        tenant=TENANT,
        device_id="laptop-1",
        tool="fs.read",
        version="1.0.0",
        arguments={"path": path, "maxBytes": MIB, "encoding": encoding},
        timeout_s=20.0,
        max_bytes=MIB,
        policy=permissive_bundle(TENANT),
    )


class TestOneMebibyteReadThroughTheRelay:
    """A 1 MiB read over relay and bridge comes back cut and marked, like stdio's, not failed,
    in binary frames (the default) and in JSON ones."""

    @FRAMES
    async def test_text_and_binary(
        self, env: Env, relays: object, bridges: list[Bridge], root: Path, binary: bool
    ) -> None:
        text = ('a "quoted" line\n' * (MIB // 16 + 1))[:MIB]
        (root / "big.txt").write_text(text)
        raw = os.urandom(MIB)
        (root / "big.bin").write_bytes(raw)
        bridge = Bridge(env, owner(env).url, TENANT, "laptop-1", root=root, extra=json_flag(binary))
        bridges.append(bridge)
        async with open_link(framed(env, binary, TENANT)) as link:
            await wait_online(link)
            with trio.fail_after(60):
                for name, original, encoding in (
                    ("big.txt", text.encode(), "utf-8"),
                    ("big.bin", raw, "base64"),
                ):
                    output = await link.invoke(read(name, encoding))
                    assert not output.is_error, output.error_message
                    assert output.structured is not None
                    data = check_cut(
                        {"structuredContent": output.structured, "content": []},
                        original,
                        DEFAULT_MAX_FRAME_BYTES,
                    )
                    assert len(data) > MIB // 3
