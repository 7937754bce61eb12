"""Caller tokens: who is asking the host, proven by a signature (pure, no I/O).

A caller token is a compact JWS/JWT, header ``{"alg": "EdDSA", "typ": "JWT", "kid": K}``
(``K`` is ``actors.relay.key_id`` of the signing key, as for relay tokens), with claims
``iss``, ``aud`` (``zl-host`` by default), ``sub`` (the user), ``tenant``, ``devices``
(device ids, or ``["*"]`` for every device of the tenant), ``iat``, ``exp`` and ``jti``
(and, optionally, ``nbf``).
The BFF (or an identity provider) signs it; the host verifies it on every ``StreamChat``
(gRPC metadata ``authorization: Bearer <token>``) and then holds the session to it: the
tenant, the user and the device the session names must be the token's.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Final

import attrs
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from actors.strict_json import StrictJsonError, loads

from ._errors import CallerForbidden, CallerUnauthenticated
from ._ids import ID_PATTERN, is_id
from ._jws import JwsError, keys_by_id, sign_compact, verify_compact

CALLER_TYP: Final = "JWT"
DEFAULT_AUDIENCE: Final = "zl-host"
DEFAULT_MAX_TTL_S: Final = 3600.0
DEFAULT_CLOCK_SKEW_S: Final = 30.0
#: gRPC metadata values are bounded by the edge's header limits; a token is far smaller.
MAX_CALLER_TOKEN_CHARS: Final = 8192
MAX_DEVICES: Final = 256
#: Longest text claim (``iss``, ``sub``, ``tenant``, ``jti``).
MAX_CLAIM_CHARS: Final = 256
ANY_DEVICE: Final = "*"
AUTHORIZATION: Final = "authorization"
_BEARER: Final = "bearer "


@attrs.frozen(kw_only=True)
class CallerClaims:
    """What a verified caller token proves."""

    issuer: str
    audience: str
    user: str
    tenant: str
    #: Device ids the user may use; ``{"*"}`` is every device of the tenant.
    devices: frozenset[str]
    issued_at: float
    expires_at: float
    token_id: str

    def covers_device(self, device_id: str) -> bool:
        return ANY_DEVICE in self.devices or device_id in self.devices


def _check_devices(devices: Sequence[str]) -> frozenset[str]:
    found = frozenset(devices)
    if len(devices) > MAX_DEVICES:
        raise ValueError(f"a caller token lists at most {MAX_DEVICES} devices")
    if ANY_DEVICE in found:
        if len(found) > 1:
            raise ValueError('devices is ["*"] alone or a list of device ids')
        return found
    for device in found:
        if not isinstance(device, str) or not is_id(device):
            raise ValueError(f"device {str(device)[:40]!r} is not a valid id")
    return found


def mint_caller_token(
    key: Ed25519PrivateKey,
    *,
    tenant: str,
    user: str,
    devices: Sequence[str],
    ttl_s: float,
    issuer: str = "zl-dev",
    audience: str = DEFAULT_AUDIENCE,
    now: float | None = None,
) -> str:
    """A caller token for ``user`` of ``tenant`` who may use ``devices``.

    Raises:
        ValueError: an id is not valid, ``devices`` mixes ``*`` with ids, or ``ttl_s``
            is not positive.
    """
    for what, value in (("tenant", tenant), ("user", user)):
        if not is_id(value):
            raise ValueError(f"{what} {value!r} is not a valid id (pattern {ID_PATTERN})")
    if not ttl_s > 0:
        raise ValueError(f"ttl must be positive, got {ttl_s!r}")
    found = _check_devices(list(devices))
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": user,
        "tenant": tenant,
        "devices": sorted(found),
        "iat": issued,
        "exp": issued + max(1, round(ttl_s)),
        "jti": uuid.uuid4().hex,
    }
    return sign_compact(claims, key, typ=CALLER_TYP)


def _text(claims: Mapping[str, object], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value or len(value) > MAX_CLAIM_CHARS:
        raise CallerUnauthenticated(f"caller token claim {name!r} is missing or not a text")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        # It ends up in logs, receipts and headers: no line breaks or escapes in it.
        raise CallerUnauthenticated(f"caller token claim {name!r} holds control characters")
    return value


def _number(claims: Mapping[str, object], name: str) -> int:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise CallerUnauthenticated(f"caller token claim {name!r} is missing or not a time")
    return value


def verify_caller_token(
    token: str | None,
    keys: Mapping[str, Ed25519PublicKey] | Sequence[Ed25519PublicKey],
    *,
    audience: str = DEFAULT_AUDIENCE,
    max_ttl_s: float = DEFAULT_MAX_TTL_S,
    clock_skew_s: float = DEFAULT_CLOCK_SKEW_S,
    issuers: Sequence[str] = (),
    now: float | None = None,
) -> CallerClaims:
    """Check a caller token and say what it proves.

    Args:
        token: the bearer token (None or empty when the caller sent none).
        keys: the trusted issuers' public keys (by key id, or a sequence).
        audience: this host's audience; a token for another is refused.
        max_ttl_s: the longest ``exp - iat`` accepted.
        clock_skew_s: how far the issuer's clock and ours may differ.
        issuers: accepted ``iss`` values; empty accepts any issuer whose key is trusted.
        now: Unix time (for tests); the system clock by default.

    Raises:
        CallerUnauthenticated: missing, malformed, an algorithm other than EdDSA, an
            unknown key, a bad signature, another audience or issuer, expired, not yet
            valid, a lifetime over ``max_ttl_s``, or claims of the wrong shape.
    """
    if not token:
        raise CallerUnauthenticated("no caller token (authorization: Bearer <token>)")
    by_id = keys if isinstance(keys, Mapping) else keys_by_id(tuple(keys))
    try:
        _, payload = verify_compact(token, by_id, typ=CALLER_TYP, max_chars=MAX_CALLER_TOKEN_CHARS)
        claims = loads(payload, max_bytes=MAX_CALLER_TOKEN_CHARS, max_depth=4)
    except JwsError as exc:
        raise CallerUnauthenticated(f"caller token refused: {exc.message}") from None
    except StrictJsonError as exc:
        raise CallerUnauthenticated(f"caller token payload is not strict JSON: {exc}") from None
    if not isinstance(claims, dict):
        raise CallerUnauthenticated("caller token payload is not a JSON object")
    if claims.get("aud") != audience:
        raise CallerUnauthenticated("caller token is for another audience")
    issuer = _text(claims, "iss")
    if issuers and issuer not in issuers:
        raise CallerUnauthenticated(f"caller token issuer {issuer[:64]!r} is not accepted")
    issued_at, expires_at = _number(claims, "iat"), _number(claims, "exp")
    current = time.time() if now is None else now
    if expires_at - issued_at > max_ttl_s:
        raise CallerUnauthenticated(f"caller token lives longer than {max_ttl_s:g} s")
    if current >= expires_at + clock_skew_s:
        raise CallerUnauthenticated("caller token has expired")
    not_before = claims.get("nbf", issued_at)
    if isinstance(not_before, bool) or not isinstance(not_before, int):
        raise CallerUnauthenticated("caller token claim 'nbf' is not a time")
    if current < max(issued_at, not_before) - clock_skew_s:
        raise CallerUnauthenticated("caller token is not valid yet")
    user, tenant = _text(claims, "sub"), _text(claims, "tenant")
    devices = claims.get("devices")
    if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
        raise CallerUnauthenticated("caller token claim 'devices' is not a list of ids")
    try:
        found = _check_devices(devices)
    except ValueError as exc:
        raise CallerUnauthenticated(f"caller token claim 'devices': {exc}") from None
    if not is_id(tenant):
        raise CallerUnauthenticated("caller token claim 'tenant' is not a valid id")
    return CallerClaims(
        issuer=issuer,
        audience=audience,
        user=user,
        tenant=tenant,
        devices=found,
        issued_at=issued_at,
        expires_at=expires_at,
        token_id=_text(claims, "jti"),
    )


def authorize_session(claims: CallerClaims, *, tenant: str, user: str, device_id: str) -> str:
    """Hold a session's start to its caller's token; the session's user.

    The tenant must be the token's, the user the token's ``sub`` (or empty: then it is
    the token's), and a named device one the token lists (any, with ``*``).

    Raises:
        CallerForbidden: naming what the token does not cover.
    """
    if tenant != claims.tenant:
        raise CallerForbidden(f"the caller's token is for tenant {claims.tenant!r}, not {tenant!r}")
    if user and user != claims.user:
        raise CallerForbidden(f"the caller's token is for user {claims.user!r}, not {user!r}")
    if device_id and not claims.covers_device(device_id):
        raise CallerForbidden(f"the caller's token does not cover device {device_id!r}")
    return claims.user


def bearer_token(metadata: Sequence[tuple[str, str | bytes]]) -> str | None:
    """The token of the ``authorization: Bearer`` metadata entry (None if there is none).

    Raises:
        CallerUnauthenticated: more than one ``authorization`` entry, or one that is not
            a bearer token.
    """
    values = [value for name, value in metadata if name == AUTHORIZATION]
    if not values:
        return None
    if len(values) > 1:
        raise CallerUnauthenticated("more than one authorization entry")
    value = values[0]
    if not isinstance(value, str) or not value.lower().startswith(_BEARER):
        raise CallerUnauthenticated("authorization is not a bearer token")
    return value[len(_BEARER) :].strip()
