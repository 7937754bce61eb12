"""Bearer tokens for relay connections: Ed25519-signed JWTs (PyJWT, ``alg: EdDSA``).

A device token says *this is device D of tenant T*; a host token says *this is host H,
which may serve tenants T1..Tn*. Both name the relay they are for in ``aud`` and expire
(``exp``). The signing key stays with whoever mints tokens; relays hold only public keys,
several at a time so that keys can be rotated (a token's ``kid`` header picks the key).
Errors are in ``_errors`` (``Unauthenticated``, ``Forbidden``, ``KeyFileError``).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Final, Literal

import attrs
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ._errors import Forbidden, KeyFileError, Unauthenticated
from ._frames import ID_PATTERN, matches_pattern

ALGORITHM: Final = "EdDSA"
#: The audience development tokens are minted for, unless told otherwise.
DEFAULT_AUDIENCE: Final = "zl-relay"
#: Clocks of the minter and the relay may differ by this much.
CLOCK_LEEWAY_S: Final = 30.0
#: Longer text is not parsed. A device token is a few hundred characters; a host token
#: grows with its tenant list, and minting refuses one that would not fit.
MAX_TOKEN_CHARS: Final = 16384
#: How many tenants one host token may list (keeps tokens within HTTP header limits).
MAX_HOST_TENANTS: Final = 256
DEV_TOKEN_TTL_S: Final = 24 * 3600.0

TokenKind = Literal["device", "host"]


@attrs.frozen(kw_only=True)
class DeviceClaims:
    """What a verified device token proves."""

    KIND: ClassVar[TokenKind] = "device"
    tenant: str
    device_id: str
    audience: str
    issued_at: float
    expires_at: float
    token_id: str


@attrs.frozen(kw_only=True)
class HostClaims:
    """What a verified host token proves: the host and the tenants it may serve."""

    KIND: ClassVar[TokenKind] = "host"
    host_id: str
    tenants: frozenset[str]
    audience: str
    issued_at: float
    expires_at: float
    token_id: str


Claims = DeviceClaims | HostClaims


# --- keys -----------------------------------------------------------------------------


def generate_signing_key() -> Ed25519PrivateKey:
    """A new Ed25519 signing key."""
    return Ed25519PrivateKey.generate()


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short, stable name for a public key (the ``kid`` header of tokens it verifies)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest()[:12]).decode("ascii")


def save_private_key(key: Ed25519PrivateKey, path: str | os.PathLike[str]) -> None:
    """Write ``key`` as unencrypted PKCS#8 PEM, mode 0600, atomically.

    Raises:
        OSError: the file cannot be written.
    """
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _atomic_write(Path(path), pem, 0o600)


def save_public_key(key: Ed25519PublicKey, path: str | os.PathLike[str]) -> None:
    """Write ``key`` as SubjectPublicKeyInfo PEM, mode 0644, atomically.

    Raises:
        OSError: the file cannot be written.
    """
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _atomic_write(Path(path), pem, 0o644)


def load_private_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """Read an Ed25519 private key from PEM.

    Raises:
        KeyFileError: missing, unreadable, encrypted, not PEM or not Ed25519.
    """
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise KeyFileError(f"cannot read private key {os.fspath(path)!r}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{os.fspath(path)!r} is not an Ed25519 private key")
    return key


def load_public_key(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    """Read an Ed25519 public key from PEM.

    Raises:
        KeyFileError: missing, unreadable, not PEM or not Ed25519.
    """
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise KeyFileError(f"cannot read public key {os.fspath(path)!r}: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{os.fspath(path)!r} is not an Ed25519 public key")
    return key


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    # mkstemp makes the file 0600 whatever the umask: a private key is never exposed.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            os.fchmod(handle.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- minting --------------------------------------------------------------------------


def _seconds(ttl: float | dt.timedelta) -> float:
    seconds = ttl.total_seconds() if isinstance(ttl, dt.timedelta) else float(ttl)
    if not seconds > 0:
        raise ValueError(f"ttl must be positive, got {ttl!r}")
    return seconds


def _check_id(what: str, value: str) -> None:
    if not matches_pattern(ID_PATTERN, value):
        raise ValueError(f"{what} {value!r} is not a valid id (pattern {ID_PATTERN})")


def _mint(
    key: Ed25519PrivateKey, claims: dict[str, Any], ttl: float | dt.timedelta, now: float | None
) -> str:
    issued = int(time.time() if now is None else now)
    payload = {
        **claims,
        "iat": issued,
        "nbf": issued,
        "exp": issued + max(1, round(_seconds(ttl))),
        "jti": uuid.uuid4().hex,
    }
    token = jwt.encode(payload, key, algorithm=ALGORITHM, headers={"kid": key_id(key.public_key())})
    if len(token) > MAX_TOKEN_CHARS:
        raise ValueError(f"token of {len(token)} characters exceeds {MAX_TOKEN_CHARS}")
    return token


def mint_device_token(
    key: Ed25519PrivateKey,
    *,
    tenant: str,
    device_id: str,
    audience: str = DEFAULT_AUDIENCE,
    ttl: float | dt.timedelta,
    now: float | None = None,
) -> str:
    """A token for one device of one tenant.

    Args:
        key: the signing key.
        tenant: the tenant the device belongs to.
        device_id: the device.
        audience: the relay deployment the token is for.
        ttl: lifetime, in seconds or as a timedelta.
        now: issue time as a Unix timestamp (for tests); the system clock by default.

    Returns:
        The compact JWT.

    Raises:
        ValueError: an id is not valid or ``ttl`` is not positive.
    """
    _check_id("tenant", tenant)
    _check_id("device_id", device_id)
    claims = {
        "kind": "device",
        "sub": f"device:{tenant}/{device_id}",
        "aud": audience,
        "tenant": tenant,
        "device_id": device_id,
    }
    return _mint(key, claims, ttl, now)


def mint_host_token(
    key: Ed25519PrivateKey,
    *,
    tenants: Sequence[str],
    host_id: str,
    audience: str = DEFAULT_AUDIENCE,
    ttl: float | dt.timedelta,
    now: float | None = None,
) -> str:
    """A token for a host that may serve ``tenants`` (and only those: there is no wildcard).

    Args:
        key: the signing key.
        tenants: the tenants whose devices the host may call; at least one.
        host_id: the host.
        audience: the relay deployment the token is for.
        ttl: lifetime, in seconds or as a timedelta.
        now: issue time as a Unix timestamp (for tests); the system clock by default.

    Returns:
        The compact JWT.

    Raises:
        ValueError: an id is not valid, no tenant or too many, or ``ttl`` is not positive.
    """
    _check_id("host_id", host_id)
    if not 0 < len(tenants) <= MAX_HOST_TENANTS:
        raise ValueError(f"a host token lists 1 to {MAX_HOST_TENANTS} tenants, got {len(tenants)}")
    for tenant in tenants:
        _check_id("tenant", tenant)
    claims = {
        "kind": "host",
        "sub": f"host:{host_id}",
        "aud": audience,
        "host_id": host_id,
        "tenants": sorted(set(tenants)),
    }
    return _mint(key, claims, ttl, now)


# --- verifying ------------------------------------------------------------------------


def verify_token(
    token: str | None,
    public_keys: Sequence[Ed25519PublicKey],
    audience: str,
    now: float | None = None,
    *,
    kind: TokenKind | None = None,
) -> Claims:
    """Check a bearer token and say what it proves.

    Args:
        token: the token text (``None`` or empty when the peer sent none).
        public_keys: the keys tokens may be signed with; the ``kid`` header picks one.
        audience: this relay's audience; a token for another is refused.
        now: the current Unix time (for tests); the system clock by default.
        kind: the kind of token this endpoint accepts; None accepts both.

    Returns:
        ``DeviceClaims`` or ``HostClaims``.

    Raises:
        Unauthenticated: missing, oversized, malformed, not EdDSA, signed by an unknown
            key or badly signed, wrong audience, expired, not yet valid, claims of the
            wrong shape, or the wrong kind for this endpoint.
    """
    if not token:
        raise Unauthenticated("no bearer token")
    if len(token) > MAX_TOKEN_CHARS:
        raise Unauthenticated(f"token longer than {MAX_TOKEN_CHARS} characters")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise Unauthenticated("token is malformed") from None
    if header.get("alg") != ALGORITHM:
        raise Unauthenticated(f"token algorithm must be {ALGORITHM}")
    by_id = {key_id(key): key for key in public_keys}
    kid = header.get("kid")
    if kid is not None and kid not in by_id:
        raise Unauthenticated("token is signed by an unknown key")
    candidates = [by_id[kid]] if isinstance(kid, str) else list(by_id.values())
    payload = _decode(token, candidates, audience)
    claims = _claims(payload)
    current = time.time() if now is None else now
    if claims.expires_at <= current - CLOCK_LEEWAY_S:
        raise Unauthenticated("token has expired")
    not_before = payload.get("nbf", claims.issued_at)
    if not isinstance(not_before, int | float) or not_before > current + CLOCK_LEEWAY_S:
        raise Unauthenticated("token is not valid yet")
    if kind is not None and kind != claims.KIND:
        raise Unauthenticated(
            f"a {claims.KIND} token cannot be used here; a {kind} token is needed"
        )
    return claims


def _decode(token: str, candidates: list[Ed25519PublicKey], audience: str) -> dict[str, Any]:
    # Time is checked by the caller against its own ``now``; PyJWT checks the rest.
    options: jwt.types.Options = {
        "verify_exp": False,
        "verify_nbf": False,
        "verify_iat": False,
        "require": ["exp", "iat", "aud", "sub", "jti"],
    }
    bad_signature = False
    for key in candidates:
        try:
            payload: dict[str, Any] = jwt.decode(
                token, key, algorithms=[ALGORITHM], audience=audience, options=options
            )
            return payload
        except jwt.InvalidSignatureError:
            bad_signature = True
        except jwt.InvalidAudienceError:
            raise Unauthenticated("token is for another audience") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"token lacks the {exc.claim!r} claim") from None
        except jwt.InvalidTokenError:
            raise Unauthenticated("token is malformed") from None
    if bad_signature:
        raise Unauthenticated("token signature does not verify")
    raise Unauthenticated("no key to verify the token with")


def _claim_id(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not matches_pattern(ID_PATTERN, value):
        raise Unauthenticated(f"token claim {name!r} is missing or not a valid id")
    return value


def _claim_number(payload: dict[str, Any], name: str) -> float:
    value = payload.get(name)
    # bool is an int to Python but not a time to anyone.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unauthenticated(f"token claim {name!r} is not a number")
    return float(value)


def _claims(payload: dict[str, Any]) -> Claims:
    audience = payload.get("aud")
    token_id = payload.get("jti")
    if not isinstance(audience, str) or not isinstance(token_id, str):
        raise Unauthenticated("token claims 'aud' and 'jti' must be strings")
    issued_at = _claim_number(payload, "iat")
    expires_at = _claim_number(payload, "exp")
    kind = payload.get("kind")
    if kind == "device":
        return DeviceClaims(
            tenant=_claim_id(payload, "tenant"),
            device_id=_claim_id(payload, "device_id"),
            audience=audience,
            issued_at=issued_at,
            expires_at=expires_at,
            token_id=token_id,
        )
    if kind == "host":
        tenants = payload.get("tenants")
        if not isinstance(tenants, list) or not 0 < len(tenants) <= MAX_HOST_TENANTS:
            raise Unauthenticated(f"token claim 'tenants' must list 1 to {MAX_HOST_TENANTS}")
        return HostClaims(
            host_id=_claim_id(payload, "host_id"),
            tenants=frozenset(_claim_id({"tenant": t}, "tenant") for t in tenants),
            audience=audience,
            issued_at=issued_at,
            expires_at=expires_at,
            token_id=token_id,
        )
    raise Unauthenticated(f"unknown token kind {str(kind)[:20]!r}")


def authorize(claims: Claims, tenant: str, device_id: str | None = None) -> None:
    """Check that a verified peer may act for ``tenant`` (and ``device_id``).

    A host may serve only the tenants its token lists; a device only its own tenant and
    its own device id.

    Raises:
        Forbidden: the token does not cover this tenant or device.
    """
    if isinstance(claims, HostClaims):
        if tenant not in claims.tenants:
            raise Forbidden(f"host {claims.host_id!r} may not serve tenant {tenant!r}")
        return
    if tenant != claims.tenant:
        raise Forbidden(f"device token is for tenant {claims.tenant!r}, not {tenant!r}")
    if device_id is not None and device_id != claims.device_id:
        raise Forbidden(f"device token is for device {claims.device_id!r}, not {device_id!r}")


# --- command line ---------------------------------------------------------------------


def token_main(argv: Sequence[str] | None = None) -> int:
    """``zl token``: make a signing key pair, or mint a development token.

    ``zl token keygen --private K --public P`` (or ``--out K``: ``K`` and ``K.pub``);
    ``zl token device --key K --tenant T --device-id D``; ``zl token host --key K --tenant T
    [--tenant T2] --host-id H``; ``zl token caller --key K --tenant T --user U --device D
    [--device D2]`` (a caller token for the host, ``actors.policy``). A token is printed,
    or written with ``--out FILE`` (mode 0600).

    Args:
        argv: the arguments after the command name (``sys.argv[1:]`` when None).

    Returns:
        The exit status: 0, or 1 when the key file cannot be used. Bad arguments exit
        with status 2 through argparse.
    """
    parser = argparse.ArgumentParser(prog="zl token", description="Development relay tokens.")
    commands = parser.add_subparsers(dest="command", required=True)
    keygen = commands.add_parser("keygen", help="make an Ed25519 signing key pair")
    keygen.add_argument("--private", help="where to write the private key (0600)")
    keygen.add_argument("--public", help="where to write the public key")
    keygen.add_argument(
        "--out", help="write the private key here (0600), the public key to OUT.pub"
    )
    for name in ("device", "host", "caller"):
        sub = commands.add_parser(name, help=f"mint a {name} token")
        sub.add_argument("--key", required=True, help="the private signing key (PEM)")
        sub.add_argument(
            "--audience",
            default="zl-host" if name == "caller" else DEFAULT_AUDIENCE,
            help="default %(default)s",
        )
        sub.add_argument(
            "--ttl",
            type=float,
            default=3600.0 if name == "caller" else DEV_TOKEN_TTL_S,
            help="seconds (default %(default)s)",
        )
        sub.add_argument("--out", help="write the token to this file (0600) instead of printing it")
        if name == "device":
            sub.add_argument("--tenant", required=True)
            sub.add_argument("--device-id", required=True)
        elif name == "host":
            sub.add_argument(
                "--tenant",
                action="append",
                required=True,
                dest="tenants",
                help="a tenant the host may serve (repeatable)",
            )
            sub.add_argument("--host-id", required=True)
        else:
            sub.add_argument("--tenant", required=True)
            sub.add_argument("--user", required=True)
            sub.add_argument(
                "--device",
                action="append",
                default=[],
                dest="devices",
                help="a device the user may use (repeatable; '*' alone: any device)",
            )
            sub.add_argument(
                "--issuer", default="zl-dev", help="the iss claim (default %(default)s)"
            )
    args = parser.parse_args(argv)

    if args.command == "keygen":
        if args.out and (args.private or args.public):
            parser.error("give --out, or --private and --public")
        private = args.out or args.private
        public = f"{args.out}.pub" if args.out else args.public
        if not (private and public):
            parser.error("give --out, or --private and --public")
        key = generate_signing_key()
        try:
            Path(private).parent.mkdir(parents=True, exist_ok=True)
            save_private_key(key, private)
            save_public_key(key.public_key(), public)
        except OSError as exc:
            print(f"zl token: cannot write the key: {exc}", file=sys.stderr)
            return 1
        print(f"private key {private} (kid {key_id(key.public_key())})")
        print(f"public key  {public}")
        return 0
    try:
        signing_key = load_private_key(args.key)
    except KeyFileError as exc:
        print(f"zl token: {exc}", file=sys.stderr)
        return 1
    try:
        if args.command == "device":
            token = mint_device_token(
                signing_key,
                tenant=args.tenant,
                device_id=args.device_id,
                audience=args.audience,
                ttl=args.ttl,
            )
        elif args.command == "host":
            token = mint_host_token(
                signing_key,
                tenants=args.tenants,
                host_id=args.host_id,
                audience=args.audience,
                ttl=args.ttl,
            )
        else:
            # Here, not at the top: the bridge imports this module and needs no caller tokens.
            from actors.policy import mint_caller_token

            token = mint_caller_token(
                signing_key,
                tenant=args.tenant,
                user=args.user,
                devices=args.devices,
                ttl_s=args.ttl,
                issuer=args.issuer,
                audience=args.audience,
            )
    except ValueError as exc:
        parser.error(str(exc))
    if args.out:
        try:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(Path(args.out), token.encode("ascii") + b"\n", 0o600)
        except OSError as exc:
            print(f"zl token: cannot write {args.out}: {exc.strerror}", file=sys.stderr)
            return 1
        print(f"{args.command} token written to {args.out} (expires in {args.ttl:g} s)")
        return 0
    print(token)
    return 0
