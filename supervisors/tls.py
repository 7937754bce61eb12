"""TLS for every network hop: development certificates and the SSL contexts built from them.

::

    TlsError                     (Exception)
     └── TlsConfigError          a certificate, key or CA file is missing, unreadable,
                                 not PEM, or does not belong with its partner file

``generate_dev_certs`` makes a local CA, a server certificate and a client certificate
(ECDSA P-256: the one key type that Python's ``ssl``, grpcio's BoringSSL and every common
TLS stack accept for both server and client authentication). ``server_ssl_context`` and
``client_ssl_context`` build the contexts every edge uses: TLS 1.2 at least (1.3 when both
sides have it), AEAD ciphers with forward secrecy only, hostname checking on clients and
client certificates required when a client CA is given. ``warn_plaintext`` is the one log
line that a process running a hop without TLS must emit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import logging
import os
import ssl
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "ALPN_H2",
    "ALPN_HTTP1",
    "DEV_CERT_DAYS",
    "DevCerts",
    "TlsConfigError",
    "TlsError",
    "client_ssl_context",
    "dev_certs_main",
    "generate_dev_certs",
    "server_ssl_context",
    "warn_plaintext",
]

LOGGER = logging.getLogger("zl.tls")

#: ALPN for gRPC: grpcio clients refuse a server that does not select ``h2``.
ALPN_H2: tuple[str, ...] = ("h2",)
#: ALPN for WebSocket over TLS (the relay's hops): the upgrade is an HTTP/1.1 request.
ALPN_HTTP1: tuple[str, ...] = ("http/1.1",)

#: Lifetime of generated development certificates. Short enough that a leaked dev key
#: expires on its own, long enough not to interrupt a working month.
DEV_CERT_DAYS = 90
#: A certificate this close to expiry is treated as expired and regenerated, so a demo
#: started today does not fail tomorrow morning.
RENEW_BEFORE = dt.timedelta(days=7)
#: Back-date ``not_valid_before`` so that a peer whose clock is slightly behind accepts it.
CLOCK_SKEW = dt.timedelta(minutes=5)

#: TLS 1.2 suites: ECDHE for forward secrecy, AEAD only. TLS 1.3 suites are all AEAD and
#: are not affected by ``set_ciphers``.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS"

CA_CERT = "ca.pem"
CA_KEY = "ca.key"
SERVER_CERT = "server.pem"
SERVER_KEY = "server.key"
CLIENT_CERT = "client.pem"
CLIENT_KEY = "client.key"
CLIENT_COMMON_NAME = "zl-dev-client"
CA_COMMON_NAME = "Zero Latency development CA"

PRIVATE_KEY_MODE = 0o600
PUBLIC_FILE_MODE = 0o644


class TlsError(Exception):
    """Base of this module's errors."""


class TlsConfigError(TlsError):
    """A certificate, key or CA file cannot be used; the message names the file."""


@attrs.frozen(kw_only=True)
class DevCerts:
    """The files ``generate_dev_certs`` keeps in its directory.

    ``generated`` names the files written by this call (empty when everything was kept).
    """

    directory: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    generated: tuple[str, ...]


# --- generation ------------------------------------------------------------------------


