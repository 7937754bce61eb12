"""Egress in policy: which ``host:port`` a network tool may reach.

A call's targets come from its arguments: ``url`` (or each of ``urls``) gives its host and
port (the scheme's default port when none is written), ``host`` with ``port`` gives them
directly. A pattern is ``host:port`` with an exact host, an IP literal (``[::1]:8443`` for
IPv6) or ``*.example.com`` for exactly one label under ``example.com``. Hosts compare
lower-cased, without a trailing dot. An argument that cannot be read as a target makes
the call one that policy cannot admit.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from typing import Any, Final

DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST = re.compile(rf"^(?:{_LABEL}\.)*{_LABEL}\Z")
_IPV4 = re.compile(r"^[0-9]{1,3}(?:\.[0-9]{1,3}){3}\Z")

Target = tuple[str, int]


class EgressRefused(ValueError):
    """An argument names no readable ``host:port``."""


def _port(text: str) -> int:
    # ASCII digits only: str.isdigit() and int() also take other scripts' digits ("١٢٣").
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= 65535:
        raise ValueError(f"port {text[:8]!r} is not 1-65535")
    return int(text)


def _host(text: str) -> str:
    host = text.lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        if not re.match(r"^\[[0-9a-f:.]+\]\Z", host):
            raise ValueError(f"{text[:64]!r} is not an IPv6 literal")
        return host
    if not (_HOST.match(host) or _IPV4.match(host)):
        raise ValueError(f"{text[:64]!r} is not a host name")
    return host


def parse_target(text: str) -> Target:
    """``host:port`` as (host, port).

    Raises:
        ValueError: not ``host:port``.
    """
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text[:64]!r} is not host:port")
    return _host(host), _port(port)


class EgressPattern:
    """One allow-list entry: ``host:port`` or ``*.domain:port``."""

    __slots__ = ("host", "port", "suffix", "text")

    def __init__(self, text: str) -> None:
        """Parse ``text``.

        Raises:
            ValueError: not ``host:port`` or ``*.domain:port``.
        """
        host, sep, port = text.rpartition(":")
        if not sep:
            raise ValueError(f"{text!r} is not host:port")
        self.text = text
        self.port = _port(port)
        if host.startswith("*."):
            self.suffix: str | None = _host(host[2:])
            self.host = ""
        else:
            self.suffix = None
            self.host = _host(host)

    def matches(self, target: Target) -> bool:
        host, port = target
        if port != self.port:
            return False
        if self.suffix is None:
            return host == self.host
        head, dot, rest = host.partition(".")
        return bool(dot) and bool(head) and rest == self.suffix

    def __repr__(self) -> str:
        return f"EgressPattern({self.text!r})"


def _url_target(url: object) -> Target:
    if not isinstance(url, str) or len(url) > 4096:
        raise EgressRefused("a url argument is not a text")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise EgressRefused(f"url {url[:80]!r} cannot be read: {exc}") from None
    scheme = parts.scheme.lower()
    if parts.hostname is None or scheme not in DEFAULT_PORTS:
        raise EgressRefused(f"url {url[:80]!r} has no http(s)/ws(s) host")
    try:
        host = _host(f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname)
    except ValueError as exc:
        raise EgressRefused(str(exc)) from None
    return host, port if port is not None else DEFAULT_PORTS[scheme]


def egress_targets(args: Mapping[str, Any]) -> tuple[Target, ...]:
    """Where a call would connect to, from its arguments (empty: nowhere).

    Raises:
        EgressRefused: a ``url``, ``urls``, ``host`` or ``port`` argument that cannot be read.
    """
    targets: list[Target] = []
    if "url" in args:
        targets.append(_url_target(args["url"]))
    if "urls" in args:
        urls = args["urls"]
        for url in urls if isinstance(urls, list) else [urls]:
            targets.append(_url_target(url))
    if "host" in args or "port" in args:
        host, port = args.get("host"), args.get("port")
        if not isinstance(host, str) or isinstance(port, bool) or not isinstance(port, int):
            raise EgressRefused("host and port arguments must be a text and an integer")
        try:
            targets.append((_host(host), _port(str(port))))
        except ValueError as exc:
            raise EgressRefused(str(exc)) from None
    return tuple(targets)
