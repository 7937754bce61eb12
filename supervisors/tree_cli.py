"""``zl tree``: print the live actor tree of a running process, from its debug endpoint.

::

    TreeFetchError               (Exception)  one line for the user; exit status 1
     ├── TreeConnectError        nothing listens at the URL, or the connection failed / timed out
     ├── TreeAuthError           the endpoint answered 401 (no token or the wrong one)
     └── TreeResponseError       another HTTP status, or a body that is not an actor tree

The command fetches ``/debug/actors?format=json`` with httpx (with a timeout), rebuilds the
snapshot with ``zl_actors.snapshot_from_json`` and prints ``zl_actors.render_tree``; on a
terminal, failed nodes are red and restarting ones yellow (``NO_COLOR`` turns that off).
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any, TextIO

import attrs
import httpx

from supervisors.edges.debug_http import ACTORS_PATH
from supervisors.tls import ALPN_HTTP1, client_ssl_context
from zl_actors import ActorSnapshot, render_failures, render_tree, snapshot_from_json

#: Where ``zl tree`` looks when neither ``--url`` nor ``ZL_DEBUG_URL`` says: the debug port
#: the processes listen on by default.
DEFAULT_URL = "http://127.0.0.1:7081"
URL_ENV = "ZL_DEBUG_URL"
#: The same variable the processes read their debug token from, so one shell serves both.
TOKEN_ENV = "ZL_DEBUG__TOKEN"
#: Whole-request deadline (connect, send, first byte, body) unless ``--timeout`` says.
DEFAULT_TIMEOUT_S = 5.0
#: Largest body accepted from the endpoint: a tree of tens of thousands of actors fits.
MAX_RESPONSE_BYTES = 32 * 1024 * 1024

RED = "\x1b[31m"
YELLOW = "\x1b[33m"
RESET = "\x1b[0m"
CLEAR_SCREEN = "\x1b[H\x1b[2J"
STATE_COLOURS = {"failed": RED, "restarting": YELLOW}


class TreeFetchError(Exception):
    """The tree could not be fetched; the message is the one line shown to the user."""


class TreeConnectError(TreeFetchError):
    """Nothing answered at the URL (refused, unreachable, TLS failure or timeout)."""


class TreeAuthError(TreeFetchError):
    """The endpoint wants a (different) bearer token."""


class TreeResponseError(TreeFetchError):
    """The endpoint answered, but not with an actor tree."""


def actors_url(url: str) -> str:
    """The JSON tree URL for a base URL (or for a URL already naming ``/debug/actors``)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise TreeFetchError(f"not an http(s) URL: {url!r}")
    path = parts.path if parts.path not in ("", "/") else ACTORS_PATH
    query = urllib.parse.urlencode([*urllib.parse.parse_qsl(parts.query), ("format", "json")])
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, query, ""))


def fetch_tree_json(
    client: httpx.Client, url: str, *, token: str | None
) -> tuple[str, dict[str, Any]]:
    """GET the tree; return the body as received and as parsed JSON.

    Raises:
        TreeConnectError, TreeAuthError, TreeResponseError: see the module's drawing.
    """
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    target = actors_url(url)
    try:
        with client.stream("GET", target, headers=headers) as response:
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_RESPONSE_BYTES:
                    raise TreeResponseError(
                        f"{target} answered more than {MAX_RESPONSE_BYTES} bytes"
                    )
    except httpx.TimeoutException as error:
        raise TreeConnectError(
            f"{target} did not answer in time ({type(error).__name__})"
        ) from error
    except httpx.ConnectError as error:
        raise TreeConnectError(f"cannot connect to {target}: {_reason(error)}") from error
    except httpx.HTTPError as error:
        raise TreeConnectError(f"request to {target} failed: {_reason(error)}") from error
    if response.status_code == 401:
        hint = "the token was refused" if token else "it requires a token"
        raise TreeAuthError(
            f"{target} answered 401 unauthorised: {hint} (pass --token or set {TOKEN_ENV})"
        )
    if response.status_code != 200:
        raise TreeResponseError(f"{target} answered HTTP {response.status_code}")
    text = body.decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except ValueError as error:
        raise TreeResponseError(f"{target} did not answer JSON: {error}") from error
    if not isinstance(data, dict):
        raise TreeResponseError(f"{target} answered JSON that is not an actor tree")
    return text, data


def _reason(error: Exception) -> str:
    # httpx wraps the OS error; its innermost message (e.g. "Connection refused") is the
    # one line worth showing.
    cause: BaseException = error
    while cause.__cause__ is not None or cause.__context__ is not None:
        cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
    text = str(cause) or type(cause).__name__
    return " ".join(text.split())


def to_snapshot(data: dict[str, Any], url: str) -> ActorSnapshot:
    """Rebuild the snapshot.

    Raises:
        TreeResponseError: the JSON does not have the shape of an actor tree.
    """
    try:
        return snapshot_from_json(data)
    except Exception as error:  # cattrs raises a validation group; any failure means "bad tree"
        raise TreeResponseError(
            f"{url} answered JSON that is not an actor tree ({error})"
        ) from error