def generate_dev_certs(
    directory: str | os.PathLike[str],
    *,
    hostnames: Sequence[str] = ("localhost",),
    ips: Sequence[str] = ("127.0.0.1", "::1"),
    days: int = DEV_CERT_DAYS,
    now: dt.datetime | None = None,
) -> DevCerts:
    """Make (or keep) a local CA with a server and a client certificate signed by it.

    Idempotent: a file set that is still valid for at least ``RENEW_BEFORE``, whose keys
    match their certificates, whose leaves are signed by the CA on disk and whose server
    names equal ``hostnames`` + ``ips`` is kept as is. Anything else is regenerated; a new
    CA always brings new leaves. Private keys are written with mode 0600, atomically.

    Args:
        directory: where the PEM files live; created (mode 0700) if missing.
        hostnames: DNS names the server certificate is valid for.
        ips: IP addresses the server certificate is valid for.
        days: validity of newly made certificates.
        now: the current time (for tests); defaults to the system clock.

    Returns:
        The paths, and which files this call wrote.

    Raises:
        ValueError: ``days`` is too short to be useful, an IP is not an address, or no
            name at all was given.
        OSError: the directory or a file cannot be written.
    """
    if dt.timedelta(days=days) <= RENEW_BEFORE:
        raise ValueError(f"days must be more than {RENEW_BEFORE.days}, got {days}")
    parsed_ips = tuple(ipaddress.ip_address(ip) for ip in ips)
    if not hostnames and not parsed_ips:
        raise ValueError("the server certificate needs at least one hostname or IP")
    now = now or dt.datetime.now(dt.UTC)
    root = Path(directory)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    paths = {name: root / name for name in (CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY)}
    paths |= {name: root / name for name in (CLIENT_CERT, CLIENT_KEY)}
    generated: list[str] = []

    ca = _load_pair(paths[CA_CERT], paths[CA_KEY])
    if ca is None or not _is_usable_ca(ca[0], now):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _make_ca(ca_key, now, days)
        _write_pair(paths[CA_CERT], ca_cert, paths[CA_KEY], ca_key)
        generated += [CA_CERT, CA_KEY]
    else:
        ca_cert, ca_key = ca

    wanted_sans = {*(x509.DNSName(h) for h in hostnames), *(x509.IPAddress(i) for i in parsed_ips)}
    leaves = (
        (SERVER_CERT, SERVER_KEY, ExtendedKeyUsageOID.SERVER_AUTH, wanted_sans, hostnames),
        (CLIENT_CERT, CLIENT_KEY, ExtendedKeyUsageOID.CLIENT_AUTH, None, (CLIENT_COMMON_NAME,)),
    )
    for cert_name, key_name, usage, sans, names in leaves:
        leaf = _load_pair(paths[cert_name], paths[key_name])
        if (
            CA_CERT in generated
            or leaf is None
            or not _is_usable_leaf(leaf[0], ca_cert, now, usage=usage, sans=sans)
        ):
            key = ec.generate_private_key(ec.SECP256R1())
            cn = names[0] if names else str(parsed_ips[0])
            cert = _make_leaf(
                key, ca_cert, ca_key, now, days, common_name=cn, usage=usage, sans=sans
            )
            _write_pair(paths[cert_name], cert, paths[key_name], key)
            generated += [cert_name, key_name]

    return DevCerts(
        directory=root,
        ca_cert=paths[CA_CERT],
        ca_key=paths[CA_KEY],
        server_cert=paths[SERVER_CERT],
        server_key=paths[SERVER_KEY],
        client_cert=paths[CLIENT_CERT],
        client_key=paths[CLIENT_KEY],
        generated=tuple(generated),
    )


