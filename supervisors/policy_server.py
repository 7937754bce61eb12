"""``zl policy serve DIR``: a reference control plane that serves signed bundles over HTTPS.

For development, tests and the demo: ``GET /v1/tenants/<tenant>/bundle`` answers the
content of ``DIR/<tenant>.jws`` (``application/jose``) with a strong ``ETag`` (its sha256),
``304 Not Modified`` when ``If-None-Match`` names it, ``404`` when the tenant has no file.
Files are read on every request, so replacing one (atomically) publishes a new bundle at
once. ``GET /healthz`` answers ``ok``.

One request per connection (``Connection: close``), each wait bounded: the TLS handshake,
reading the request (at most ``MAX_REQUEST_BYTES``) and writing the answer. The host's
policy cache is the client; a signed bundle needs no more from its server than that.
"""

from __future__ import annotations

import hashlib
import logging
import re
import ssl
from collections import Counter
from pathlib import Path
from typing import Final

import attrs
import h11
import trio

from supervisors.edges._listen import bind_listener

log = logging.getLogger("zl.policy.serve")

BUNDLE_PATH: Final = re.compile(r"^/v1/tenants/([A-Za-z0-9][A-Za-z0-9._:@-]{0,127})/bundle\Z")
MAX_REQUEST_BYTES: Final = 16 * 1024
MAX_BUNDLE_BYTES: Final = 65536 + 2
HANDSHAKE_TIMEOUT_S: Final = 10.0
REQUEST_TIMEOUT_S: Final = 10.0
WRITE_TIMEOUT_S: Final = 10.0
LISTEN_BACKLOG: Final = 128
MAX_CONNECTIONS: Final = 256


@attrs.define
class PolicyServerBinding:
    """Where the server listens, and what it has answered (by status), for tests and logs."""

    host: str
    port: int
    tls: bool
    answered: Counter[int] = attrs.Factory(Counter)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def source(self) -> str:
        """The ``policy.source`` a host uses to pull from this server."""
        return f"{self.url}/v1/tenants/{{tenant}}/bundle"


def etag_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _matches(if_none_match: bytes, tag: str) -> bool:
    for item in if_none_match.decode("latin-1").split(","):
        value = item.strip().removeprefix("W/").strip('"')
        if value in ("*", tag):
            return True
    return False


def answer(
    directory: Path, method: bytes, target: bytes, headers: dict[bytes, bytes]
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The response to one request: status, headers, body (pure but for reading the file)."""
    path = target.split(b"?", 1)[0].decode("latin-1")
    if method not in (b"GET", b"HEAD"):
        return 405, [(b"allow", b"GET, HEAD")], b"method not allowed\n"
    if path == "/healthz":
        return 200, [(b"content-type", b"text/plain")], b"ok\n"
    match = BUNDLE_PATH.match(path)
    if match is None:
        return 404, [(b"content-type", b"text/plain")], b"not found\n"
    file = directory / f"{match.group(1)}.jws"
    try:
        with file.open("rb") as handle:
            data = handle.read(MAX_BUNDLE_BYTES + 1)
    except FileNotFoundError:
        return 404, [(b"content-type", b"text/plain")], b"no bundle for this tenant\n"
    except OSError:
        log.exception("policy serve: cannot read %s", file)
        return 500, [(b"content-type", b"text/plain")], b"cannot read the bundle\n"
    if len(data) > MAX_BUNDLE_BYTES:
        return 500, [(b"content-type", b"text/plain")], b"the bundle file is too large\n"
    tag = etag_of(data)
    common = [(b"etag", f'"{tag}"'.encode()), (b"cache-control", b"no-cache")]
    inm = headers.get(b"if-none-match")
    if inm is not None and _matches(inm, tag):
        return 304, common, b""
    return 200, [(b"content-type", b"application/jose"), *common], data


async def _read_request(stream: trio.abc.Stream, conn: h11.Connection) -> h11.Request | None:
    request = None
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(4096)
            conn.receive_data(bytes(data))
            if not data:
                return request
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.EndOfMessage):
            return request
        elif isinstance(event, h11.ConnectionClosed):
            return None


async def _handle(
    raw: trio.SocketStream,
    directory: Path,
    context: ssl.SSLContext | None,
    binding: PolicyServerBinding,
) -> None:
    stream: trio.abc.Stream = raw
    try:
        if context is not None:
            tls = trio.SSLStream(raw, context, server_side=True, https_compatible=True)
            with trio.fail_after(HANDSHAKE_TIMEOUT_S):
                await tls.do_handshake()
            stream = tls
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_BYTES)
        with trio.fail_after(REQUEST_TIMEOUT_S):
            request = await _read_request(stream, conn)
        if request is None:
            return
        status, headers, body = answer(
            directory, request.method, request.target, dict(request.headers)
        )
        binding.answered[status] += 1
        log.info(
            "policy serve: %s %s -> %d",
            request.method.decode("latin-1"),
            request.target.decode("latin-1")[:200],
            status,
        )
        headers = [
            *headers,
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        wire = conn.send(h11.Response(status_code=status, headers=headers)) or b""
        if request.method != b"HEAD":
            wire += conn.send(h11.Data(data=body)) or b""
        wire += conn.send(h11.EndOfMessage()) or b""
        with trio.fail_after(WRITE_TIMEOUT_S):
            await stream.send_all(wire)
    except (
        trio.TooSlowError,
        trio.BrokenResourceError,
        trio.ClosedResourceError,
        h11.ProtocolError,
        OSError,
    ) as exc:
        log.debug("policy serve: connection ended: %r", exc)
    finally:
        await trio.aclose_forcefully(stream)


async def serve_policy(
    directory: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    ssl_context: ssl.SSLContext | None,
    task_status: trio.TaskStatus[PolicyServerBinding] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the bundles in ``directory`` until cancelled.

    Args:
        directory: holds ``<tenant>.jws`` files.
        host, port: where to listen (port 0 picks one).
        ssl_context: the server's TLS context; None serves plain HTTP (development only,
            the caller logs it).
        task_status: receives the :class:`PolicyServerBinding` once listening.

    Raises:
        supervisors.edges._listen.ListenError: the address cannot be bound.
    """
    if ssl_context is not None:
        ssl_context.set_alpn_protocols(["http/1.1"])
    listener = await bind_listener(host, port, backlog=LISTEN_BACKLOG)
    bound_host, bound_port, *_ = listener.socket.getsockname()
    binding = PolicyServerBinding(host=bound_host, port=bound_port, tls=ssl_context is not None)
    limit = trio.CapacityLimiter(MAX_CONNECTIONS)

    async def handler(raw: trio.SocketStream) -> None:
        async with limit:
            await _handle(raw, directory, ssl_context, binding)

    log.info("policy serve: %s from %s", binding.source(), directory)
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handler, [listener])
        task_status.started(binding)
