"""Golden StreamChat sequences: contracts/examples/streamchat/*.json and what they expect.

Each file has ``steps`` (send a request and read events until one of a kind, or close) and
``expected``: the events as protobuf JSON, normalised so that the comparison holds on any
machine: the session id becomes ``<session>``, ``seq`` is checked to count 1, 2, 3... and
then dropped, and consecutive deltas of one turn are joined (the edge may merge deltas
that queue up behind a slow client, which changes their number but never their text).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from contracts import CONTRACTS_ROOT
from contracts.generated import agent_pb2

GOLDEN_DIR = CONTRACTS_ROOT / "examples" / "streamchat"


def golden_files() -> list[Path]:
    return sorted(GOLDEN_DIR.glob("*.json"))


def normalise(events: list[agent_pb2.ChatEvent]) -> list[dict[str, Any]]:
    seqs = [event.seq for event in events]
    assert seqs == list(range(1, len(events) + 1)), f"seq must count from 1: {seqs}"
    session_ids = {event.session_id for event in events if event.session_id}
    assert len(session_ids) <= 1, "one stream, one session id"
    out: list[dict[str, Any]] = []
    for event in events:
        data = json_format.MessageToDict(event, preserving_proto_field_name=False)
        data.pop("seq", None)
        if data.get("sessionId"):
            data["sessionId"] = "<session>"
        if "sessionStarted" in data:
            data["sessionStarted"]["sessionId"] = "<session>"
        previous = out[-1] if out else None
        if (
            previous is not None
            and "assistantDelta" in data
            and "assistantDelta" in previous
            and previous.get("turnId") == data.get("turnId")
        ):
            previous["assistantDelta"]["text"] += data["assistantDelta"]["text"]
            continue
        out.append(data)
    return out


def load(path: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(path.read_text())
    return result


def request_of(step: dict[str, Any]) -> agent_pb2.ChatRequest:
    return json_format.ParseDict(step["send"], agent_pb2.ChatRequest())
