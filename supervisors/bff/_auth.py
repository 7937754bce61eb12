"""Caller tokens: verify the bearer JWT of every request, and say who is asking.

A caller token is a compact JWS, header ``{"alg": "EdDSA", "typ": "JWT", "kid": K}`` with
``K = actors.relay.key_id(public_key)``; claims ``iss``, ``aud`` (``zl-host`` by default),
``sub`` (the user), ``tenant``, ``devices`` (device ids, or ``["*"]`` for any device of the
tenant), ``iat``, ``exp`` (``exp - iat`` at most ``max_ttl_s``) and ``jti``. The BFF checks it
here and forwards the same token to the host, which checks it again.

Keys come from PEM files and/or a JWKS file (OKP keys, ``crv: Ed25519``); the JWKS file is
read again when its modification time changes, so keys rotate without a restart.

::

    CallerAuthError           (Exception)
     ├── Unauthenticated      no token, malformed, unknown kid, bad signature, wrong audience
     │                        or issuer, expired, not yet valid, too long-lived, bad claims
     └── Forbidden            a verified caller asks for a device its token does not cover
"""

from __future__ import annotations

import base64
import collections
import contextlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import attrs
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from actors.relay import KeyFileError, key_id, load_public_key
from actors.strict_json import StrictJsonError, loads

ALGORITHM: Final = "EdDSA"
#: Longer header values are refused unparsed.
MAX_TOKEN_CHARS: Final = 8192
#: A JWKS file larger than this is refused.
MAX_JWKS_BYTES: Final = 256 * 1024
#: How many devices one token may list.
MAX_DEVICES: Final = 256
#: Longest id (tenant, user, device) accepted from a token.
MAX_ID_CHARS: Final = 256
ANY_DEVICE: Final = "*"
#: Verified tokens remembered (least recently used first out).
VERIFIED_CACHE_SIZE: Final = 4096
#: How often a configured JWKS file is looked at for changes (its mtime), at most.
JWKS_CHECK_S: Final = 1.0


class CallerAuthError(Exception):
    """Base of the caller-token errors; ``code`` is the error catalog's code."""

    code = "unauthenticated"


class Unauthenticated(CallerAuthError):
    code = "unauthenticated"


class Forbidden(CallerAuthError):
    code = "forbidden"


@attrs.frozen(kw_only=True)
class Caller:
    """What a verified token proves, and the token itself (forwarded to the host)."""

    tenant: str
    user: str
    devices: frozenset[str]
    issuer: str
    expires_at: float
    token_id: str
    token: str = attrs.field(repr=False)
    #: The kid of the key that verified the token.
    key_id: str = ""

    @property
    def owner(self) -> tuple[str, str]:
        return (self.tenant, self.user)

    def may_use(self, device_id: str) -> bool:
        """Whether the token covers ``device_id`` (an empty id asks for no device)."""
        return not device_id or ANY_DEVICE in self.devices or device_id in self.devices

    def default_device(self) -> str:
        """The one device the token names, or "" when it names none, several or any."""
        named = self.devices - {ANY_DEVICE}
        return next(iter(named)) if len(named) == 1 and ANY_DEVICE not in self.devices else ""


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def keys_from_jwks(data: bytes) -> dict[str, Ed25519PublicKey]:
    """The Ed25519 keys of a JWKS document, by ``kid`` (computed when a key has none).

    Keys of other types are skipped; a key whose given ``kid`` is not our ``key_id`` of it
    is refused, so one key cannot be presented under two names.

    Raises:
        KeyFileError: not a JWKS document, or an Ed25519 key that does not decode.
    """
    try:
        document = loads(data, max_bytes=MAX_JWKS_BYTES, max_depth=8)
    except StrictJsonError as exc:
        raise KeyFileError(f"JWKS is not valid JSON: {exc}") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise KeyFileError('JWKS must be an object with a "keys" list')
    keys: dict[str, Ed25519PublicKey] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or entry.get("kty") != "OKP":
            continue
        if entry.get("crv") != "Ed25519" or not isinstance(entry.get("x"), str):
            continue
        try:
            key = Ed25519PublicKey.from_public_bytes(_b64url(entry["x"]))
        except ValueError as exc:
            raise KeyFileError(f"JWKS key {index}: {exc}") from None
        kid = key_id(key)
        given = entry.get("kid")
        if given is not None and given != kid:
            raise KeyFileError(f"JWKS key {index}: kid {given!r} is not this key's id ({kid})")
        keys[kid] = key
    return keys


