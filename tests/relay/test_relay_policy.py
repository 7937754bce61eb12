"""The device enforces the signed policy: a forging host, over the real relay, cannot make
the bridge run a call the bundle does not allow, with wider caps, outside its paths, past
its ``exp``, under another tenant's or key's bundle, or an older revision; this holds for a
third-party MCP server's tools (``@modelcontextprotocol/server-filesystem``) and for egress."""

from __future__ import annotations

import functools
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import trio

from actors.errors import ToolError
from actors.relay import generate_signing_key
from actors.tools import ToolInvocation
from actors.tools._relay_link import RelayToolLink
from tests._policy import signed_bundle
from tests.mcp_client.test_client_npm_filesystem import server_filesystem_command

from ._support import DEADLINE_S, Bridge, Env, open_link
from .test_relay_e2e import TENANT, owner, wait_online

DEVICE = "laptop-1"
NET_SERVER = Path(__file__).with_name("net_server.py")
READ_NOTES = {
    "id": "read-notes",
    "tool": "fs.read",
    "versions": "^1.0.0",
    "effect": "allow",
    "devices": [DEVICE],
    "caps": {"timeoutMs": 3000, "maxBytes": 4096},
    "paths": ["notes/**", "hello.txt"],
}


def forged(
    tool: str = "fs.read",
    *,
    args: dict[str, Any] | None = None,
    policy: str | None,
    timeout_s: float = 2.0,
    max_bytes: int = 4096,
    tenant: str = TENANT,
    device: str = DEVICE,
    version: str = "1.0.0",
) -> ToolInvocation:
    """A call as a compromised host might send it: whatever caps, paths and bundle it likes."""
    return ToolInvocation(
        call_id=f"c-{uuid.uuid4().hex[:12]}",
        tenant=tenant,
        device_id=device,
        tool=tool,
        version=version,
        arguments=args if args is not None else {"path": "notes/a.txt"},
        timeout_s=timeout_s,
        max_bytes=max_bytes,
        policy=policy,
    )


async def refused(link: RelayToolLink, call: ToolInvocation) -> str:
    with trio.fail_after(DEADLINE_S), pytest.raises(ToolError) as caught:
        await link.invoke(call)
    return caught.value.code


@pytest.fixture
def device_root(root: Path) -> Path:
    (root / "notes").mkdir()
    (root / "notes" / "a.txt").write_text("allowed\n")
    (root / "secret.txt").write_text("never\n")
    (root / "notes" / "innocent.txt").symlink_to("../secret.txt")
    return root


class TestForgingHost:
    """Each forgery is refused by the bridge before its MCP server sees the call."""

    async def test_forgeries(
        self, env: Env, relays: object, bridges: list[Bridge], device_root: Path
    ) -> None:
        bridges.append(Bridge(env, owner(env).url, TENANT, DEVICE, root=device_root))
        bundle = signed_bundle(rules=[READ_NOTES], revision=3)
        async with open_link(env.link_settings(TENANT)) as link:
            await wait_online(link, DEVICE)
            ok = await link.invoke(forged(policy=bundle))
            assert ok.structured is not None
            assert ok.structured["content"] == "allowed\n"
            cases = {
                "wider maxBytes": (forged(policy=bundle, max_bytes=65536), "tool.denied"),
                "wider timeout": (forged(policy=bundle, timeout_s=10), "tool.denied"),
                "path outside the bundle": (
                    forged(policy=bundle, args={"path": "secret.txt"}),
                    "tool.denied",
                ),
                "symlink out of an allowed folder": (
                    forged(policy=bundle, args={"path": "notes/innocent.txt"}),
                    "tool.denied",
                ),
                "absolute path": (
                    forged(policy=bundle, args={"path": f"{device_root}/secret.txt"}),
                    "tool.denied",
                ),
                "no bundle": (forged(policy=None), "policy.missing"),
                "another key": (
                    forged(policy=signed_bundle(rules=[READ_NOTES], key=generate_signing_key())),
                    "policy.bad_signature",
                ),
                "another tenant's bundle": (
                    forged(policy=signed_bundle("globex", rules=[READ_NOTES])),
                    "policy.invalid",
                ),
                "expired": (
                    forged(
                        policy=signed_bundle(rules=[READ_NOTES], ttl_s=60, now=time.time() - 3600)
                    ),
                    "policy.expired",
                ),
                "older revision": (
                    forged(policy=signed_bundle(rules=[READ_NOTES], revision=2)),
                    "policy.invalid",
                ),
                "a bundle for another device": (
                    forged(
                        policy=signed_bundle(
                            rules=[{**READ_NOTES, "devices": ["laptop-2"]}], revision=4
                        )
                    ),
                    "tool.denied",
                ),
                "tampered bundle": (
                    forged(
                        policy=bundle[:-4] + ("AAAA" if not bundle.endswith("AAAA") else "BBBB")
                    ),
                    "policy.bad_signature",
                ),
            }
            for name, (call, code) in cases.items():
                assert await refused(link, call) == code, name
        log = (env.tmp / f"{DEVICE}-bridge.log").read_text()
        assert log.count("refused") >= len(cases)