def _printable(text: str) -> str:
    # Names and failure messages come from the process: a control character in them (an
    # escape sequence, a bidi override, a newline) must be shown, not obeyed by the terminal.
    return "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in text
    )


def _printable_tree(node: ActorSnapshot) -> ActorSnapshot:
    failure = node.last_failure
    return attrs.evolve(
        node,
        name=_printable(node.name),
        actor_type=_printable(node.actor_type),
        state=_printable(node.state),
        last_failure=None
        if failure is None
        else attrs.evolve(
            failure, type=_printable(failure.type), message=_printable(failure.message)
        ),
        children=tuple(_printable_tree(child) for child in node.children),
        recent_failures=tuple(
            attrs.evolve(
                failure,
                path=_printable(failure.path),
                actor_type=_printable(failure.actor_type),
                type=_printable(failure.type),
                message=_printable(failure.message),
                action=_printable(failure.action),
            )
            for failure in node.recent_failures
        ),
    )


def render_coloured(root: ActorSnapshot, *, colour: bool) -> str:
    """``render_tree``, with failed nodes red and restarting ones yellow when ``colour``.

    Control characters in names and messages are shown escaped (``\\x1b``, ``\\n``), so
    each node is exactly one line and nothing from the process can drive the terminal.
    """
    root = _printable_tree(root)
    text = render_tree(root)
    failures = render_failures(root)
    if colour:
        lines = text.split("\n")
        # render_tree prints one line per node, depth first: the same order as walk().
        text = "\n".join(
            f"{STATE_COLOURS[node.state]}{line}{RESET}" if node.state in STATE_COLOURS else line
            for node, line in zip(root.walk(), lines, strict=True)
        )
    return f"{text}\n{failures}" if failures else text


def _use_colour(stream: TextIO) -> bool:
    return stream.isatty() and not os.environ.get("NO_COLOR")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zl tree", description="Print the live actor tree of a running process."
    )
    parser.add_argument(
        "--url",
        default=os.environ.get(URL_ENV, DEFAULT_URL),
        help=f"the process's debug endpoint (default ${URL_ENV} or %(default)s)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV),
        help=f"bearer token (default ${TOKEN_ENV}; prefer the variable: arguments show in ps)",
    )
    parser.add_argument("--ca", help="PEM CA that signs an https endpoint's certificate")
    parser.add_argument("--json", action="store_true", help="print the JSON as received")
    parser.add_argument(
        "--watch", type=float, metavar="SECONDS", help="refresh every SECONDS until Ctrl-C"
    )
    parser.add_argument(
        "--count", type=int, metavar="N", help="with --watch: stop after N refreshes"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="seconds to wait for the endpoint (default %(default)s)",
    )
    return parser


def _show_once(client: httpx.Client, args: argparse.Namespace, out: TextIO) -> None:
    text, data = fetch_tree_json(client, args.url, token=args.token)
    if args.json:
        out.write(text.rstrip("\n") + "\n")
    else:
        root = to_snapshot(data, args.url)
        out.write(render_coloured(root, colour=_use_colour(out)) + "\n")
    out.flush()


def tree_main(argv: Sequence[str] | None = None) -> int:
    """``zl tree [--url URL] [--token T] [--json] [--watch SECONDS]``.

    Args:
        argv: the arguments after the command name (``sys.argv[1:]`` when None).

    Returns:
        0 when the tree was printed (or ``--watch`` was ended with Ctrl-C or ``--count``);
        1 when it could not be fetched, with one line on stderr and no traceback. Bad
        arguments exit with status 2 through argparse.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error("--timeout must be > 0")
    if args.watch is not None and args.watch <= 0:
        parser.error("--watch must be > 0")
    if args.count is not None and (args.watch is None or args.count <= 0):
        parser.error("--count needs --watch and must be > 0")
    out = sys.stdout
    try:
        verify: ssl.SSLContext | bool = True
        if args.ca:
            verify = client_ssl_context(args.ca, alpn=ALPN_HTTP1)
        with httpx.Client(timeout=args.timeout, verify=verify, trust_env=False) as client:
            if args.watch is None:
                _show_once(client, args, out)
                return 0
            shown = 0
            while args.count is None or shown < args.count:
                if _use_colour(out):
                    out.write(CLEAR_SCREEN)
                try:
                    _show_once(client, args, out)
                except TreeFetchError as error:
                    # While watching, an endpoint that restarts or blips is shown, not fatal.
                    print(f"zl tree: {error}", file=sys.stderr, flush=True)
                shown += 1
                if args.count is None or shown < args.count:
                    time.sleep(args.watch)
            return 0
    except TreeFetchError as error:
        print(f"zl tree: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except Exception as error:  # e.g. a bad --ca file: one line, never a traceback
        print(f"zl tree: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(tree_main())
