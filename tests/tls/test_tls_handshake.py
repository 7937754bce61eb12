"""Real TLS handshakes over loopback with trio, using the project's contexts and dev certs."""

from __future__ import annotations

import functools
import ssl
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import trio

from supervisors.tls import (
    ALPN_H2,
    ALPN_HTTP1,
    DevCerts,
    TlsConfigError,
    client_ssl_context,
    server_ssl_context,
)

TEST_DEADLINE_S = 10


class Outcomes:
    """What the server saw, one line per connection, with a way to wait for the next one."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._changed = trio.Event()

    def append(self, line: str) -> None:
        self.lines.append(line)
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, count: int) -> list[str]:
        while len(self.lines) < count:
            await self._changed.wait()
        return self.lines


@asynccontextmanager
async def tls_server(
    context: ssl.SSLContext,
) -> AsyncIterator[tuple[int, Outcomes]]:
    """Serve on 127.0.0.1:0; each connection gets ``ok <alpn> <peer CN>``; outcomes are logged."""
    outcomes = Outcomes()

    async def handler(stream: trio.SSLStream[trio.SocketStream]) -> None:
        try:
            await stream.do_handshake()
            peer = stream.getpeercert()
            subject = dict(item[0] for item in peer["subject"]) if peer else {}
            alpn = stream.selected_alpn_protocol()
            outcomes.append(f"ok {alpn} {subject.get('commonName', '-')}")
            await stream.send_all(outcomes.lines[-1].encode())
            await stream.aclose()
        except trio.BrokenResourceError as exc:
            outcomes.append(f"refused {exc.__cause__!r}")

    async with trio.open_nursery() as nursery:
        serve = functools.partial(trio.serve_ssl_over_tcp, host="127.0.0.1")
        listeners = await nursery.start(serve, handler, 0, context)
        port = listeners[0].transport_listener.socket.getsockname()[1]
        yield port, outcomes
        nursery.cancel_scope.cancel()


async def dial(port: int, context: ssl.SSLContext, server_hostname: str) -> bytes:
    """Connect, handshake and read the server's greeting."""
    tcp = await trio.open_tcp_stream("127.0.0.1", port)
    stream = trio.SSLStream(tcp, context, server_hostname=server_hostname)
    try:
        await stream.do_handshake()
        data = b""
        while chunk := await stream.receive_some():
            data += chunk
        return data
    finally:
        await trio.aclose_forcefully(stream)


def certificate_error(exc: BaseException) -> ssl.SSLError | None:
    """The ``ssl`` error under trio's ``BrokenResourceError``, if that is what failed."""
    cause = exc.__cause__
    return cause if isinstance(cause, ssl.SSLError) else None


class TestHandshake:
    """A client trusting the dev CA reaches a server with the dev server certificate."""

    @pytest.mark.parametrize("name", ["localhost", "127.0.0.1"])
    async def test_handshake_succeeds_and_negotiates_h2(self, certs: DevCerts, name: str) -> None:
        server = server_ssl_context(certs.server_cert, certs.server_key)
        client = client_ssl_context(certs.ca_cert)
        with trio.fail_after(TEST_DEADLINE_S):
            async with tls_server(server) as (port, outcomes):
                greeting = await dial(port, client, name)
        assert greeting == b"ok h2 -"
        assert outcomes.lines == ["ok h2 -"]

    async def test_http1_alpn_for_websocket_hops(self, certs: DevCerts) -> None:
        server = server_ssl_context(certs.server_cert, certs.server_key, alpn=ALPN_HTTP1)
        client = client_ssl_context(certs.ca_cert, alpn=ALPN_HTTP1)
        with trio.fail_after(TEST_DEADLINE_S):
            async with tls_server(server) as (port, _):
                assert await dial(port, client, "localhost") == b"ok http/1.1 -"

    async def test_tls_1_3_is_negotiated_and_1_1_is_refused(self, certs: DevCerts) -> None:
        server = server_ssl_context(certs.server_cert, certs.server_key)
        client = client_ssl_context(certs.ca_cert)
        assert server.minimum_version == ssl.TLSVersion.TLSv1_2
        assert client.check_hostname
        assert client.verify_mode == ssl.CERT_REQUIRED
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.load_verify_locations(cafile=certs.ca_cert)
        with warnings.catch_warnings():
            # Deprecated on purpose: this client plays a peer stuck on an old protocol.
            warnings.simplefilter("ignore", DeprecationWarning)
            old.minimum_version = ssl.TLSVersion.TLSv1_1
            old.maximum_version = ssl.TLSVersion.TLSv1_1
        old.set_ciphers("ALL:@SECLEVEL=0")
        with trio.fail_after(TEST_DEADLINE_S):
            async with tls_server(server) as (port, outcomes):
                tcp = await trio.open_tcp_stream("127.0.0.1", port)
                stream = trio.SSLStream(tcp, client, server_hostname="localhost")
                await stream.do_handshake()
                assert stream.version() == "TLSv1.3"
                await stream.aclose()
                with pytest.raises(trio.BrokenResourceError):
                    await dial(port, old, "localhost")
                lines = await outcomes.wait_for(2)
        # The server (not the old client) is the one that says no.
        assert "UNSUPPORTED_PROTOCOL" in lines[1]


