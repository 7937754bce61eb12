"""``zl-bridge doctor``: check what the bridge needs, one line per check, without serving.

::

    ok    token  device laptop-1 of tenant acme, audience zl-relay, expires ... (in 23 h 59 min)
    ok    ca     certs/ca.pem: 1 certificate, valid until 2036-11-30
    ok    relay  wss://relay:8443/v1/device accepted the token; this shard serves tenant acme
    ok    mcp    zl-mcp-fs started: 1 tool (fs.read), protocol 2025-11-25

The relay check opens a device connection with the token and sends a ``ping`` where the
relay expects ``device.hello``: the relay checks the token and the tenant's shard first, so
its answer says which of them failed (4401, a ``redirect``) or that both passed (it then
refuses the ping with ``relay.bad_frame``). No hello is sent, so a bridge already connected
with the same device id is not replaced.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import jwt
import trio
from cryptography import x509
from trio_websocket import ConnectionClosed, ConnectionRejected, HandshakeError

from actors.mcp import ListTools, McpClientConfig, McpServerCommand, mcp_client_spec
from actors.relay import BadFrame, ErrorFrame, Ping, Redirect, decode_frame
from actors.relay import encode_frame as encode_relay_frame
from actors.relay._dial import open_relay_websocket
from supervisors.tls import ALPN_HTTP1, TlsConfigError, client_ssl_context
from zl_actors import ActorError, open_actor_system

#: Deadline of each network check (connect, TLS, WebSocket handshake, the relay's answer).
CHECK_TIMEOUT_S = 10.0
#: How long the MCP server may take to start and list its tools.
MCP_START_TIMEOUT_S = 20.0
#: A token that expires sooner than this is reported, though it still works.
EXPIRY_WARNING_S = 3600.0
#: Redirects the relay check follows (the bridge follows up to MAX_REDIRECTS the same way).
MAX_REDIRECTS = 3
MAX_FRAME_BYTES = 1 << 20


class RelayRefused(Exception):
    """The relay answered the probe with an error of its own (code and message)."""


@attrs.frozen(kw_only=True)
class Check:
    """One line of the report."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"  {'ok' if self.ok else 'FAIL':<5} {self.name:<6} {self.detail}"


