"""``zl health``: one health probe of a running process, for container and Kubernetes checks.

::

    zl health ready /run/zl/ready.json     # the process's --ready-file says what to probe
    zl health grpc 127.0.0.1:50051 --ca ca.pem
    zl health http http://127.0.0.1:7082/debug/health

It needs no binary beside the process's own image: the gRPC check is the standard
``grpc.health.v1.Health/Check`` call made over ``h2`` (already a dependency of the host),
the HTTP check a single ``GET`` over ``http.client``. Each prints one line and exits 0
(healthy), 1 (unhealthy or unreachable) or 2 (bad arguments).

TLS: with ``--ca`` the server's certificate must chain to it (and name the target, or
``--server-name``). Without ``--ca`` a loopback target is probed without verifying the
certificate: the probe talks to its own container, and what it asks is whether the server
answers, not who it is. A non-loopback target without ``--ca`` is refused.
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import os
import socket
import ssl
import sys
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: How long one probe may take, connect to answer.
DEFAULT_TIMEOUT_S = 3.0
#: The standard health method (grpc/health/v1/health.proto).
HEALTH_CHECK_PATH = "/grpc.health.v1.Health/Check"
#: Largest answer read: a HealthCheckResponse is a few bytes, a health page a few more.
MAX_ANSWER_BYTES = 65_536
#: The path of the relay's (and any debug endpoint's) liveness answer.
DEBUG_HEALTH_PATH = "/debug/health"
#: The BFF's health answer (its own and the host's gRPC health behind it).
BFF_HEALTH_PATH = "/v1/health"
#: Pause between probes with ``--wait``.
WAIT_INTERVAL_S = 0.2


class ProbeError(Exception):
    """The probe could not get an answer (unreachable, TLS failure, protocol error)."""


class UsageError(Exception):
    """The probe was asked for something it cannot do (bad target, missing file)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def split_target(target: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as a pair.

    Raises:
        UsageError: not of that form.
    """
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65_536:
        raise UsageError(f"target must be HOST:PORT, got {target!r}")
    return host.strip("[]"), int(port)


def tls_context(host: str, ca: Path | None, alpn: str) -> ssl.SSLContext:
    """Verify against ``ca`` when given; else (loopback only) do not verify.

    Raises:
        UsageError: a non-loopback host without a CA, or a CA file that cannot be read.
    """
    if ca is None:
        if not is_loopback(host):
            raise UsageError(f"--ca is required to probe {host} (only loopback skips it)")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        try:
            context = ssl.create_default_context(cafile=str(ca))
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"cannot use CA bundle {ca}: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols([alpn])
    return context


def grpc_health(
    target: str,
    *,
    tls: bool,
    ca: Path | None = None,
    server_name: str | None = None,
    service: str = "",
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> str:
    """Ask ``grpc.health.v1.Health/Check`` for ``service`` and return the status name.

    Raises:
        UsageError: a bad target or TLS setting.
        ProbeError: no answer, or a gRPC error status.
    """
    import h2.config
    import h2.connection
    import h2.events

    from contracts.generated.grpc.health.v1 import health_pb2

    host, port = split_target(target)
    request = health_pb2.HealthCheckRequest(service=service).SerializeToString()
    framed = b"\x00" + len(request).to_bytes(4, "big") + request
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    headers = [
        (":method", "POST"),
        (":scheme", "https" if tls else "http"),
        (":path", HEALTH_CHECK_PATH),
        (":authority", server_name or target),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        ("grpc-timeout", f"{max(1, int(timeout_s * 1000))}m"),
    ]
    body = b""
    status: str | None = None
    message = ""
    context = tls_context(host, ca, "h2") if tls else None
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as raw:
            sock: socket.socket = raw
            if context is not None:
                sock = context.wrap_socket(raw, server_hostname=server_name or host)
            conn.initiate_connection()
            stream_id = conn.get_next_available_stream_id()
            conn.send_headers(stream_id, headers)
            conn.send_data(stream_id, framed, end_stream=True)
            sock.sendall(conn.data_to_send())
            deadline = time.monotonic() + timeout_s
            ended = False
            while not ended:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ProbeError(f"no answer from {target} within {timeout_s:g} s")
                sock.settimeout(remaining)
                data = sock.recv(16_384)
                if not data:
                    raise ProbeError("the server closed the connection before answering")
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.DataReceived):
                        body += event.data
                        conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
                        if len(body) > MAX_ANSWER_BYTES:
                            raise ProbeError("the answer is too large")
                    elif isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
                        for name, value in event.headers:
                            key = name.decode() if isinstance(name, bytes) else name
                            text = value.decode() if isinstance(value, bytes) else value
                            if key == "grpc-status":
                                status = text
                            elif key == "grpc-message":
                                message = urllib.parse.unquote(text)
                    elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                        ended = True
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        raise ProbeError(f"the server ended the connection ({event.error_code})")
                sock.sendall(conn.data_to_send())
    except (OSError, ssl.SSLError) as exc:
        raise ProbeError(f"cannot reach {target}: {exc}") from None
    if status != "0":
        raise ProbeError(f"grpc-status {status}: {message}" if status else "no grpc-status")
    if len(body) < 5:
        raise ProbeError("the answer holds no message")
    response = health_pb2.HealthCheckResponse.FromString(body[5 : 5 + int.from_bytes(body[1:5])])
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


def http_health(
    url: str,
    *,
    ca: Path | None = None,
    token: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> int:
    """``GET url`` and return the HTTP status.

    Raises:
        UsageError: not an http(s) URL, or a bad TLS setting.
        ProbeError: no answer.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"expected an http:// or https:// URL, got {url!r}")
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        context = tls_context(parts.hostname, ca, "http/1.1")
        conn = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=timeout_s, context=context
        )
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        conn.request("GET", parts.path or "/", headers=headers)
        response = conn.getresponse()
        response.read(MAX_ANSWER_BYTES)
        return response.status
    except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
        raise ProbeError(f"cannot reach {url}: {exc}") from None
    finally:
        conn.close()