class CallerVerifier:
    """Checks caller tokens against the configured keys.

    Args:
        public_keys: PEM files of Ed25519 public keys.
        jwks_file: a JWKS file ("" for none), re-read when its modification time changes.
        audience: the ``aud`` a token must carry.
        issuers: accepted ``iss`` values; empty accepts any.
        max_ttl_s: longest ``exp - iat`` accepted.
        leeway_s: clock skew tolerated for ``exp``, ``nbf`` and ``iat``.

    Raises:
        KeyFileError: a key file is missing or not an Ed25519 key, or the JWKS is bad.
    """

    def __init__(
        self,
        *,
        public_keys: Sequence[str | os.PathLike[str]] = (),
        jwks_file: str | os.PathLike[str] | None = None,
        audience: str,
        issuers: Sequence[str] = (),
        max_ttl_s: float,
        leeway_s: float,
    ) -> None:
        self._static = {key_id(key): key for key in map(load_public_key, public_keys)}
        self._jwks_path = Path(jwks_file) if jwks_file else None
        self._jwks: dict[str, Ed25519PublicKey] = {}
        self._jwks_mtime: int | None = None
        self.audience = audience
        self.issuers = frozenset(issuers)
        self.max_ttl_s = max_ttl_s
        self.leeway_s = leeway_s
        # Verified tokens, so that a client's next request costs no signature check: a
        # token's claims cannot change, and expiry is checked again on every use.
        self._verified: collections.OrderedDict[str, Caller] = collections.OrderedDict()
        self._jwks_checked = time.monotonic()
        self._reload_jwks()

    def _reload_jwks(self) -> None:
        path = self._jwks_path
        if path is None:
            return
        try:
            mtime = path.stat().st_mtime_ns
            if mtime == self._jwks_mtime:
                return
            data = path.read_bytes()
        except OSError as exc:
            raise KeyFileError(f"cannot read JWKS {os.fspath(path)!r}: {exc.strerror}") from None
        self._jwks = keys_from_jwks(data)
        self._jwks_mtime = mtime

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._static) | frozenset(self._jwks)

    def _key(self, kid: object) -> Ed25519PublicKey:
        if not isinstance(kid, str):
            raise Unauthenticated("token header has no kid")
        key = self._static.get(kid) or self._jwks.get(kid)
        if key is None and self._jwks_path is not None:
            # A JWKS being rewritten (or broken) must not fail tokens the old keys verify.
            with contextlib.suppress(KeyFileError):
                self._reload_jwks()
            key = self._jwks.get(kid)
        if key is None:
            raise Unauthenticated("token is signed by an unknown key")
        return key

    def verify_header(self, authorization: str | None, now: float | None = None) -> Caller:
        """Verify an ``Authorization: Bearer <token>`` header value.

        Raises:
            Unauthenticated: see the module docstring.
        """
        if not authorization:
            raise Unauthenticated("no bearer token (Authorization: Bearer <token>)")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        return self.verify(token.strip(), now)

    def verify(self, token: str, now: float | None = None) -> Caller:
        """Verify a compact token and return the caller it proves.

        Raises:
            Unauthenticated: see the module docstring.
        """
        if len(token) > MAX_TOKEN_CHARS:
            raise Unauthenticated(f"token longer than {MAX_TOKEN_CHARS} characters")
        current = time.time() if now is None else now
        known = self._verified.get(token)
        if known is not None:
            self._refresh_jwks()
            if known.expires_at > current - self.leeway_s and known.key_id in self.key_ids:
                self._verified.move_to_end(token)
                return known
            del self._verified[token]
        caller = self._verify_signed(token, current)
        self._verified[token] = caller
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return caller

    def _refresh_jwks(self) -> None:
        # At most once a second: a key removed from the JWKS stops verifying tokens that
        # were verified (and remembered) under it.
        now = time.monotonic()
        if self._jwks_path is None or now - self._jwks_checked < JWKS_CHECK_S:
            return
        self._jwks_checked = now
        with contextlib.suppress(KeyFileError):
            self._reload_jwks()

    def _verify_signed(self, token: str, now: float) -> Caller:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise Unauthenticated("token is malformed") from None
        if header.get("alg") != ALGORITHM:
            raise Unauthenticated(f"token algorithm must be {ALGORITHM}")
        kid = header.get("kid")
        key = self._key(kid)
        options: jwt.types.Options = {
            "verify_exp": False,
            "verify_nbf": False,
            "verify_iat": False,
            "require": ["exp", "iat", "aud", "sub", "jti", "iss"],
        }
        try:
            payload: dict[str, Any] = jwt.decode(
                token, key, algorithms=[ALGORITHM], audience=self.audience, options=options
            )
        except jwt.InvalidSignatureError:
            raise Unauthenticated("token signature does not verify") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("token is for another audience") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"token lacks the {exc.claim!r} claim") from None
        except jwt.InvalidTokenError:
            raise Unauthenticated("token is malformed") from None
        return self._caller(payload, token, now, key_id=str(kid))

    def _caller(self, payload: dict[str, Any], token: str, now: float, *, key_id: str) -> Caller:
        issued = _number(payload, "iat")
        expires = _number(payload, "exp")
        if expires <= now - self.leeway_s:
            raise Unauthenticated("token has expired")
        if issued > now + self.leeway_s:
            raise Unauthenticated("token is issued in the future")
        not_before = payload.get("nbf", issued)
        if isinstance(not_before, bool) or not isinstance(not_before, int | float):
            raise Unauthenticated("token claim 'nbf' is not a number")
        if not_before > now + self.leeway_s:
            raise Unauthenticated("token is not valid yet")
        if expires - issued > self.max_ttl_s:
            raise Unauthenticated(f"token lives longer than {self.max_ttl_s:g} s (exp - iat)")
        issuer = _text(payload, "iss")
        if self.issuers and issuer not in self.issuers:
            raise Unauthenticated(f"token issuer {issuer[:40]!r} is not accepted")
        devices = payload.get("devices", [])
        if (
            not isinstance(devices, list)
            or len(devices) > MAX_DEVICES
            or not all(isinstance(d, str) and 0 < len(d) <= MAX_ID_CHARS for d in devices)
        ):
            raise Unauthenticated(f"token claim 'devices' must list at most {MAX_DEVICES} ids")
        return Caller(
            tenant=_text(payload, "tenant"),
            user=_text(payload, "sub"),
            devices=frozenset(devices),
            issuer=issuer,
            expires_at=expires,
            token_id=_text(payload, "jti"),
            token=token,
            key_id=key_id,
        )


