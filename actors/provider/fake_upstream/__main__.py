"""Run the fake upstream for a demo: ``python -m actors.provider.fake_upstream --port 8900``."""

from __future__ import annotations

import argparse
import gc
from functools import partial

import attrs
import trio

from ._script import Script, ScriptedToolCall
from ._server import FakeUpstream, serve_fake_upstream

# The host's collector thresholds (supervisors/_process.py, GC_THRESHOLDS).
_GC_THRESHOLDS = (50_000, 20, 100)


async def _main(args: argparse.Namespace) -> None:
    script = Script(
        first_token_delay=args.first_token_delay,
        token_interval=args.token_interval,
        tool_call=ScriptedToolCall() if args.tool_call else None,
    )
    if args.answer_tokens is not None:
        script = attrs.evolve(script, text=" ".join(f"w{i}" for i in range(args.answer_tokens)))
    # Nobody can read what a separate process remembers: keep nothing, so a long benchmark
    # run stays the same size (and its garbage collections stay short).
    upstream = FakeUpstream(script, keep=0)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(
            partial(serve_fake_upstream, upstream, host=args.host, port=args.port)
        )
        # What exists now lives as long as the process: later collections need not scan it.
        gc.freeze()
        print(f"fake upstream listening on {url}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--first-token-delay", type=float, default=0.05)
    parser.add_argument(
        "--token-interval", type=float, default=0.0, help="seconds between content chunks"
    )
    parser.add_argument(
        "--answer-tokens", type=int, default=None, help="answer with this many word tokens"
    )
    parser.add_argument("--tool-call", action="store_true", help="answer with an fs.read call")
    args = parser.parse_args()
    # Fewer, later collections, as the host runs (supervisors/_process.py): the fake's own
    # pauses must not land on the latencies it is used to measure.
    gc.set_threshold(*_GC_THRESHOLDS)
    trio.run(_main, args)


if __name__ == "__main__":
    main()
