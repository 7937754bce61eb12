"""Command line of the fs.read MCP server (console script ``zl-mcp-fs ROOT...``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import trio

from actors.redaction import install_log_redaction

if TYPE_CHECKING:
    from actors.telemetry import Telemetry

from ._server import MAX_CONCURRENT_READS, FsServer, ServerStopped
from ._tool import RootSet


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zl-mcp-fs",
        description="MCP server (stdio) with the read-only tool fs.read under ROOT directories.",
    )
    parser.add_argument("roots", nargs="+", metavar="ROOT", help="allow-listed directory")
    parser.add_argument(
        "--max-concurrent-reads", type=int, default=MAX_CONCURRENT_READS, metavar="N"
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    parser.add_argument(
        "--otlp-endpoint",
        metavar="URL",
        help="export a span per tools/call by OTLP/HTTP here (e.g. http://127.0.0.1:4318)",
    )
    return parser


async def _serve(roots: RootSet, max_reads: int, telemetry: Telemetry | None) -> None:
    # Duplicates, so trio's non-blocking mode never touches the descriptors Python holds.
    stdin = trio.lowlevel.FdStream(os.dup(0))
    stdout = trio.lowlevel.FdStream(os.dup(1))
    async with stdin, stdout:
        server = FsServer(roots, max_concurrent_reads=max_reads, telemetry=telemetry)
        await server.serve(stdin, stdout)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until stdin closes.

    Args:
        argv: the arguments after the program name (``sys.argv[1:]`` when None).

    Returns:
        The exit status: 0 after a clean end of stdin, 1 if stdout went away, 2 for bad
        arguments or roots.
    """
    args = _parser().parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level,
        format="%(asctime)s %(levelname)s zl-mcp-fs %(message)s",
    )
    install_log_redaction()  # every record, and tracebacks, redacted before output
    # stdout carries protocol lines only; a stray print must not corrupt it.
    sys.stdout = sys.stderr
    for root in args.roots:
        if not os.path.isdir(root):
            print(f"zl-mcp-fs: root is not a directory: {root}", file=sys.stderr)
            return 2
    telemetry: Telemetry | None = None
    if args.otlp_endpoint:
        try:
            from actors.telemetry import Exporter, Telemetry, TelemetryConfig, TelemetryConfigError
        except ImportError:
            print(
                "zl-mcp-fs: --otlp-endpoint needs OpenTelemetry (the full zero-latency "
                "distribution, or zero-latency-bridge[telemetry])",
                file=sys.stderr,
            )
            return 2
        try:
            telemetry = Telemetry.from_config(
                TelemetryConfig(
                    service_name="zl-mcp-fs",
                    exporter=Exporter.OTLP,
                    otlp_endpoint=args.otlp_endpoint,
                )
            )
        except TelemetryConfigError as exc:
            print(f"zl-mcp-fs: {exc}", file=sys.stderr)
            return 2
    roots = RootSet(args.roots)
    try:
        trio.run(_serve, roots, args.max_concurrent_reads, telemetry)
    except ServerStopped as exc:
        # The cause is the client going away, not a bug: one line, no traceback.
        logging.getLogger("actors.mcp.fs_server").error("stopping: %s", exc)  # noqa: TRY400
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        roots.close()
        if telemetry is not None:
            telemetry.shutdown()  # flushes the last spans (bounded by the OTLP timeout)
    return 0
