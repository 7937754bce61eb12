"""Development certificate generation: contents, idempotence, renewal, permissions, CLI."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import stat
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from supervisors.tls import (
    DEV_CERT_DAYS,
    DevCerts,
    dev_certs_main,
    generate_dev_certs,
    warn_plaintext,
)

ALL_FILES = ("ca.pem", "ca.key", "server.pem", "server.key", "client.pem", "client.key")
GRPC_DEADLINE_S = 10
ECHO_METHOD = "/zl.test.Echo/Echo"


def echo_server() -> grpc.Server:
    """A grpcio server with one bytes-in, bytes-out method (no generated code needed)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.unary_unary_rpc_method_handler(lambda request, _context: request)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("zl.test.Echo", {"Echo": handler}),)
    )
    return server


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def contents(certs: DevCerts) -> dict[str, bytes]:
    return {name: (certs.directory / name).read_bytes() for name in ALL_FILES}


class TestContents:
    """The CA signs a P-256 server certificate for the names asked and a client certificate."""

    def test_server_certificate(self, certs: DevCerts) -> None:
        ca, server = load(certs.ca_cert), load(certs.server_cert)
        server.verify_directly_issued_by(ca)
        assert isinstance(server.public_key(), ec.EllipticCurvePublicKey)
        sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
        assert set(sans.get_values_for_type(x509.IPAddress)) == {
            ipaddress.ip_address("127.0.0.1"),
            ipaddress.ip_address("::1"),
        }
        eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
        lifetime = server.not_valid_after_utc - server.not_valid_before_utc
        assert dt.timedelta(days=DEV_CERT_DAYS) <= lifetime <= dt.timedelta(days=DEV_CERT_DAYS + 1)

    def test_ca_and_client_certificate(self, certs: DevCerts) -> None:
        ca, client = load(certs.ca_cert), load(certs.client_cert)
        assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        client.verify_directly_issued_by(ca)
        eku = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
        basic = client.extensions.get_extension_for_class(x509.BasicConstraints).value
        assert not basic.ca

    def test_first_run_reports_every_file(self, certs: DevCerts) -> None:
        assert sorted(certs.generated) == sorted(ALL_FILES)

    def test_bad_arguments(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6"):
            generate_dev_certs(tmp_path, ips=("not-an-ip",))
        with pytest.raises(ValueError, match="days must be more than"):
            generate_dev_certs(tmp_path, days=1)
        with pytest.raises(ValueError, match="at least one hostname or IP"):
            generate_dev_certs(tmp_path, hostnames=(), ips=())


class TestPermissions:
    """Private keys are readable by their owner only, whatever the umask."""

    def test_key_modes(self, tmp_path: Path) -> None:
        old = os.umask(0)  # the most permissive umask: mode must not come from it
        try:
            certs = generate_dev_certs(tmp_path / "c")
        finally:
            os.umask(old)
        for key in (certs.ca_key, certs.server_key, certs.client_key):
            assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
        for cert in (certs.ca_cert, certs.server_cert, certs.client_cert):
            assert stat.S_IMODE(cert.stat().st_mode) == 0o644, cert
        assert not [p for p in certs.directory.iterdir() if p.name.endswith(".tmp")]


class TestIdempotence:
    """Re-running keeps valid files and regenerates only what is expired or wrong."""

    def test_second_run_keeps_everything(self, certs: DevCerts) -> None:
        before = contents(certs)
        again = generate_dev_certs(certs.directory)
        assert again.generated == ()
        assert contents(again) == before

    def test_near_expiry_regenerates_all(self, certs: DevCerts) -> None:
        before = contents(certs)
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=DEV_CERT_DAYS - 1)
        again = generate_dev_certs(certs.directory, now=later)
        assert sorted(again.generated) == sorted(ALL_FILES)
        assert all(contents(again)[name] != before[name] for name in ALL_FILES)
        assert load(again.server_cert).not_valid_after_utc > later + dt.timedelta(days=30)

    def test_other_names_regenerate_only_the_server_certificate(self, certs: DevCerts) -> None:
        before = contents(certs)
        again = generate_dev_certs(certs.directory, hostnames=("localhost", "relay-0.zl"))
        assert sorted(again.generated) == ["server.key", "server.pem"]
        after = contents(again)
        assert after["ca.pem"] == before["ca.pem"]
        assert after["client.pem"] == before["client.pem"]
        sans = load(again.server_cert).extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )
        assert sorted(sans.value.get_values_for_type(x509.DNSName)) == ["localhost", "relay-0.zl"]

    def test_mismatched_key_regenerates_the_pair(self, certs: DevCerts, tmp_path: Path) -> None:
        stranger = generate_dev_certs(tmp_path / "stranger")
        certs.client_key.write_bytes(stranger.client_key.read_bytes())
        again = generate_dev_certs(certs.directory)
        assert sorted(again.generated) == ["client.key", "client.pem"]
        assert generate_dev_certs(certs.directory).generated == ()

    def test_new_ca_brings_new_leaves(self, certs: DevCerts) -> None:
        certs.ca_key.unlink()
        again = generate_dev_certs(certs.directory)
        assert sorted(again.generated) == sorted(ALL_FILES)
        load(again.server_cert).verify_directly_issued_by(load(again.ca_cert))

    def test_garbage_file_is_replaced(self, certs: DevCerts) -> None:
        certs.server_cert.write_text("not a certificate")
        assert sorted(generate_dev_certs(certs.directory).generated) == [
            "server.key",
            "server.pem",
        ]


