"""The bridge process (``zl-bridge``): its tree, its terminal status line, its entry point.

::

    bridge (one_for_one)
    ├─ mcp_server    McpStdioClient, permanent: a crashed MCP server is restarted
    └─ relay_link    RelayLink, permanent: reconnects with backoff and jitter
    (beside it: telemetry, the sampler; and with --debug-port, the debug endpoint)

Imports only the MCP client, the relay frames, TLS helpers, trio-websocket, telemetry and
the debug endpoint (no host, no gRPC), so that it ships as its own small distribution
(``packages/bridge``). ``zl-bridge doctor`` (``_doctor.py``) checks a device's setup
without serving.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import attrs
import trio

from actors.bridge import (
    BRIDGE_VERSION,
    BridgeMessage,
    BridgeStatus,
    BridgeStopped,
    DevicePolicyConfig,
    GetBridgeStatus,
    LocalCaps,
    Reconnect,
    RelayLink,
    RelayLinkConfig,
    real_roots,
    tenant_of_token,
)
from actors.mcp import McpClientConfig, McpServerCommand, mcp_client_spec
from actors.policy import DEFAULT_CLOCK_SKEW_S, DEFAULT_MAX_TTL_S
from actors.redaction import install_log_redaction
from actors.relay import DEFAULT_AUDIENCE, KeyFileError, load_public_key
from supervisors._exits import StartupError, check_log_level, run_command
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

from ._doctor import Check, run_checks

if TYPE_CHECKING:  # loaded only when asked for: the lean distribution has no OpenTelemetry
    from actors.telemetry import Telemetry, TelemetryConfig

log = logging.getLogger("zl.bridge")

TOKEN_ENV = "ZL_BRIDGE_TOKEN"
STATUS_INTERVAL_S = 0.5
STATUS_ASK_TIMEOUT_S = 2.0
#: Flushing the telemetry exporters at exit is bounded by this.
TELEMETRY_CLOSE_TIMEOUT_S = 5.0


@attrs.frozen(kw_only=True)
class BridgeOptions:
    """How the bridge reports on itself: OTLP export, and a loopback debug endpoint."""

    otlp_endpoint: str | None = None
    #: Loopback port of /debug/actors, /metrics and /debug/dashboard (0: any; None: off).
    debug_port: int | None = attrs.field(
        default=None,
        validator=attrs.validators.optional([attrs.validators.ge(0), attrs.validators.le(65_535)]),
    )
    ready_file: Path | None = None
    metric_interval_s: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))

    @property
    def wanted(self) -> bool:
        """Whether the bridge reports on itself at all (otherwise OpenTelemetry is not loaded)."""
        return self.otlp_endpoint is not None or self.debug_port is not None

    def telemetry_config(self) -> TelemetryConfig:
        from actors.telemetry import Exporter, TelemetryConfig

        return TelemetryConfig(
            service_name="zl-bridge",
            exporter=Exporter.OTLP if self.otlp_endpoint else Exporter.NONE,
            otlp_endpoint=self.otlp_endpoint,
            prometheus=self.debug_port is not None,
            metric_interval_s=self.metric_interval_s,
        )


def status_line(status: BridgeStatus) -> str:
    """One line for the terminal: state, where, calls in flight."""
    if status.state == "connected":
        head = f"connected to {status.relay_url}"
    elif status.state == "connecting":
        head = f"connecting to {status.relay_url}"
    elif status.state == "stopped":
        head = f"stopped: {status.last_error or ''}"
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


def _parser(*, doctor: bool = False) -> argparse.ArgumentParser:
    if doctor:
        parser = argparse.ArgumentParser(
            prog="zl-bridge doctor",
            description="Check the token, the CA bundle, the relay and the MCP server, one "
            "line each, without serving (exit 0: all passed).",
            epilog="Takes the same options as zl-bridge itself.",
        )
        parser.add_argument(
            "--audience",
            default=DEFAULT_AUDIENCE,
            help="the audience the relay expects in tokens (default %(default)s)",
        )
    else:
        parser = argparse.ArgumentParser(
            prog="zl-bridge",
            description="Zero Latency Device Bridge: connects this machine's MCP tools to a "
            "relay. `zl-bridge doctor ...` checks a setup without serving.",
            epilog=f"The device token comes from --token-file or ${TOKEN_ENV}. "
            "Example: zl-bridge --relay wss://relay.example:8443/v1/device --device-id laptop-1 "
            "--token-file device.jwt --ca ca.pem --policy-key cp.pub --root ~/Documents",
        )
        parser.add_argument("--version", action="version", version=f"zl-bridge {BRIDGE_VERSION}")
    parser.add_argument("--relay", required=True, help="relay URL, wss://HOST:PORT/v1/device")
    parser.add_argument("--device-id", required=True)
    parser.add_argument("--token-file", type=Path, help="file holding the device token")
    parser.add_argument("--ca", type=Path, help="CA bundle that signs the relay's certificate")
    parser.add_argument(
        "--insecure-dev", action="store_true", help="allow ws:// without TLS (development only)"
    )
    parser.add_argument(
        "--root",
        action="append",
        default=[],
        help="directory fs.read may read (repeatable); with a server command, the folders "
        "that server serves, so that policy paths resolve on this disk",
    )
    parser.add_argument(
        "--policy-key",
        action="append",
        default=[],
        type=Path,
        help="the control plane's public key (PEM) that signs policy bundles (repeatable, "
        "for rotation); every call must carry a bundle it verifies",
    )
    parser.add_argument("--policy-max-ttl-s", type=float, default=DEFAULT_MAX_TTL_S)
    parser.add_argument("--policy-clock-skew-s", type=float, default=DEFAULT_CLOCK_SKEW_S)
    parser.add_argument(
        "--insecure-no-policy",
        action="store_true",
        help="run calls with no signed policy at all (development only; logged loudly)",
    )
    parser.add_argument("--max-bytes", type=int, default=LocalCaps().max_bytes)
    parser.add_argument("--max-timeout-s", type=float, default=LocalCaps().max_timeout_s)
    parser.add_argument("--reconnect-initial-s", type=float, default=Reconnect().initial_s)
    parser.add_argument("--reconnect-max-s", type=float, default=Reconnect().max_s)
    parser.add_argument(
        "--otlp-endpoint",
        help="export traces and metrics by OTLP/HTTP here (e.g. http://127.0.0.1:4318); "
        "the built-in fs.read server exports its spans there too",
    )
    parser.add_argument(
        "--debug-port",
        type=int,
        help="serve /debug/actors, /metrics (Prometheus) and /debug/dashboard on "
        "127.0.0.1:PORT (0: any free port)",
    )
    parser.add_argument(
        "--ready-file", type=Path, help="write the debug endpoint's URL here as JSON once up"
    )
    parser.add_argument(
        "--metric-interval-s",
        type=float,
        default=BridgeOptions().metric_interval_s,
        help="how often metrics are exported by OTLP (default %(default)s)",
    )
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


def _read_token(args: argparse.Namespace) -> str:
    try:
        return str(
            args.token_file.read_text().strip()
            if args.token_file
            else os.environ.get(TOKEN_ENV, "")
        )
    except OSError as exc:
        raise StartupError(
            f"--token-file {args.token_file}: cannot read it ({exc.strerror or exc}); "
            "give the file holding this device's token (zl token device)"
        ) from None


def _link_config(args: argparse.Namespace) -> RelayLinkConfig:
    token = _read_token(args)
    if not token:
        raise StartupError(f"a device token is required: --token-file or ${TOKEN_ENV}")
    if args.relay.startswith("wss://"):
        if args.ca is None:
            raise StartupError("--ca is required for wss:// (the relay's certificate is verified)")
        try:
            context = client_ssl_context(args.ca, alpn=ALPN_HTTP1)
        except TlsConfigError as exc:
            raise StartupError(
                f"--ca {args.ca}: {exc}; give the CA bundle that signs the relay's certificate"
            ) from None
    elif args.relay.startswith("ws://") and args.insecure_dev:
        warn_plaintext(f"bridge → relay {args.relay}", flag="--insecure-dev")
        context = None
    else:
        raise StartupError(
            f"--relay {args.relay!r}: must be wss://HOST:PORT/v1/device (ws:// only with "
            "--insecure-dev)"
        )
    return RelayLinkConfig(
        relay_url=args.relay,
        device_id=args.device_id,
        token=token,
        token_file=args.token_file,
        ssl_context=context,
        policy=_policy_config(args, token),
        caps=LocalCaps(max_timeout_s=args.max_timeout_s, max_bytes=args.max_bytes),
        reconnect=Reconnect(initial_s=args.reconnect_initial_s, max_s=args.reconnect_max_s),
        binary_frames=not args.json_frames,
    )


def _policy_config(args: argparse.Namespace, token: str) -> DevicePolicyConfig | None:
    if args.insecure_no_policy:
        if args.policy_key:
            raise ValueError("--policy-key and --insecure-no-policy contradict each other")
        log.warning(
            "NO POLICY: --insecure-no-policy is set, so this device runs any call the relay "
            "brings, with no signed policy. Development only."
        )
        return None
    if not args.policy_key:
        raise ValueError(
            "--policy-key is required (the control plane's public key; every call must carry "
            "a bundle signed with it), or --insecure-no-policy for development"
        )
    try:
        keys = tuple(load_public_key(path) for path in args.policy_key)
    except KeyFileError as exc:
        raise ValueError(str(exc)) from None
    return DevicePolicyConfig(
        trusted_keys=keys,
        tenant=tenant_of_token(token),
        device_id=args.device_id,
        roots=real_roots(args.root),
        max_ttl_s=args.policy_max_ttl_s,
        clock_skew_s=args.policy_clock_skew_s,
    )


def _server_command(args: argparse.Namespace) -> McpServerCommand:
    if args.server:
        return McpServerCommand(argv=tuple(args.server))
    if not args.root:
        raise StartupError("give --root DIR (for the built-in fs.read server) or a server command")
    roots = [str(Path(root).expanduser()) for root in args.root]
    for root in roots:
        if not Path(root).is_dir():
            raise StartupError(f"--root {root}: not a directory; give a folder fs.read may read")
    traces = ["--otlp-endpoint", args.otlp_endpoint] if args.otlp_endpoint else []
    return McpServerCommand(
        argv=(sys.executable, "-m", "actors.mcp.fs_server", *traces, *roots), name="zl-mcp-fs"
    )


async def run_bridge(
    link_config: RelayLinkConfig,
    server: McpServerCommand,
    *,
    show: bool,
    options: BridgeOptions | None = None,
) -> BridgeStopped | None:
    """Run the bridge's tree until SIGINT/SIGTERM, or until the relay link gives up for good.

    Returns:
        Why the link gave up (a refused token the file still holds, a wrong endpoint), or
        None after a signal.

    Raises:
        TelemetryUnavailable: telemetry was asked for and cannot be built.
    """
    options = options or BridgeOptions()
    if not options.wanted:
        return await _run_tree(link_config, server, show=show, options=options, telemetry=None)
    try:
        from actors.telemetry import Telemetry, TelemetryConfigError
    except ImportError as exc:
        raise TelemetryUnavailable(
            "--otlp-endpoint and --debug-port need OpenTelemetry: install the full "
            "zero-latency distribution or zero-latency-bridge[telemetry]"
        ) from exc
    try:
        telemetry = Telemetry.from_config(options.telemetry_config())
    except TelemetryConfigError as exc:
        raise TelemetryUnavailable(str(exc)) from None
    try:
        return await _run_tree(link_config, server, show=show, options=options, telemetry=telemetry)
    finally:
        with trio.move_on_after(TELEMETRY_CLOSE_TIMEOUT_S, shield=True):
            await telemetry.aclose()


class TelemetryUnavailable(Exception):
    """Telemetry was asked for, and its packages or settings cannot provide it."""


async def _run_tree(
    link_config: RelayLinkConfig,
    server: McpServerCommand,
    *,
    show: bool,
    options: BridgeOptions,
    telemetry: Telemetry | None,
) -> BridgeStopped | None:
    stopped: list[BridgeStopped] = []
    async with open_actor_system("bridge", stop_grace_s=3.0) as system:
        if telemetry is not None:
            from actors.telemetry import TelemetrySampler

            metrics = telemetry.metrics
            await system.spawn(
                ActorSpec(name="telemetry", factory=lambda: TelemetrySampler(metrics))
            )
        tree = await system.spawn(
            SupervisorSpec(
                name="bridge",
                intensity=RestartIntensity(max_restarts=10, within_s=60.0),
                backoff=Backoff(initial_s=0.2, max_s=5.0),
            )
        )
        mcp = await tree.start_child(mcp_client_spec("mcp_server", McpClientConfig(command=server)))
        async with trio.open_nursery() as nursery:

            def on_stopped(error: BridgeStopped) -> None:
                stopped.append(error)
                nursery.cancel_scope.cancel()

            link = await tree.start_child(
                ActorSpec(
                    name="relay_link",
                    factory=lambda: RelayLink(
                        link_config, mcp, on_stopped=on_stopped, telemetry=telemetry
                    ),
                )
            )
            if options.debug_port is not None:
                from supervisors.edges.debug_http import DebugHttpConfig, serve_debug_http

                port = options.debug_port
                binding = await nursery.start(
                    lambda task_status: serve_debug_http(
                        system,
                        config=DebugHttpConfig(port=port),
                        telemetry=telemetry,
                        task_status=task_status,
                    )
                )
                if options.ready_file is not None:
                    await trio.Path(options.ready_file).write_text(
                        json.dumps({"debug_url": binding.url})
                    )
            if show:
                nursery.start_soon(show_status, link, sys.stdout)
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    break
            nursery.cancel_scope.cancel()
    return stopped[0] if stopped else None


def doctor_main(argv: Sequence[str]) -> int:
    """``zl-bridge doctor``: 0 when every check passed, 1 when one failed, 2: bad arguments."""
    args = _parser(doctor=True).parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        token = _read_token(args)
    except OSError as exc:
        print(f"zl-bridge doctor: cannot read {args.token_file}: {exc.strerror}", file=sys.stderr)
        return 2
    server: McpServerCommand | None = None
    server_error = None
    try:
        server = _server_command(args)
    except (ValueError, StartupError) as exc:
        server_error = str(exc)
    print(f"zl-bridge doctor ({BRIDGE_VERSION}): device {args.device_id} via {args.relay}")

    def emit(check: Check) -> None:
        print(check.line(), flush=True)

    passed = trio.run(run_checks, args, token, server, server_error, emit)
    print("all checks passed" if passed else "some checks failed", flush=True)
    return 0 if passed else 1


def bridge_main(argv: Sequence[str] | None = None) -> int:
    """``zl-bridge`` (also ``zl bridge``); returns the exit status.

    2: bad arguments, or an error no retry can fix (a refused token the token file still
    holds, a wrong endpoint path), said in one line.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["doctor"]:
        return doctor_main(argv[1:])
    args = _parser().parse_args(argv)

    def body() -> int:
        logging.basicConfig(
            level=check_log_level(args.log_level),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        install_log_redaction()  # every record, and tracebacks, redacted before output
        try:
            link_config = _link_config(args)
            server = _server_command(args)
            options = BridgeOptions(
                otlp_endpoint=args.otlp_endpoint,
                debug_port=args.debug_port,
                ready_file=args.ready_file,
                metric_interval_s=args.metric_interval_s,
            )
        except (ValueError, OSError, TlsConfigError) as exc:
            raise StartupError(str(exc)) from None
        tune_gc()
        try:
            stopped = trio.run(
                lambda: run_bridge(link_config, server, show=not args.quiet, options=options)
            )
        except TelemetryUnavailable as exc:
            raise StartupError(str(exc)) from None
        if stopped is not None:
            if not args.quiet:
                print(flush=True)  # end the status line
            raise StartupError(str(stopped))
        if not args.quiet:
            print("\nzl-bridge: stopped", flush=True)
        return 0

    return run_command("zl-bridge", body)


def main() -> None:
    """Console script entry point."""
    sys.exit(bridge_main())
