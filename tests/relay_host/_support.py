"""What the host-through-the-relay tests share: the tenant, the device and its files, the
host's relay configuration, and the StreamChat helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from contracts.generated import agent_pb2
from supervisors.host import HostConfig, ToolsSection
from tests.host.conftest import host_config, kind
from tests.relay._support import HEARTBEAT_S, Env

TENANT = "acme"
DEVICE = "laptop-7"
NOTES = "written on the device\n"


def start_for(device: str) -> agent_pb2.ChatRequest:
    return agent_pb2.ChatRequest(
        start_session=agent_pb2.StartSession(tenant=TENANT, user="u1", device_id=device)
    )


def turn_finished(event: object) -> bool:
    return kind(event) == "assistant_done"  # type: ignore[arg-type]


def device_root(tmp_path: Path) -> Path:
    """The bridge's root folder, holding ``notes.txt``."""
    root = tmp_path / "device-files"
    root.mkdir()
    (root / "notes.txt").write_text(NOTES)
    return root


def relay_host_config(env: Env, tmp_path: Path, **sections: Any) -> HostConfig:
    """A TLS host whose tools go through ``env``'s relay shards with a host token for TENANT."""
    token_file = tmp_path / "host.jwt"
    token_file.write_text(env.host_token(TENANT))
    return host_config(
        tmp_path,
        tls=True,
        tools=ToolsSection(
            mode="relay",
            relay_shards=[f"{s.shard_id}={s.host_url}" for s in env.shards],
            relay_token_file=str(token_file),
            relay_ca=str(env.ca),
            relay_heartbeat_s=HEARTBEAT_S,
        ),
        **sections,
    )
