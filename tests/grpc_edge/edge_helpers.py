"""Helpers for the gRPC edge tests: an echo StreamChat service, a server, clients, certs."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import grpc
import h2.config
import h2.connection
import h2.events
import h2.settings
import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from contracts.generated import agent_pb2
from supervisors.edges.grpc import (
    GrpcServerConfig,
    GrpcServerHandle,
    ServerStream,
    Service,
    serve_grpc,
    service_from_descriptor,
)

STREAM_CHAT = "/zl.agent.v0.Agent/StreamChat"
#: Generous bound on any single test step, so a regression fails instead of hanging.
STEP_TIMEOUT_S = 20


@attrs.define
class Probe:
    """What the echo handler saw, for assertions: starts, ends, cancellations (time.monotonic)."""

    started: int = 0
    finished: int = 0
    cancelled_at: list[float] = attrs.Factory(list)
    received: list[agent_pb2.ChatRequest] = attrs.Factory(list)
    running: dict[str, ServerStream[Any, Any]] = attrs.Factory(dict)
    go: trio.Event = attrs.Factory(trio.Event)
    entered: trio.Event = attrs.Factory(trio.Event)


def echo_service(probe: Probe, *, hold: bool = False) -> Service:
    """StreamChat that answers start with session_started and echoes each message's text.

    With ``hold`` it does not read at all until ``probe.go`` is set (to let inbound pile up).
    """

    async def stream_chat(stream: ServerStream[agent_pb2.ChatRequest, agent_pb2.ChatEvent]) -> None:
        probe.started += 1
        probe.running[stream.peer + str(probe.started)] = stream
        probe.entered.set()
        seq = 0
        try:
            if hold:
                await probe.go.wait()
            async for request in stream:
                probe.received.append(request)
                seq += 1
                kind = request.WhichOneof("request")
                if kind == "start_session":
                    await stream.send(
                        agent_pb2.ChatEvent(
                            seq=seq,
                            session_id="s-1",
                            session_started=agent_pb2.SessionStarted(session_id="s-1"),
                        )
                    )
                elif kind == "user_message":
                    await stream.send(
                        agent_pb2.ChatEvent(
                            seq=seq,
                            session_id="s-1",
                            assistant_delta=agent_pb2.AssistantDelta(
                                text=request.user_message.text
                            ),
                        )
                    )
            probe.finished += 1
        except trio.Cancelled:
            import time

            probe.cancelled_at.append(time.monotonic())
            raise

    return service_from_descriptor(
        agent_pb2.DESCRIPTOR.services_by_name["Agent"], {"StreamChat": stream_chat}
    )


def plaintext_config(**overrides: Any) -> GrpcServerConfig:
    return GrpcServerConfig(allow_plaintext=True, **overrides)


async def start_server(
    nursery: trio.Nursery,
    services: list[Service],
    *,
    config: GrpcServerConfig | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> GrpcServerHandle:
    handle: GrpcServerHandle = await nursery.start(
        lambda task_status: serve_grpc(
            services,
            config=config or plaintext_config(),
            ssl_context=ssl_context,
            task_status=task_status,
        )
    )
    return handle


def chat_callable(channel: grpc.Channel) -> Callable[..., Any]:
    return channel.stream_stream(
        STREAM_CHAT,
        request_serializer=agent_pb2.ChatRequest.SerializeToString,
        response_deserializer=agent_pb2.ChatEvent.FromString,
    )


def start(text: str = "") -> agent_pb2.ChatRequest:
    return agent_pb2.ChatRequest(start_session=agent_pb2.StartSession(tenant="t", user=text))


def say(text: str) -> agent_pb2.ChatRequest:
    return agent_pb2.ChatRequest(user_message=agent_pb2.UserMessage(text=text))


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def server_sockets(port: int) -> list[str]:
    """This process's TCP sockets on local port ``port``: a server's listener and every
    connection it accepted and has not closed (``socket:[inode]``, from ``/proc``).

    Unlike a count of every descriptor of the test process, it sees only what the server
    holds: not the client library's own sockets, which grpcio closes later on threads of
    its own, nor what other threads of the process open and close meanwhile.
    """
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as rows:
            next(rows)
            for row in rows:
                fields = row.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[9] != "0":
                    inodes.add(f"socket:[{fields[9]}]")
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed since the listing
            continue
        if target in inodes:
            held.append(target)
    return sorted(held)


def count_tasks() -> int:
    def walk(task: trio.lowlevel.Task) -> int:
        return 1 + sum(walk(child) for n in task.child_nurseries for child in n.child_tasks)

    return walk(trio.lowlevel.current_root_task())


@attrs.frozen(kw_only=True)
class Certs:
    """A throwaway CA and a server certificate for 127.0.0.1 / localhost, as PEM files."""

    ca: Path
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


def make_certs(folder: Path) -> Certs:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "zl test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = Certs(ca=folder / "ca.pem", cert=folder / "server.pem", key=folder / "server.key")
    paths.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


class RawH2Client:
    """A bare HTTP/2 gRPC client on a Trio socket, for what grpcio cannot do on demand
    (drop the TCP connection mid-call, watch the server's trailers and flow-control window)."""

    def __init__(self, sock: trio.SocketStream) -> None:
        self.sock = sock
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.trailers: dict[int, dict[str, str]] = {}
        self.data: dict[int, bytes] = {}
        self.resets: set[int] = set()

    @classmethod
    async def connect(cls, port: int, *, initial_window: int | None = None) -> RawH2Client:
        """Connect; ``initial_window`` sets the client's per-stream flow-control window."""
        client = cls(await trio.open_tcp_stream("127.0.0.1", port))
        client.h2.initiate_connection()
        if initial_window is not None:
            client.h2.update_settings(
                {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: initial_window}
            )
        await client.flush()
        return client

    async def __aenter__(self) -> RawH2Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.sock.aclose()

    async def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            await self.sock.send_all(data)

    async def open_call(
        self,
        *,
        timeout: str | None = None,
        path: str = STREAM_CHAT,
        metadata: tuple[tuple[str, str], ...] = (),
    ) -> int:
        stream_id: int = self.h2.get_next_available_stream_id()
        headers = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "127.0.0.1"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]
        if timeout is not None:
            headers.append(("grpc-timeout", timeout))
        headers.extend(metadata)
        self.h2.send_headers(stream_id, headers)
        await self.flush()
        return stream_id

    async def send_message(self, stream_id: int, payload: bytes, *, end: bool = False) -> None:
        self.h2.send_data(stream_id, struct.pack(">BI", 0, len(payload)) + payload, end_stream=end)
        await self.flush()

    async def pump(self) -> bool:
        """Read once and process events; False when the server closed the connection."""
        data = await self.sock.receive_some(65_536)
        if not data:
            return False
        for event in self.h2.receive_data(data):
            if isinstance(event, h2.events.TrailersReceived | h2.events.ResponseReceived):
                headers = dict(event.headers)
                if "grpc-status" in headers:
                    self.trailers[event.stream_id] = headers
            elif isinstance(event, h2.events.DataReceived):
                self.data[event.stream_id] = self.data.get(event.stream_id, b"") + event.data
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                self.resets.add(event.stream_id)
        await self.flush()
        return True

    async def wait_trailers(self, stream_id: int) -> dict[str, str]:
        while stream_id not in self.trailers:
            if not await self.pump():
                raise AssertionError("connection closed before trailers")
        return self.trailers[stream_id]
