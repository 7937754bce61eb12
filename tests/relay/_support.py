"""Helpers for the relay tests: certificates, keys, in-process relay shards, bridge subprocesses."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from trio_websocket import WebSocketConnection

from actors.relay import (
    SUBPROTOCOL,
    generate_signing_key,
    mint_device_token,
    mint_host_token,
    save_public_key,
)
from actors.relay._dial import open_relay_websocket
from actors.relay._limits import RelayLimits
from actors.tools._relay_link import RelayLinkSettings, RelayToolLink
from supervisors.relay import (
    ListenSection,
    RelayAddresses,
    RelayConfig,
    ShardSection,
    TlsSection,
    run_relay,
)
from supervisors.tls import ALPN_HTTP1, client_ssl_context, generate_dev_certs
from tests._policy import control_plane_key, public_key_file
from zl_actors import Backoff, SupervisorSpec, open_actor_system

REPO = Path(__file__).resolve().parents[2]
LEGACY_SERVER = REPO / "tests" / "mcp_client" / "legacy_server.py"
DEADLINE_S = 30.0
HEARTBEAT_S = 0.5
#: The largest frame the tests' raw connections accept.
MAX_BYTES = 1 << 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@attrs.define
class Env:
    """Keys, certificates and a shard plan of three shards on loopback."""

    tmp: Path
    key: Ed25519PrivateKey
    public_key: Path
    ca: Path
    cert: Path
    cert_key: Path
    client_cert: Path
    client_key: Path
    shards: list[ShardSection]

    def config(
        self, shard_id: str, *, host_client_ca: Path | None = None, **limits: object
    ) -> RelayConfig:
        shard = next(s for s in self.shards if s.shard_id == shard_id)
        return RelayConfig(
            shard_id=shard_id,
            shards=tuple(self.shards),
            public_keys=(str(self.public_key),),
            devices=ListenSection(port=int(shard.url.rsplit(":", 1)[1].split("/")[0])),
            hosts=ListenSection(port=int(shard.host_url.rsplit(":", 1)[1].split("/")[0])),
            tls=TlsSection(
                cert=str(self.cert),
                key=str(self.cert_key),
                host_client_ca=None if host_client_ca is None else str(host_client_ca),
            ),
            limits=RelayLimits(heartbeat_s=HEARTBEAT_S, **limits),  # type: ignore[arg-type]
        )

    def device_token(self, tenant: str, device_id: str, **kw: object) -> str:
        return mint_device_token(self.key, tenant=tenant, device_id=device_id, ttl=600, **kw)  # type: ignore[arg-type]

    def host_token(self, *tenants: str, **kw: object) -> str:
        return mint_host_token(self.key, tenants=tenants, host_id="host-1", ttl=600, **kw)  # type: ignore[arg-type]

    def link_settings(
        self, *tenants: str, shards: list[ShardSection] | None = None
    ) -> RelayLinkSettings:
        from actors.relay import Shard

        return RelayLinkSettings(
            shards=tuple(
                Shard(shard_id=s.shard_id, url=s.host_url) for s in (shards or self.shards)
            ),
            token=self.host_token(*tenants),
            ssl_context=client_ssl_context(self.ca, alpn=ALPN_HTTP1),
            heartbeat_s=HEARTBEAT_S,
            reconnect_initial_s=0.05,
            reconnect_max_s=0.3,
        )

    def client_context(self) -> ssl.SSLContext:
        return client_ssl_context(self.ca, alpn=ALPN_HTTP1)


def make_env(tmp: Path, n_shards: int = 3) -> Env:
    certs = generate_dev_certs(tmp / "certs")
    key = generate_signing_key()
    public = tmp / "relay.pub"
    save_public_key(key.public_key(), public)
    shards = []
    for i in range(1, n_shards + 1):
        shards.append(
            ShardSection(
                shard_id=f"relay-{i}",
                url=f"wss://127.0.0.1:{free_port()}/v1/device",
                host_url=f"wss://127.0.0.1:{free_port()}/v1/host",
            )
        )
    return Env(
        tmp=tmp,
        key=key,
        public_key=public,
        ca=certs.ca_cert,
        cert=certs.server_cert,
        cert_key=certs.server_key,
        client_cert=certs.client_cert,
        client_key=certs.client_key,
        shards=shards,
    )


async def start_relay(
    nursery: trio.Nursery, config: RelayConfig
) -> tuple[RelayAddresses, trio.CancelScope]:
    """Start one shard in ``nursery``; cancel the returned scope to stop it."""
    scope = trio.CancelScope()

    async def run(task_status: trio.TaskStatus[RelayAddresses]) -> None:
        with scope:
            await run_relay(config, task_status=task_status)

    addresses: RelayAddresses = await nursery.start(run)
    return addresses, scope


@asynccontextmanager
async def open_link(
    settings: RelayLinkSettings, on_rtt: Callable[[float], None] | None = None
) -> AsyncIterator[RelayToolLink]:
    async with open_actor_system("host", stop_grace_s=2.0) as system:
        parent = await system.spawn(
            SupervisorSpec(name="tool_link", backoff=Backoff(initial_s=0.05, max_s=0.2))
        )
        yield await RelayToolLink.start(parent, settings, on_rtt=on_rtt)


@asynccontextmanager
async def dial(
    env: Env, url: str, token: str | None, *, subprotocols: Sequence[str] = (SUBPROTOCOL,)
) -> AsyncIterator[WebSocketConnection]:
    """A raw WebSocket to a relay endpoint, for tests that speak the frames themselves.

    JSON frames unless ``subprotocols`` offers the binary ones (``ws.subprotocol`` says
    which the relay chose).
    """
    async with open_relay_websocket(
        url,
        env.client_context(),
        token=token,
        message_queue_size=16,
        max_message_size=MAX_BYTES,
        connect_timeout_s=DEADLINE_S,
        subprotocols=subprotocols,
    ) as ws:
        yield ws


class Bridge:
    """A ``zl-bridge`` subprocess (``python -m supervisors.bridge``, or ``command``).

    ``status_out`` receives its status lines (stdout); they are not shown otherwise.
    """

    def __init__(
        self,
        env: Env,
        url: str,
        tenant: str,
        device_id: str,
        *server: str,
        root: Path | None = None,
        status_out: Path | None = None,
        command: Sequence[str] = (sys.executable, "-m", "supervisors.bridge"),
        extra: tuple[str, ...] = (),
        token: str | None = None,
    ) -> None:
        token_file = env.tmp / f"{device_id}.jwt"
        token_file.write_text(token if token is not None else env.device_token(tenant, device_id))
        self.token_file = token_file
        # Deny by default on the device too: calls must carry a bundle signed by this key.
        policy_key = public_key_file(control_plane_key(), env.tmp / "keys" / "control-plane.pub")
        self.log = env.tmp / f"{device_id}-bridge.log"
        argv = [
            *command,
            "--relay",
            url,
            "--device-id",
            device_id,
            "--token-file",
            str(token_file),
            "--ca",
            str(env.ca),
            "--reconnect-initial-s",
            "0.05",
            "--reconnect-max-s",
            "0.3",
            "--log-level",
            "INFO",
            "--policy-key",
            str(policy_key),
            *extra,
        ]
        if root is not None:
            argv += ["--root", str(root)]
        if server:
            argv += ["--", *server]
        with (
            open(self.log, "w") as stderr,
            open(status_out or os.devnull, "w") as stdout,
        ):
            self.process = subprocess.Popen(argv, cwd=REPO, stdout=stdout, stderr=stderr)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
