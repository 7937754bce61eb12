"""Run the fake upstream for a demo: ``python -m actors.provider.fake_upstream --port 8900``."""

from __future__ import annotations

import argparse
from functools import partial

import trio

from ._script import Script, ScriptedToolCall
from ._server import FakeUpstream, serve_fake_upstream


async def _main(host: str, port: int, first_token_delay: float, tool: bool) -> None:
    script = Script(
        first_token_delay=first_token_delay,
        tool_call=ScriptedToolCall() if tool else None,
    )
    upstream = FakeUpstream(script)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(partial(serve_fake_upstream, upstream, host=host, port=port))
        print(f"fake upstream listening on {url}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--first-token-delay", type=float, default=0.05)
    parser.add_argument("--tool-call", action="store_true", help="answer with an fs.read call")
    args = parser.parse_args()
    trio.run(_main, args.host, args.port, args.first_token_delay, args.tool_call)


if __name__ == "__main__":
    main()
