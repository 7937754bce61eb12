"""Compact JWS (RFC 7515) with Ed25519 only: strict checks first, then PyJWT's JWS API.

Policy bundles and caller tokens are both compact JWS. Before any key is used, the text is
bounded in size, split into exactly three base64url parts, and its header parsed with the
strict JSON reader: only ``alg``, ``kid`` and ``typ`` may appear (``crit``, ``b64``, ``jku``,
``jwk``, ``x5u`` and the like are refused rather than ignored), ``alg`` must be ``EdDSA``
and ``typ`` what the caller expects, so a caller token can never pass for a bundle or the
other way round. The signature is then checked by ``jwt.PyJWS`` with ``algorithms=["EdDSA"]``
and an ``Ed25519PublicKey`` object, so ``alg: none`` and HS256 keyed with the public key
are refused twice over. The payload comes back as bytes: the caller parses it strictly.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from actors.relay import key_id
from actors.strict_json import StrictJsonError, dumps, loads

from ._errors import RejectReason

ALGORITHM: Final = "EdDSA"
#: A JWS header is a few dozen bytes; anything near this is not one of ours.
MAX_HEADER_BYTES: Final = 1024
ALLOWED_HEADER_KEYS: Final = frozenset({"alg", "kid", "typ"})
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_JWS = jwt.PyJWS(algorithms=[ALGORITHM])


class JwsError(Exception):
    """The JWS failed a check: ``reason`` says which, the message says what."""

    def __init__(self, reason: RejectReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def b64url_decode(part: str) -> bytes:
    """Base64url without padding, refusing any other alphabet.

    Raises:
        ValueError: not base64url.
    """
    if not _B64URL.match(part) or len(part) % 4 == 1:
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None


def read_header(token: str, *, max_chars: int) -> dict[str, Any]:
    """The checked header of a compact JWS (no key involved).

    Raises:
        JwsError: too long, not three parts, no signature, not base64url, not strict
            JSON, an unknown header field, or an algorithm other than EdDSA.
    """
    if not isinstance(token, str):
        raise JwsError(RejectReason.MALFORMED, "not a text")
    if len(token) > max_chars:
        raise JwsError(RejectReason.TOO_LARGE, f"{len(token)} characters exceed {max_chars}")
    parts = token.split(".")
    if len(parts) != 3:
        raise JwsError(RejectReason.MALFORMED, "not a compact JWS (three dot-separated parts)")
    head, _, signature = parts
    try:
        header = loads(b64url_decode(head), max_bytes=MAX_HEADER_BYTES, max_depth=2)
    except (ValueError, StrictJsonError) as exc:
        raise JwsError(RejectReason.MALFORMED, f"the header is unreadable: {exc}") from None
    if not isinstance(header, dict):
        raise JwsError(RejectReason.MALFORMED, "the header is not a JSON object")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg.lower() == "none":
        raise JwsError(RejectReason.UNSIGNED, "unsigned (alg none or no alg)")
    if alg != ALGORITHM:
        raise JwsError(RejectReason.ALGORITHM, f"algorithm {alg[:16]!r} is refused; only EdDSA")
    if not signature:
        raise JwsError(RejectReason.UNSIGNED, "unsigned (empty signature)")
    unknown = sorted(set(header) - ALLOWED_HEADER_KEYS)
    if unknown:
        shown = ", ".join(repr(name[:20]) for name in unknown[:4])
        raise JwsError(RejectReason.HEADER, f"header field(s) {shown} are not accepted")
    return header


def verify_compact(
    token: str,
    keys: Mapping[str, Ed25519PublicKey],
    *,
    typ: str,
    max_chars: int,
) -> tuple[dict[str, Any], bytes]:
    """Check a compact JWS against ``keys`` (by ``kid``); its header and raw payload.

    Args:
        token: the compact serialization.
        keys: trusted public keys by key id (``actors.relay.key_id``).
        typ: the ``typ`` header this kind of token carries.
        max_chars: longest accepted token.

    Raises:
        JwsError: with the reason of the first check that failed.
    """
    header = read_header(token, max_chars=max_chars)
    if header.get("typ") != typ:
        shown = str(header.get("typ"))[:32]
        raise JwsError(RejectReason.HEADER, f"typ {shown!r} is not {typ!r}")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise JwsError(RejectReason.HEADER, "the header has no kid")
    key = keys.get(kid)
    if key is None:
        raise JwsError(
            RejectReason.UNKNOWN_KID, f"signed by key {kid[:32]!r}, which is not trusted"
        )
    try:
        decoded = _JWS.decode_complete(token, key=key, algorithms=[ALGORITHM])
    except jwt.InvalidSignatureError:
        raise JwsError(RejectReason.BAD_SIGNATURE, "the signature does not verify") from None
    except jwt.InvalidTokenError as exc:
        raise JwsError(RejectReason.MALFORMED, f"not a valid JWS: {exc}") from None
    payload: bytes = decoded["payload"]
    return header, payload


def sign_compact(claims: Mapping[str, Any], key: Ed25519PrivateKey, *, typ: str) -> str:
    """Sign ``claims`` (compact JSON) with ``key``; the header names the key's id.

    Raises:
        StrictJsonError: the claims hold something JSON cannot carry.
    """
    payload = dumps(claims).encode("utf-8")
    headers = {"kid": key_id(key.public_key()), "typ": typ}
    return _JWS.encode(payload, key, algorithm=ALGORITHM, headers=headers)


def keys_by_id(
    keys: list[Ed25519PublicKey] | tuple[Ed25519PublicKey, ...],
) -> dict[str, Ed25519PublicKey]:
    """Trusted keys indexed by their key id."""
    return {key_id(key): key for key in keys}