def _duration(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds >= 86_400:
        return f"{seconds / 86_400:.1f} days"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours} h {rest // 60} min" if hours else f"{rest // 60} min {rest % 60} s"


def check_token(
    token: str, *, device_id: str, audience: str, now: float | None = None
) -> tuple[Check, str | None]:
    """What the token claims, read without its signature (the relay holds the key).

    Returns:
        The check, and the tenant the token names (None when unreadable).
    """
    current = time.time() if now is None else now
    if not token:
        return Check(
            name="token", ok=False, detail="no token (--token-file or $ZL_BRIDGE_TOKEN)"
        ), None
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError as exc:
        return Check(name="token", ok=False, detail=f"not a readable JWT: {exc}"), None
    tenant = claims.get("tenant") if isinstance(claims.get("tenant"), str) else None
    problems = []
    if claims.get("kind") != "device":
        problems.append(f"a {claims.get('kind')!r} token, not a device token")
    if claims.get("device_id") != device_id:
        problems.append(f"for device {claims.get('device_id')!r}, not {device_id!r}")
    if claims.get("aud") != audience:
        problems.append(f"audience {claims.get('aud')!r}, the relay expects {audience!r}")
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        problems.append("no expiry (exp)")
        when = "never"
    else:
        stamp = dt.datetime.fromtimestamp(exp, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        left = exp - current
        if left <= 0:
            problems.append(f"expired {stamp} ({_duration(left)} ago)")
        when = f"expires {stamp} (in {_duration(left)})" if left > 0 else f"expired {stamp}"
        if 0 < left < EXPIRY_WARNING_S:
            when += "; mint a new one soon"
    if problems:
        return Check(name="token", ok=False, detail="; ".join(problems)), tenant
    detail = f"device {device_id} of tenant {tenant}, audience {audience}, {when}"
    return Check(name="token", ok=True, detail=detail), tenant


def check_ca(ca: Path | None, *, relay_url: str, now: float | None = None) -> Check:
    """The CA bundle exists, holds certificates, and they are in date."""
    if not relay_url.startswith("wss://"):
        return Check(name="ca", ok=True, detail="not used: ws:// without TLS (--insecure-dev)")
    if ca is None:
        return Check(name="ca", ok=False, detail="--ca is required for wss://")
    try:
        certificates = x509.load_pem_x509_certificates(ca.read_bytes())
    except OSError as exc:
        return Check(name="ca", ok=False, detail=f"{ca}: {exc.strerror}")
    except ValueError:
        return Check(name="ca", ok=False, detail=f"{ca}: no PEM certificate in it")
    current = dt.datetime.fromtimestamp(time.time() if now is None else now, dt.UTC)
    in_date = [c for c in certificates if c.not_valid_before_utc <= current < c.not_valid_after_utc]
    if not in_date:
        return Check(name="ca", ok=False, detail=f"{ca}: every certificate in it is out of date")
    until = min(c.not_valid_after_utc for c in in_date).strftime("%Y-%m-%d")
    count = f"{len(certificates)} certificate{'s' if len(certificates) != 1 else ''}"
    return Check(name="ca", ok=True, detail=f"{ca}: {count}, valid until {until}")


async def _probe_relay(url: str, context: ssl.SSLContext | None, token: str) -> Redirect | str:
    """One probe of ``url``: the redirect it answers with, or what it said (raises on failure)."""
    async with open_relay_websocket(
        url,
        context,
        token=token,
        message_queue_size=4,
        max_message_size=MAX_FRAME_BYTES,
        connect_timeout_s=CHECK_TIMEOUT_S,
    ) as ws:
        await ws.send_message(encode_relay_frame(Ping(nonce="doctor", sent_at_ms=0.0)))
        with trio.fail_after(CHECK_TIMEOUT_S):
            frame = decode_frame(await ws.get_message(), max_bytes=MAX_FRAME_BYTES, validate=False)
    if isinstance(frame, Redirect):
        return frame
    if isinstance(frame, ErrorFrame) and frame.code == "relay.bad_frame":
        return "ok"
    if isinstance(frame, ErrorFrame):
        raise RelayRefused(f"{frame.code}: {frame.message}")
    raise RelayRefused(f"unexpected {frame.TYPE} frame")


async def check_relay(
    url: str, *, ca: Path | None, token: str, tenant: str | None, insecure_dev: bool
) -> Check:
    """The relay answers, accepts the token, and (after redirects) serves the tenant."""
    context = None
    if url.startswith("wss://"):
        if ca is None:
            return Check(name="relay", ok=False, detail="--ca is required for wss://")
        try:
            context = client_ssl_context(ca, alpn=ALPN_HTTP1)
        except TlsConfigError as exc:
            return Check(name="relay", ok=False, detail=str(exc))
    elif not (url.startswith("ws://") and insecure_dev):
        return Check(
            name="relay",
            ok=False,
            detail="--relay must be wss://... (ws:// only with --insecure-dev)",
        )
    path = [url]
    try:
        for _ in range(MAX_REDIRECTS + 1):
            answer = await _probe_relay(path[-1], context, token)
            if not isinstance(answer, Redirect):
                via = f" (redirected: {' -> '.join(path)})" if len(path) > 1 else ""
                return Check(
                    name="relay",
                    ok=True,
                    detail=f"{path[-1]} accepted the token; this shard serves tenant {tenant}{via}",
                )
            path.append(answer.shard_url)
        return Check(name="relay", ok=False, detail=f"too many redirects: {' -> '.join(path)}")
    except ConnectionClosed as exc:
        reason = exc.reason
        code = getattr(reason, "code", None)
        text = getattr(reason, "reason", None) or ""
        return Check(
            name="relay",
            ok=False,
            detail=f"{path[-1]} closed the connection ({code} {text})".rstrip(),
        )
    except ConnectionRejected as exc:
        body = exc.body.decode("utf-8", "replace")[:200] if exc.body else ""
        detail = f"{path[-1]} refused the WebSocket handshake: HTTP {exc.status_code} {body}"
        return Check(name="relay", ok=False, detail=detail.rstrip())
    except HandshakeError as exc:
        return Check(
            name="relay", ok=False, detail=f"{path[-1]} refused the WebSocket handshake: {exc}"
        )
    except trio.TooSlowError:
        return Check(
            name="relay", ok=False, detail=f"{path[-1]}: no answer within {CHECK_TIMEOUT_S:g} s"
        )
    except (OSError, BadFrame, RelayRefused, ValueError) as exc:
        return Check(name="relay", ok=False, detail=f"{path[-1]}: {exc}")


def _cause(exc: BaseException) -> str:
    """The innermost readable failure (through exception groups and ``raise from``)."""
    while True:
        if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
            exc = exc.exceptions[0]
        elif isinstance(exc, ActorError) and exc.__cause__ is not None:
            exc = exc.__cause__
        else:
            return f"{type(exc).__name__}: {exc}"


async def check_mcp(server: McpServerCommand) -> Check:
    """The MCP server starts, completes its handshake and lists its tools."""
    try:
        with trio.fail_after(MCP_START_TIMEOUT_S):
            async with open_actor_system("doctor", stop_grace_s=3.0) as system:
                client = await system.spawn(
                    mcp_client_spec("mcp_server", McpClientConfig(command=server))
                )
                catalog = await client.ask(ListTools(), timeout=MCP_START_TIMEOUT_S)
    except trio.TooSlowError:
        detail = f"{server.name}: not ready within {MCP_START_TIMEOUT_S:g} s"
        return Check(name="mcp", ok=False, detail=detail)
    except Exception as exc:  # the doctor reports every failure as a line, never a traceback
        return Check(name="mcp", ok=False, detail=f"{server.name} did not start: {_cause(exc)}")
    names = ", ".join(catalog.names) or "none"
    count = f"{len(catalog.tools)} tool{'s' if len(catalog.tools) != 1 else ''}"
    return Check(
        name="mcp",
        ok=True,
        detail=f"{server.name} started: {count} ({names}), protocol {catalog.protocol_version}",
    )


async def run_checks(
    args: argparse.Namespace,
    token: str,
    server: McpServerCommand | None,
    server_error: str | None,
    emit: Callable[[Check], None],
) -> bool:
    """Run every check in order, emitting each line as soon as it is known."""
    results = []
    token_check, tenant = check_token(token, device_id=args.device_id, audience=args.audience)
    for check in (token_check, check_ca(args.ca, relay_url=args.relay)):
        emit(check)
        results.append(check.ok)
    relay = await check_relay(
        args.relay, ca=args.ca, token=token, tenant=tenant, insecure_dev=args.insecure_dev
    )
    emit(relay)
    results.append(relay.ok)
    mcp = (
        Check(name="mcp", ok=False, detail=server_error or "no MCP server")
        if server is None
        else await check_mcp(server)
    )
    emit(mcp)
    results.append(mcp.ok)
    return all(results)