def _load_pair(
    cert_path: Path, key_path: Path
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    """The certificate and its P-256 key, or None if either is missing, unreadable or unmatched."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        return None
    if cert.public_key() != key.public_key():
        return None
    return cert, key


def _is_current(cert: x509.Certificate, now: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= now and now + RENEW_BEFORE < cert.not_valid_after_utc


def _is_usable_ca(cert: x509.Certificate, now: dt.datetime) -> bool:
    try:
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    return basic.ca and _is_current(cert, now)


def _is_usable_leaf(
    cert: x509.Certificate,
    ca_cert: x509.Certificate,
    now: dt.datetime,
    *,
    usage: x509.ObjectIdentifier,
    sans: set[x509.GeneralName] | None,
) -> bool:
    if not _is_current(cert, now) or cert.issuer != ca_cert.subject:
        return False
    ca_public = ca_cert.public_key()
    if not isinstance(ca_public, ec.EllipticCurvePublicKey):
        return False
    try:
        # Proves the leaf was signed by *this* CA, not an earlier one with the same name.
        cert.verify_directly_issued_by(ca_cert)
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        have_sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (InvalidSignature, ValueError, TypeError, x509.ExtensionNotFound):
        return False
    if usage not in eku:
        return False
    return sans is None or set(have_sans) == sans


def _make_ca(key: ec.EllipticCurvePrivateKey, now: dt.datetime, days: int) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME)])
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def _make_leaf(
    key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    now: dt.datetime,
    days: int,
    *,
    common_name: str,
    usage: x509.ObjectIdentifier,
    sans: set[x509.GeneralName] | None,
) -> x509.Certificate:
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    # A client certificate still gets a SAN: some stacks reject leaves without one.
    names = sans if sans is not None else {x509.DNSName(common_name)}
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        # A leaf never outlives the CA that vouches for it.
        .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName(sorted(names, key=str)),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def _write_pair(
    cert_path: Path,
    cert: x509.Certificate,
    key_path: Path,
    key: ec.EllipticCurvePrivateKey,
) -> None:
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Key first: a crash in between leaves a key without a certificate, which the next run
    # sees as a mismatch and regenerates, never a certificate whose key is missing.
    _atomic_write(key_path, key_pem, PRIVATE_KEY_MODE)
    _atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM), PUBLIC_FILE_MODE)


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    """Write via a temporary file in the same directory, then rename over ``path``.

    ``mkstemp`` creates the file with mode 0600 whatever the umask, so a private key is
    never readable by others, not even for the moment before ``chmod``.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- SSL contexts ----------------------------------------------------------------------


def _harden(context: ssl.SSLContext, alpn: Sequence[str]) -> None:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    # RFC 5280 strictness, as Python 3.13's defaults have it: our own certificates must
    # pass it, and a malformed peer certificate is refused rather than tolerated.
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    if alpn:
        context.set_alpn_protocols(list(alpn))


def _load_chain(
    context: ssl.SSLContext, cert: str | os.PathLike[str], key: str | os.PathLike[str]
) -> None:
    try:
        context.load_cert_chain(certfile=os.fspath(cert), keyfile=os.fspath(key))
    except FileNotFoundError as exc:
        # ssl does not say which of the two files is missing.
        raise TlsConfigError(
            f"certificate {os.fspath(cert)!r} or key {os.fspath(key)!r} not found"
        ) from exc
    except (OSError, ssl.SSLError) as exc:
        raise TlsConfigError(
            f"cannot use certificate {os.fspath(cert)!r} with key {os.fspath(key)!r}: {exc}"
        ) from exc


def _load_ca(context: ssl.SSLContext, ca: str | os.PathLike[str]) -> None:
    try:
        context.load_verify_locations(cafile=os.fspath(ca))
    except FileNotFoundError as exc:
        raise TlsConfigError(f"CA file not found: {os.fspath(ca)}") from exc
    except (OSError, ssl.SSLError) as exc:
        raise TlsConfigError(f"cannot use CA file {os.fspath(ca)!r}: {exc}") from exc


def server_ssl_context(
    cert: str | os.PathLike[str],
    key: str | os.PathLike[str],
    *,
    client_ca: str | os.PathLike[str] | None = None,
    alpn: Sequence[str] = ALPN_H2,
) -> ssl.SSLContext:
    """The SSL context a listening edge uses.

    Args:
        cert: PEM certificate chain of this server.
        key: PEM private key of ``cert``.
        client_ca: when given, clients must present a certificate signed by this CA
            (mutual TLS, ``CERT_REQUIRED``); when None, no client certificate is asked for.
        alpn: protocols offered, in order of preference: ``ALPN_H2`` for gRPC,
            ``ALPN_HTTP1`` for WebSocket.

    Returns:
        A context for ``trio.SSLStream(..., server_side=True)`` or ``serve_ssl_over_tcp``.

    Raises:
        TlsConfigError: a file is missing, unreadable, or the key does not match.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _harden(context, alpn)
    _load_chain(context, cert, key)
    if client_ca is not None:
        _load_ca(context, client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_ssl_context(
    ca: str | os.PathLike[str],
    *,
    client_cert: str | os.PathLike[str] | None = None,
    client_key: str | os.PathLike[str] | None = None,
    alpn: Sequence[str] = ALPN_H2,
) -> ssl.SSLContext:
    """The SSL context a dialling edge uses: the server must hold a name that ``ca`` vouches for.

    Only ``ca`` is trusted (not the system store): our hops talk to our own servers.
    Hostname checking is on; pass the name to check as ``server_hostname``.

    Args:
        ca: PEM bundle of the CAs trusted to sign the server's certificate.
        client_cert: this client's certificate, for servers that require mutual TLS.
        client_key: the private key of ``client_cert``; given together with it.
        alpn: protocols offered, in order of preference.

    Returns:
        A context for ``trio.SSLStream`` or ``trio.open_ssl_over_tcp_stream``.

    Raises:
        ValueError: only one of ``client_cert`` and ``client_key`` was given.
        TlsConfigError: a file is missing, unreadable, or the key does not match.
    """
    if (client_cert is None) != (client_key is None):
        raise ValueError("client_cert and client_key go together: give both or neither")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname and CERT_REQUIRED
    _harden(context, alpn)
    _load_ca(context, ca)
    if client_cert is not None and client_key is not None:
        _load_chain(context, client_cert, client_key)
    return context


# --- plaintext -------------------------------------------------------------------------


def warn_plaintext(
    hop: str, *, flag: str = "--insecure-dev", logger: logging.Logger = LOGGER
) -> str:
    """Log the one loud line that says a hop runs without TLS.

    Call it once, when the plaintext listener or connection is set up, so that nobody
    mistakes a development setup for a secure one.

    Args:
        hop: which hop is in clear text, e.g. ``"relay device endpoint ws://0.0.0.0:8443"``.
        flag: the option that allowed it, named so the reader knows what to remove.
        logger: where to log (the module's ``zl.tls`` logger by default).

    Returns:
        The line that was logged.
    """
    clean = " ".join(hop.split())  # one line even if the caller's text had newlines
    line = (
        f"PLAINTEXT (NO TLS): {clean} is not encrypted because {flag} is set; "
        "tokens and tool data are readable on the network. Development only."
    )
    logger.warning("%s", line)
    return line


# --- command line ----------------------------------------------------------------------


def dev_certs_main(argv: Sequence[str] | None = None) -> int:
    """``zl dev-certs``: make or refresh the development CA and certificates.

    Args:
        argv: the arguments after the command name (``sys.argv[1:]`` when None).

    Returns:
        The process exit status (0). Bad arguments exit with status 2 through argparse.
    """
    parser = argparse.ArgumentParser(
        prog="zl dev-certs",
        description="Make a local CA, a server and a client certificate for development TLS.",
    )
    parser.add_argument("--dir", default=".zl/certs", help="output directory (default %(default)s)")
    parser.add_argument(
        "--hostname",
        action="append",
        dest="hostnames",
        help="DNS name for the server certificate (repeatable; default localhost)",
    )
    parser.add_argument(
        "--ip",
        action="append",
        dest="ips",
        help="IP address for the server certificate (repeatable; default 127.0.0.1 and ::1)",
    )
    parser.add_argument(
        "--days", type=int, default=DEV_CERT_DAYS, help="validity (default %(default)s)"
    )
    args = parser.parse_args(argv)
    try:
        certs = generate_dev_certs(
            args.dir,
            hostnames=tuple(args.hostnames or ("localhost",)),
            ips=tuple(args.ips or ("127.0.0.1", "::1")),
            days=args.days,
        )
    except ValueError as exc:
        parser.error(str(exc))
    out = sys.stdout
    for label, path in (
        ("CA certificate", certs.ca_cert),
        ("CA key", certs.ca_key),
        ("server certificate", certs.server_cert),
        ("server key", certs.server_key),
        ("client certificate", certs.client_cert),
        ("client key", certs.client_key),
    ):
        state = "made" if path.name in certs.generated else "kept"
        print(f"{state:4}  {label:18}  {path}", file=out)
    return 0