class TestThirdPartyServer:
    """The filesystem MCP server announces write_file; it runs only if the bundle names it."""

    async def test_write_file_needs_the_bundle(
        self, env: Env, relays: object, bridges: list[Bridge], tmp_path: Path
    ) -> None:
        files = tmp_path / "fs"
        files.mkdir()
        command = server_filesystem_command(files)
        bridges.append(
            Bridge(env, owner(env).url, TENANT, DEVICE, *command.argv, extra=("--root", str(files)))
        )
        read_only = signed_bundle(
            rules=[
                {
                    "id": "read",
                    "tool": "read_text_file",
                    "versions": "*",
                    "effect": "allow",
                    "devices": ["*"],
                }
            ],
            revision=1,
        )
        target = str(files / "new.txt")
        write = {"path": target, "content": "written through the relay"}
        async with open_link(env.link_settings(TENANT)) as link:
            await wait_online(link, DEVICE)
            code = await refused(
                link, forged("write_file", args=write, policy=read_only, version="0.0.0")
            )
            assert code == "tool.denied"
            assert not (files / "new.txt").exists()
            allows_writes = signed_bundle(
                rules=[
                    {
                        "id": "write-drafts",
                        "tool": "write_file",
                        "versions": "*",
                        "effect": "allow",
                        "devices": ["*"],
                        "paths": ["*.txt"],
                    }
                ],
                revision=2,
            )
            output = await link.invoke(
                forged("write_file", args=write, policy=allows_writes, version="0.0.0")
            )
            assert not output.is_error, output
            assert (files / "new.txt").read_text() == "written through the relay"
            # Outside the bundle's paths (a folder), refused even though the tool is named.
            nested = {"path": str(files / "sub.d" / "x.md"), "content": "no"}
            assert (
                await refused(
                    link, forged("write_file", args=nested, policy=allows_writes, version="0.0.0")
                )
                == "tool.denied"
            )


class TestEgress:
    """A network tool reaches only the host:port its bundle lists (a synthetic tool)."""

    async def test_egress_allow_list(
        self, env: Env, relays: object, bridges: list[Bridge], nursery: trio.Nursery
    ) -> None:
        hits: dict[int, int] = {}

        async def web(stream: trio.SocketStream) -> None:
            port = stream.socket.getsockname()[1]
            hits[port] = hits.get(port, 0) + 1
            async with stream:
                await stream.receive_some(1024)
                await stream.send_all(b"HTTP/1.0 200 OK\r\n\r\n")

        ports = []
        for _ in range(2):
            listeners = await nursery.start(
                functools.partial(trio.serve_tcp, web, 0, host="127.0.0.1")
            )
            ports.append(listeners[0].socket.getsockname()[1])
        allowed, other = ports
        bridges.append(Bridge(env, owner(env).url, TENANT, DEVICE, sys.executable, str(NET_SERVER)))
        bundle = signed_bundle(
            rules=[
                {
                    "id": "fetch",
                    "tool": "net.fetch",
                    "versions": "^1",
                    "effect": "allow",
                    "devices": ["*"],
                    "egress": [f"127.0.0.1:{allowed}"],
                }
            ]
        )
        async with open_link(env.link_settings(TENANT)) as link:
            await wait_online(link, DEVICE)
            output = await link.invoke(
                forged("net.fetch", args={"url": f"http://127.0.0.1:{allowed}/"}, policy=bundle)
            )
            assert output.structured == {"status": "HTTP/1.0 200 OK"}
            code = await refused(
                link, forged("net.fetch", args={"url": f"http://127.0.0.1:{other}/"}, policy=bundle)
            )
            assert code == "tool.denied"
        assert hits == {allowed: 1}, "the denied call never connected"
