"""``zl bff``: run the BFF until SIGINT/SIGTERM, then drain and stop."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import attrs
import trio

from actors.redaction import install_log_redaction
from supervisors._config import ConfigError, load_config
from supervisors._process import freeze_startup_objects, startup_error, tune_gc

from ._bff import DRAIN_MARGIN_S, BffAddresses, check_files, run_bff
from ._config import BffConfig, check_config

log = logging.getLogger("zl.bff")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zl bff",
        description="Run the Zero Latency BFF (HTTPS: sessions, SSE chat, OpenAI-compatible "
        "endpoint, chat page) in front of a model host.",
        epilog="Settings come from --config (TOML) and ZL_* variables, e.g. ZL_HTTP__PORT=8443.",
    )
    parser.add_argument("--config", type=Path, help="TOML configuration file")
    parser.add_argument(
        "--ready-file", type=Path, help="write the bound address here as JSON once serving"
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return parser


async def _serve(config: BffConfig, ready_file: Path | None) -> None:
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:

        async def on_signals() -> None:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    log.info("bff: %s received, shutting down", signal.Signals(signum).name)
                    shutdown.set()
                    return

        nursery.start_soon(on_signals)
        addresses: BffAddresses = await nursery.start(
            lambda task_status: run_bff(config, shutdown=shutdown, task_status=task_status)
        )
        print(f"zl bff: serving {addresses.url} (chat page at {addresses.url}/)", flush=True)
        freeze_startup_objects()
        if ready_file is not None:
            await trio.Path(ready_file).write_text(json.dumps(attrs.asdict(addresses)))
        await shutdown.wait()
        nursery.cancel_scope.deadline = (
            trio.current_time() + config.http.shutdown_grace_s + DRAIN_MARGIN_S + 3
        )


def bff_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``zl bff``; returns the exit status (2 for a bad configuration)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    install_log_redaction()  # every record, and tracebacks, redacted before output
    tune_gc()
    try:
        config = load_config(BffConfig, args.config)
        check_config(config)
        check_files(config)
        trio.run(_serve, config, args.ready_file)
    except ConfigError as exc:
        print(f"zl bff: {exc}", file=sys.stderr)
        return 2
    except BaseExceptionGroup as group:
        # A setting found unusable once running (the port is taken) comes out of the nursery.
        cause = startup_error(group, (ConfigError,))
        if cause is None:
            raise
        print(f"zl bff: {cause}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print("zl bff: stopped", flush=True)
    return 0
