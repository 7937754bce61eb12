"""``zl relay``: run one relay shard until SIGINT/SIGTERM."""

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
from actors.relay import KeyFileError
from supervisors._config import ConfigError, load_config
from supervisors._process import startup_error, tune_gc
from supervisors.tls import TlsConfigError

from ._config import RelayConfig, check_config
from ._relay import RelayAddresses, run_relay

log = logging.getLogger("zl.relay")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zl relay",
        description="Run one Tool Relay shard (WSS endpoints for device bridges and hosts).",
        epilog=(
            "Settings come from --config (TOML) and ZL_* variables, e.g. ZL_LIMITS__HEARTBEAT_S=5."
        ),
    )
    parser.add_argument("--config", type=Path, required=True, help="TOML configuration file")
    parser.add_argument(
        "--ready-file", type=Path, help="write the bound addresses here as JSON once serving"
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    parser.add_argument(
        "--shard-id",
        help="this shard's id, overriding shard_id in the file (a StatefulSet passes its pod name)",
    )
    return parser


async def _serve(config: RelayConfig, ready_file: Path | None) -> None:
    async with trio.open_nursery() as nursery:
        addresses: RelayAddresses = await nursery.start(
            lambda task_status: run_relay(config, task_status=task_status)
        )
        print(
            f"zl relay {addresses.shard_id}: devices at {addresses.device_url}, "
            f"hosts at {addresses.host_url}",
            flush=True,
        )
        if ready_file is not None:
            await trio.Path(ready_file).write_text(json.dumps(attrs.asdict(addresses)))
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                log.info("relay: %s received, shutting down", signal.Signals(signum).name)
                break
        nursery.cancel_scope.cancel()


def relay_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``zl relay``; returns the exit status (2 for a bad configuration)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    install_log_redaction()  # every record, and tracebacks, redacted before output
    tune_gc()
    try:
        overrides = {"shard_id": args.shard_id} if args.shard_id else None
        config = load_config(RelayConfig, args.config, overrides=overrides)
        check_config(config)
        trio.run(_serve, config, args.ready_file)
    except (ConfigError, ValueError, KeyFileError, TlsConfigError) as exc:
        print(f"zl relay: {exc}", file=sys.stderr)
        return 2
    except BaseExceptionGroup as group:
        cause = startup_error(group, (ValueError, KeyFileError, TlsConfigError, OSError))
        if cause is None:
            raise
        print(f"zl relay: {cause}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print("zl relay: stopped", flush=True)
    return 0