class TestGrpcioAccepts:
    """grpcio (BoringSSL) accepts the same files: server TLS and mutual TLS."""

    @pytest.mark.parametrize("mutual", [False, True])
    def test_call_over_tls(self, certs: DevCerts, mutual: bool) -> None:
        server = echo_server()
        credentials = grpc.ssl_server_credentials(
            [(certs.server_key.read_bytes(), certs.server_cert.read_bytes())],
            root_certificates=certs.ca_cert.read_bytes() if mutual else None,
            require_client_auth=mutual,
        )
        port = server.add_secure_port("127.0.0.1:0", credentials)
        server.start()
        try:
            client_credentials = grpc.ssl_channel_credentials(
                root_certificates=certs.ca_cert.read_bytes(),
                private_key=certs.client_key.read_bytes() if mutual else None,
                certificate_chain=certs.client_cert.read_bytes() if mutual else None,
            )
            with grpc.secure_channel(
                f"127.0.0.1:{port}",
                client_credentials,
                options=[("grpc.ssl_target_name_override", "localhost")],
            ) as channel:
                echo = channel.unary_unary(ECHO_METHOD)
                assert echo(b"over tls", timeout=GRPC_DEADLINE_S) == b"over tls"
        finally:
            server.stop(grace=None).wait(GRPC_DEADLINE_S)

    def test_mutual_tls_refuses_a_client_without_certificate(self, certs: DevCerts) -> None:
        server = echo_server()
        credentials = grpc.ssl_server_credentials(
            [(certs.server_key.read_bytes(), certs.server_cert.read_bytes())],
            root_certificates=certs.ca_cert.read_bytes(),
            require_client_auth=True,
        )
        port = server.add_secure_port("127.0.0.1:0", credentials)
        server.start()
        try:
            anonymous = grpc.ssl_channel_credentials(root_certificates=certs.ca_cert.read_bytes())
            with grpc.secure_channel(
                f"127.0.0.1:{port}",
                anonymous,
                options=[("grpc.ssl_target_name_override", "localhost")],
            ) as channel:
                echo = channel.unary_unary(ECHO_METHOD)
                with pytest.raises(grpc.RpcError) as info:
                    echo(b"anonymous", timeout=GRPC_DEADLINE_S)
                assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        finally:
            server.stop(grace=None).wait(GRPC_DEADLINE_S)


class TestCommandLine:
    """``dev_certs_main`` makes the files and says which it made and which it kept."""

    def test_make_then_keep(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        target = tmp_path / "out"
        assert dev_certs_main(["--dir", str(target), "--hostname", "relay.local"]) == 0
        first = capsys.readouterr().out.splitlines()
        assert len(first) == 6
        assert all(line.startswith("made") for line in first)
        assert str(target / "server.pem") in "\n".join(first)
        sans = load(target / "server.pem").extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )
        assert sans.value.get_values_for_type(x509.DNSName) == ["relay.local"]
        assert dev_certs_main(["--dir", str(target), "--hostname", "relay.local"]) == 0
        assert all(line.startswith("kept") for line in capsys.readouterr().out.splitlines())

    def test_bad_ip_is_a_usage_error(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with pytest.raises(SystemExit) as info:
            dev_certs_main(["--dir", str(tmp_path), "--ip", "300.1.1.1"])
        assert info.value.code == 2
        assert "300.1.1.1" in capsys.readouterr().err


class TestPlaintextWarning:
    """Plaintext mode is announced by exactly one WARNING line."""

    def test_one_loud_line(self, caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.WARNING, logger="zl.tls"):
            line = warn_plaintext("relay device endpoint\nws://127.0.0.1:8080")
        assert len(caplog.records) == 1
        record = caplog.records[0]
        assert record.levelno == logging.WARNING
        assert record.getMessage() == line
        assert "\n" not in line
        assert line.startswith("PLAINTEXT (NO TLS): relay device endpoint ws://127.0.0.1:8080")
        assert "--insecure-dev" in line
