"""The bridge process (``zl-bridge``): its tree, its terminal status line, its entry point.

::

    bridge (one_for_one)
    ├─ mcp_server    McpStdioClient, permanent: a crashed MCP server is restarted
    └─ relay_link    RelayLink, permanent: reconnects with backoff and jitter

Imports only the MCP client, the relay frames, TLS helpers and trio-websocket (no host,
no gRPC), so ``pipx install`` brings a small tool.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import trio

from actors.bridge import (
    BridgeMessage,
    BridgeStatus,
    GetBridgeStatus,
    LocalCaps,
    Reconnect,
    RelayLink,
    RelayLinkConfig,
)
from actors.mcp import McpClientConfig, McpServerCommand, mcp_client_spec
from supervisors._process import tune_gc
from supervisors.tls import ALPN_HTTP1, TlsConfigError, client_ssl_context, warn_plaintext
from zl_actors import (
    ActorError,
    ActorRef,
    ActorSpec,
    Backoff,
    RestartIntensity,
    SupervisorSpec,
    open_actor_system,
)

log = logging.getLogger("zl.bridge")

TOKEN_ENV = "ZL_BRIDGE_TOKEN"
STATUS_INTERVAL_S = 0.5
STATUS_ASK_TIMEOUT_S = 2.0


def status_line(status: BridgeStatus) -> str:
    """One line for the terminal: state, where, calls in flight."""
    if status.state == "connected":
        head = f"connected to {status.relay_url}"
    elif status.state == "connecting":
        head = f"connecting to {status.relay_url}"
    else:
        head = f"reconnecting (attempt {status.attempt}): {status.last_error or ''}"
    rtt = f" · rtt {status.rtt_ms:.1f} ms" if status.rtt_ms is not None else ""
    return (
        f"zl-bridge [{status.device_id}] {head} · calls in flight {status.calls_in_flight}"
        f" · done {status.calls_done}{rtt}"
    )


async def show_status(link: ActorRef[BridgeMessage], out: TextIO) -> None:
    """Print the status line whenever it changes (rewritten in place on a terminal)."""
    last = ""
    tty = out.isatty()
    while True:
        try:
            status = await link.ask(GetBridgeStatus(), timeout=STATUS_ASK_TIMEOUT_S)
            line = status_line(status)
        except ActorError as exc:
            line = f"zl-bridge: relay link unavailable ({type(exc).__name__})"
        if line != last:
            out.write(("\r\x1b[2K" + line) if tty else line + "\n")
            out.flush()
            last = line
        await trio.sleep(STATUS_INTERVAL_S)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zl-bridge",
        description="Zero Latency Device Bridge: connects this machine's MCP tools to a relay.",
        epilog=f"The device token comes from --token-file or ${TOKEN_ENV}. "
        "Example: zl-bridge --relay wss://relay.example:8443/v1/device --device-id laptop-1 "
        "--token-file device.jwt --ca ca.pem --root ~/Documents",
    )
    parser.add_argument("--relay", required=True, help="relay URL, wss://HOST:PORT/v1/device")
    parser.add_argument("--device-id", required=True)
    parser.add_argument("--token-file", type=Path, help="file holding the device token")
    parser.add_argument("--ca", type=Path, help="CA bundle that signs the relay's certificate")
    parser.add_argument(
        "--insecure-dev", action="store_true", help="allow ws:// without TLS (development only)"
    )
    parser.add_argument(
        "--root", action="append", default=[], help="directory fs.read may read (repeatable)"
    )
    parser.add_argument("--max-bytes", type=int, default=LocalCaps().max_bytes)
    parser.add_argument("--max-timeout-s", type=float, default=LocalCaps().max_timeout_s)
    parser.add_argument("--reconnect-initial-s", type=float, default=Reconnect().initial_s)
    parser.add_argument("--reconnect-max-s", type=float, default=Reconnect().max_s)
    parser.add_argument("--quiet", action="store_true", help="no status line")
    parser.add_argument(
        "--json-frames",
        action="store_true",
        help="speak JSON frames only (zl.relay.v1), not the binary ones, e.g. for debugging",
    )
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument(
        "server",
        nargs="*",
        help="MCP server command after --, instead of the built-in fs.read server",
    )
    return parser


def _link_config(args: argparse.Namespace) -> RelayLinkConfig:
    token = (
        args.token_file.read_text().strip() if args.token_file else os.environ.get(TOKEN_ENV, "")
    )
    if not token:
        raise ValueError(f"a device token is required: --token-file or ${TOKEN_ENV}")
    if args.relay.startswith("wss://"):
        if args.ca is None:
            raise ValueError("--ca is required for wss:// (the relay's certificate is verified)")
        context = client_ssl_context(args.ca, alpn=ALPN_HTTP1)
    elif args.relay.startswith("ws://") and args.insecure_dev:
        warn_plaintext(f"bridge → relay {args.relay}", flag="--insecure-dev")
        context = None
    else:
        raise ValueError("--relay must be wss://... (ws:// only with --insecure-dev)")
    return RelayLinkConfig(
        relay_url=args.relay,
        device_id=args.device_id,
        token=token,
        ssl_context=context,
        caps=LocalCaps(max_timeout_s=args.max_timeout_s, max_bytes=args.max_bytes),
        reconnect=Reconnect(initial_s=args.reconnect_initial_s, max_s=args.reconnect_max_s),
        binary_frames=not args.json_frames,
    )


def _server_command(args: argparse.Namespace) -> McpServerCommand:
    if args.server:
        return McpServerCommand(argv=tuple(args.server))
    if not args.root:
        raise ValueError("give --root DIR (for the built-in fs.read server) or a server command")
    roots = [str(Path(root).expanduser()) for root in args.root]
    return McpServerCommand(
        argv=(sys.executable, "-m", "actors.mcp.fs_server", *roots), name="zl-mcp-fs"
    )


async def run_bridge(link_config: RelayLinkConfig, server: McpServerCommand, *, show: bool) -> None:
    """Run the bridge's tree until cancelled (SIGINT/SIGTERM in ``bridge_main``)."""
    async with open_actor_system("bridge", stop_grace_s=3.0) as system:
        tree = await system.spawn(
            SupervisorSpec(
                name="bridge",
                intensity=RestartIntensity(max_restarts=10, within_s=60.0),
                backoff=Backoff(initial_s=0.2, max_s=5.0),
            )
        )
        mcp = await tree.start_child(mcp_client_spec("mcp_server", McpClientConfig(command=server)))
        link = await tree.start_child(
            ActorSpec(name="relay_link", factory=lambda: RelayLink(link_config, mcp))
        )
        async with trio.open_nursery() as nursery:
            if show:
                nursery.start_soon(show_status, link, sys.stdout)
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    break
            nursery.cancel_scope.cancel()


def bridge_main(argv: Sequence[str] | None = None) -> int:
    """``zl-bridge`` (also ``zl bridge``); returns the exit status (2: bad arguments)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        link_config = _link_config(args)
        server = _server_command(args)
    except (ValueError, OSError, TlsConfigError) as exc:
        print(f"zl-bridge: {exc}", file=sys.stderr)
        return 2
    tune_gc()
    try:
        trio.run(lambda: run_bridge(link_config, server, show=not args.quiet))
    except KeyboardInterrupt:
        return 130
    if not args.quiet:
        print("\nzl-bridge: stopped", flush=True)
    return 0


def main() -> None:
    """Console script entry point."""
    sys.exit(bridge_main())