def read_ready_file(path: Path) -> dict[str, Any]:
    """The addresses a process wrote with ``--ready-file``.

    Raises:
        ProbeError: no file yet (the process is starting, or never got ready) or not JSON.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProbeError(f"{path} does not exist yet (not serving)") from None
    except (OSError, ValueError) as exc:
        raise ProbeError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ProbeError(f"{path} is not a JSON object")
    return data


def probe_ready(
    path: Path,
    *,
    ca: Path | None,
    server_name: str | None = None,
    token: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> tuple[bool, str]:
    """Probe what a ready file describes.

    A host's (``grpc_port``): its gRPC health service. A relay's (``debug_url``): its debug
    endpoint's ``/debug/health``. A BFF's (``url``): its ``/v1/health``.
    """
    ready = read_ready_file(path)
    if "grpc_port" in ready:
        grpc_host = str(ready.get("grpc_host", "127.0.0.1"))
        # A wildcard bind is reached on loopback from inside the container.
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(grpc_host, grpc_host)
        target = f"[{host}]:{ready['grpc_port']}" if ":" in host else f"{host}:{ready['grpc_port']}"
        tls = bool(ready.get("tls"))
        if ca is None and ready.get("ca_cert") and Path(str(ready["ca_cert"])).exists():
            ca = Path(str(ready["ca_cert"]))
        status = grpc_health(target, tls=tls, ca=ca, server_name=server_name, timeout_s=timeout_s)
        return status == "SERVING", f"gRPC {target}: {status}"
    debug_url = ready.get("debug_url")
    if isinstance(debug_url, str) and debug_url:
        url = debug_url.rstrip("/") + DEBUG_HEALTH_PATH
        code = http_health(url, ca=ca, token=token, timeout_s=timeout_s)
        return code == 200, f"{url}: HTTP {code}"
    bff_url = ready.get("url")
    if isinstance(bff_url, str) and bff_url.startswith(("https://", "http://")):
        url = bff_url.rstrip("/") + BFF_HEALTH_PATH
        code = http_health(url, ca=ca, timeout_s=timeout_s)
        return code == 200, f"{url}: HTTP {code}"
    raise UsageError(f"{path} names no gRPC port, debug endpoint or URL to probe")


def _token(args: argparse.Namespace) -> str | None:
    if args.token_file is not None:
        try:
            return str(args.token_file.read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise UsageError(f"cannot read {args.token_file}: {exc.strerror}") from None
    return os.environ.get("ZL_DEBUG__TOKEN") or None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zl health",
        description="Probe a running Zero Latency process once (exit 0 healthy, 1 not).",
    )
    sub = parser.add_subparsers(dest="kind", required=True)
    ready = sub.add_parser("ready", help="probe what a process's --ready-file describes")
    ready.add_argument("ready_file", type=Path)
    grpc = sub.add_parser("grpc", help="grpc.health.v1.Health/Check on HOST:PORT")
    grpc.add_argument("target")
    grpc.add_argument("--plaintext", action="store_true", help="no TLS (development hosts)")
    grpc.add_argument("--service", default="", help="service name (default: the whole server)")
    http_ = sub.add_parser("http", help="GET a health URL (200 is healthy)")
    http_.add_argument("url")
    for each in (ready, grpc, http_):
        each.add_argument("--ca", type=Path, help="CA bundle the server's certificate chains to")
        each.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S)
        each.add_argument(
            "--wait",
            type=float,
            default=0.0,
            metavar="SECONDS",
            help="probe again until healthy, for up to this long (a process starting up)",
        )
    for each in (ready, grpc):
        each.add_argument("--server-name", help="name the certificate must hold (default: host)")
    for each in (ready, http_):
        each.add_argument(
            "--token-file", type=Path, help="bearer token file (default: $ZL_DEBUG__TOKEN)"
        )
    return parser


def health_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``zl health``; returns 0 healthy, 1 unhealthy, 2 bad arguments."""
    args = _parser().parse_args(argv)
    if args.ca is not None and not args.ca.is_file():
        print(f"zl health: CA bundle {args.ca} not found", file=sys.stderr)
        return 2
    deadline = time.monotonic() + max(0.0, args.wait)
    while True:
        status = _probe_once(args, quiet=time.monotonic() < deadline)
        if status != 1 or time.monotonic() >= deadline:
            return status
        time.sleep(WAIT_INTERVAL_S)


def _probe_once(args: argparse.Namespace, *, quiet: bool) -> int:
    """One probe as asked on the command line; ``quiet`` keeps an unhealthy answer unsaid."""
    try:
        if args.kind == "ready":
            healthy, line = probe_ready(
                args.ready_file,
                ca=args.ca,
                server_name=args.server_name,
                token=_token(args),
                timeout_s=args.timeout,
            )
        elif args.kind == "grpc":
            status = grpc_health(
                args.target,
                tls=not args.plaintext,
                ca=args.ca,
                server_name=args.server_name,
                service=args.service,
                timeout_s=args.timeout,
            )
            healthy, line = status == "SERVING", f"gRPC {args.target}: {status}"
        else:
            code = http_health(args.url, ca=args.ca, token=_token(args), timeout_s=args.timeout)
            healthy, line = code == 200, f"{args.url}: HTTP {code}"
    except UsageError as exc:
        print(f"zl health: {exc}", file=sys.stderr)
        return 2
    except ProbeError as exc:
        if not quiet:
            print(f"zl health: unhealthy: {exc}", file=sys.stderr)
        return 1
    if healthy or not quiet:
        print(f"zl health: {'healthy' if healthy else 'unhealthy'}: {line}", flush=True)
    return 0 if healthy else 1