def _number(payload: dict[str, Any], name: str) -> float:
    value = payload.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unauthenticated(f"token claim {name!r} is not a number")
    return float(value)


def _text(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_CHARS:
        raise Unauthenticated(f"token claim {name!r} must be a string of 1 to {MAX_ID_CHARS}")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        raise Unauthenticated(f"token claim {name!r} holds control characters")
    return value


def jwks_of(keys: Sequence[Ed25519PublicKey]) -> str:
    """A JWKS document (text) that lists ``keys`` with their ``kid``."""
    from cryptography.hazmat.primitives import serialization

    entries = []
    for key in keys:
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        entries.append(
            {
                "kty": "OKP",
                "crv": "Ed25519",
                "use": "sig",
                "alg": ALGORITHM,
                "kid": key_id(key),
                "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii"),
            }
        )
    return json.dumps({"keys": entries}, indent=2)


def mint_caller_token(
    key: Any,
    *,
    tenant: str,
    user: str,
    devices: Sequence[str],
    ttl_s: float,
    audience: str = "zl-host",
    issuer: str = "zl-dev",
    now: float | None = None,
) -> str:
    """A caller token signed with ``key`` (an Ed25519 private key): for development and demos.

    Raises:
        ValueError: ``ttl_s`` is not positive.
    """
    if not ttl_s > 0:
        raise ValueError(f"ttl_s must be positive, got {ttl_s!r}")
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": user,
        "tenant": tenant,
        "devices": list(devices),
        "iat": issued,
        "nbf": issued,
        "exp": issued + max(1, round(ttl_s)),
        "jti": os.urandom(12).hex(),
    }
    headers = {"kid": key_id(key.public_key()), "typ": "JWT"}
    return jwt.encode(claims, key, algorithm=ALGORITHM, headers=headers)
