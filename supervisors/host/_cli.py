"""``zl host``: run the model host until SIGINT/SIGTERM, then drain and stop."""

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
from supervisors.tls import TlsConfigError

from ._config import HostConfig
from ._host import HostAddresses, check_config, run_host

log = logging.getLogger("zl.host")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zl host",
        description="Run the Zero Latency model host (gRPC StreamChat, debug endpoint).",
        epilog="Settings come from --config (TOML) and ZL_* variables, e.g. ZL_GRPC__PORT=50051.",
    )
    parser.add_argument("--config", type=Path, help="TOML configuration file")
    parser.add_argument(
        "--ready-file", type=Path, help="write the bound addresses here as JSON once serving"
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return parser


async def _serve(config: HostConfig, ready_file: Path | None) -> None:
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:

        async def on_signals() -> None:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    log.info("host: %s received, shutting down", signal.Signals(signum).name)
                    shutdown.set()
                    return

        nursery.start_soon(on_signals)
        addresses: HostAddresses = await nursery.start(
            lambda task_status: run_host(config, shutdown=shutdown, task_status=task_status)
        )
        scheme = "TLS" if addresses.tls else "PLAINTEXT"
        print(
            f"zl host: serving gRPC on {addresses.grpc_host}:{addresses.grpc_port} ({scheme})"
            + (
                f"; actor tree at {addresses.debug_url}/debug/actors" if addresses.debug_url else ""
            ),
            flush=True,
        )
        freeze_startup_objects()
        if ready_file is not None:
            await trio.Path(ready_file).write_text(json.dumps(attrs.asdict(addresses)))
        await shutdown.wait()
        nursery.cancel_scope.deadline = trio.current_time() + config.grpc.shutdown_grace_s + 5


def host_main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    install_log_redaction()  # every record, and tracebacks, redacted before output
    tune_gc()
    try:
        config = load_config(HostConfig, args.config)
        check_config(config)
        trio.run(_serve, config, args.ready_file)
    except ConfigError as exc:
        print(f"zl host: {exc}", file=sys.stderr)
        return 2
    except BaseExceptionGroup as group:
        cause = startup_error(group, (ConfigError, TlsConfigError, OSError))
        if cause is None:
            raise
        print(f"zl host: {cause}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print("zl host: stopped", flush=True)
    return 0
