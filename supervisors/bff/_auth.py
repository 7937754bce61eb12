"""Caller tokens at the BFF: where its keys come from, and the tokens it has verified.

The token and its checks are the policy domain's (``actors.policy``: the format in
``verify_caller_token``, ``mint_caller_token``), the very code the host runs on every
``StreamChat``; the BFF checks each request's token with it and forwards the same token to
the host, which checks it again. What this module adds is the BFF's side of the keys:

- Keys come from PEM files and/or a JWKS file (OKP keys, ``crv: Ed25519``); the JWKS file is
  read again when its modification time changes, so keys rotate without a restart.
- A verified token is remembered (``VERIFIED_CACHE_SIZE``, least recently used first out),
  so a client's next request costs no signature check; its expiry, and whether its key is
  still trusted, are checked again on every use.

Refusals are ``actors.policy.CallerUnauthenticated`` (code ``unauthenticated``).
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
from typing import Final

import attrs
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from actors.policy import (
    ANY_DEVICE,
    MAX_CALLER_TOKEN_CHARS,
    CallerClaims,
    CallerUnauthenticated,
    JwsError,
    read_header,
    verify_caller_token,
)
from actors.relay import KeyFileError, key_id, load_public_key
from actors.strict_json import StrictJsonError, loads

ALGORITHM: Final = "EdDSA"
#: A JWKS file larger than this is refused.
MAX_JWKS_BYTES: Final = 256 * 1024
#: Verified tokens remembered (least recently used first out).
VERIFIED_CACHE_SIZE: Final = 4096
#: How often a configured JWKS file is looked at for changes (its mtime), at most.
JWKS_CHECK_S: Final = 1.0


@attrs.frozen(kw_only=True)
class Caller:
    """What a verified token proves, and the token itself (forwarded to the host)."""

    claims: CallerClaims
    token: str = attrs.field(repr=False)
    #: The kid of the key that verified the token.
    key_id: str

    @property
    def tenant(self) -> str:
        return self.claims.tenant

    @property
    def user(self) -> str:
        return self.claims.user

    @property
    def devices(self) -> frozenset[str]:
        return self.claims.devices

    @property
    def expires_at(self) -> float:
        return self.claims.expires_at

    @property
    def owner(self) -> tuple[str, str]:
        return (self.tenant, self.user)

    def may_use(self, device_id: str) -> bool:
        """Whether the token covers ``device_id`` (an empty id asks for no device)."""
        return not device_id or self.claims.covers_device(device_id)

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
        self.issuers = tuple(issuers)
        self.max_ttl_s = max_ttl_s
        self.leeway_s = leeway_s
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
            raise CallerUnauthenticated("caller token header has no kid")
        key = self._static.get(kid) or self._jwks.get(kid)
        if key is None and self._jwks_path is not None:
            # A JWKS being rewritten (or broken) must not fail tokens the old keys verify.
            with contextlib.suppress(KeyFileError):
                self._reload_jwks()
            key = self._jwks.get(kid)
        if key is None:
            raise CallerUnauthenticated("caller token is signed by an unknown key")
        return key

    def verify_header(self, authorization: str | None, now: float | None = None) -> Caller:
        """Verify an ``Authorization: Bearer <token>`` header value.

        Raises:
            CallerUnauthenticated: no header, not a bearer token, or a token that fails
                ``verify``.
        """
        if not authorization:
            raise CallerUnauthenticated("no bearer token (Authorization: Bearer <token>)")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise CallerUnauthenticated("the Authorization header must be 'Bearer <token>'")
        return self.verify(token.strip(), now)

    def verify(self, token: str, now: float | None = None) -> Caller:
        """Verify a compact token and return the caller it proves.

        Raises:
            CallerUnauthenticated: an unknown key, or any check of
                ``actors.policy.verify_caller_token``.
        """
        if len(token) > MAX_CALLER_TOKEN_CHARS:
            raise CallerUnauthenticated(
                f"caller token longer than {MAX_CALLER_TOKEN_CHARS} characters"
            )
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
        # The kid picks the key here (a JWKS may have to be re-read for it); every check
        # of the token itself, the header's included, is the shared verifier's.
        try:
            kid = read_header(token, max_chars=MAX_CALLER_TOKEN_CHARS).get("kid")
        except JwsError as exc:
            raise CallerUnauthenticated(f"caller token refused: {exc.message}") from None
        key = self._key(kid)
        claims = verify_caller_token(
            token,
            {str(kid): key},
            audience=self.audience,
            max_ttl_s=self.max_ttl_s,
            clock_skew_s=self.leeway_s,
            issuers=self.issuers,
            now=now,
        )
        return Caller(claims=claims, token=token, key_id=str(kid))


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