class TestRefusals:
    """The client refuses servers it should not trust; the server refuses clients it should not."""

    async def test_wrong_ca_is_refused(self, certs: DevCerts, other_certs: DevCerts) -> None:
        server = server_ssl_context(certs.server_cert, certs.server_key)
        stranger = client_ssl_context(other_certs.ca_cert)
        with trio.fail_after(TEST_DEADLINE_S):
            async with tls_server(server) as (port, _):
                with pytest.raises(trio.BrokenResourceError) as info:
                    await dial(port, stranger, "localhost")
        error = certificate_error(info.value)
        assert isinstance(error, ssl.SSLCertVerificationError)
        assert "unable to get local issuer certificate" in str(error)

    @pytest.mark.parametrize("name", ["relay.example.com", "10.0.0.1"])
    async def test_hostname_mismatch_is_refused(self, certs: DevCerts, name: str) -> None:
        server = server_ssl_context(certs.server_cert, certs.server_key)
        client = client_ssl_context(certs.ca_cert)
        with trio.fail_after(TEST_DEADLINE_S):
            async with tls_server(server) as (port, _):
                with pytest.raises(trio.BrokenResourceError) as info:
                    await dial(port, client, name)
        error = certificate_error(info.value)
        assert isinstance(error, ssl.SSLCertVerificationError)
        assert "mismatch" in str(error)


class TestMutualTls:
    """With a client CA the server requires a client certificate signed by it."""

    async def test_client_with_certificate_is_accepted(self, certs: DevCerts) -> None:
        server = server_ssl_context(certs.server_cert, certs.server_key, client_ca=certs.ca_cert)
        assert server.verify_mode == ssl.CERT_REQUIRED
        client = client_ssl_context(
            certs.ca_cert, client_cert=certs.client_cert, client_key=certs.client_key
        )
        with trio.fail_after(TEST_DEADLINE_S):
            async with tls_server(server) as (port, outcomes):
                greeting = await dial(port, client, "localhost")
        assert greeting == b"ok h2 zl-dev-client"
        assert outcomes.lines == ["ok h2 zl-dev-client"]

    @pytest.mark.parametrize("client_kind", ["no certificate", "stranger's certificate"])
    async def test_client_without_trusted_certificate_is_refused(
        self, certs: DevCerts, other_certs: DevCerts, client_kind: str
    ) -> None:
        server = server_ssl_context(certs.server_cert, certs.server_key, client_ca=certs.ca_cert)
        make: dict[str, Callable[[], ssl.SSLContext]] = {
            "no certificate": lambda: client_ssl_context(certs.ca_cert),
            "stranger's certificate": lambda: client_ssl_context(
                certs.ca_cert,
                client_cert=other_certs.client_cert,
                client_key=other_certs.client_key,
            ),
        }
        with trio.fail_after(TEST_DEADLINE_S):
            async with tls_server(server) as (port, outcomes):
                # In TLS 1.3 the client's handshake ends before the server checks its
                # certificate, so the refusal reaches the client on its first read.
                with pytest.raises(trio.BrokenResourceError):
                    await dial(port, make[client_kind](), "localhost")
                lines = await outcomes.wait_for(1)
        assert len(lines) == 1
        assert lines[0].startswith("refused")
        assert "CERTIFICATE" in lines[0].upper()


class TestContextErrors:
    """Bad files give a TlsConfigError naming the file, not a bare ssl error."""

    def test_missing_files(self, certs: DevCerts) -> None:
        missing = certs.directory / "nope.pem"
        with pytest.raises(TlsConfigError, match=r"nope\.pem"):
            server_ssl_context(missing, certs.server_key)
        with pytest.raises(TlsConfigError, match=r"nope\.pem"):
            client_ssl_context(missing)

    def test_key_that_does_not_match(self, certs: DevCerts) -> None:
        with pytest.raises(TlsConfigError, match=r"server\.pem"):
            server_ssl_context(certs.server_cert, certs.client_key)

    def test_half_a_client_identity(self, certs: DevCerts) -> None:
        with pytest.raises(ValueError, match="both or neither"):
            client_ssl_context(certs.ca_cert, client_cert=certs.client_cert)

    def test_alpn_constants(self) -> None:
        assert ALPN_H2 == ("h2",)
        assert ALPN_HTTP1 == ("http/1.1",)
