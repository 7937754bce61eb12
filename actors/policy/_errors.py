"""The policy domain's errors, each with its wire code from the catalog.

::

    ZlError                         (actors.errors)
     ├── PolicyError                policy.* (actors.errors)
     │    └── BundleRejected        a bundle failed a check; ``reason`` says which
     └── CallerRejected             who is asking could not be proven or is not allowed
          ├── CallerUnauthenticated unauthenticated: no token, bad signature, unknown key,
          │                         expired, wrong audience, malformed
          └── CallerForbidden       forbidden: the token does not cover the tenant, user
                                    or device asked for

``RejectReason`` is what logs and the ``zl.policy.rejections`` metric name; the wire code
is ``policy.bad_signature`` for the signature's own failures, ``policy.expired`` for a bundle
past its ``exp`` and ``policy.invalid`` for everything else.
"""

from __future__ import annotations

import enum

from actors.errors import PolicyError, ZlError


class RejectReason(enum.StrEnum):
    """Why a bundle was refused (a low-cardinality metric attribute)."""

    TOO_LARGE = "too_large"
    MALFORMED = "malformed"
    UNSIGNED = "unsigned"
    ALGORITHM = "algorithm"
    HEADER = "header"
    UNKNOWN_KID = "unknown_kid"
    BAD_SIGNATURE = "bad_signature"
    JSON = "json"
    SCHEMA = "schema"
    WRONG_TENANT = "wrong_tenant"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    TTL_TOO_LONG = "ttl_too_long"
    ROLLBACK = "rollback"
    INVALID = "invalid"
    #: Its ``redaction`` section cannot be used (a tenant pattern RE2 cannot compile).
    REDACTION = "redaction"
    UNAVAILABLE = "unavailable"


_SIGNATURE_REASONS = frozenset(
    {
        RejectReason.UNSIGNED,
        RejectReason.ALGORITHM,
        RejectReason.UNKNOWN_KID,
        RejectReason.BAD_SIGNATURE,
    }
)


def code_for(reason: RejectReason) -> str:
    """The catalog code a rejection travels with."""
    if reason in _SIGNATURE_REASONS:
        return "policy.bad_signature"
    if reason is RejectReason.EXPIRED:
        return "policy.expired"
    return "policy.invalid"


class BundleRejected(PolicyError):
    """A policy bundle failed a check and was not accepted.

    Args:
        reason: which check.
        message: what was wrong, for a person (never the bundle's content).
    """

    def __init__(self, reason: RejectReason, message: str) -> None:
        super().__init__(code_for(reason), message)
        self.reason = reason


class CallerRejected(ZlError):
    """The caller of the host is not proven (``unauthenticated``) or not allowed (``forbidden``)."""


class CallerUnauthenticated(CallerRejected):
    def __init__(self, message: str) -> None:
        super().__init__("unauthenticated", message)


class CallerForbidden(CallerRejected):
    def __init__(self, message: str) -> None:
        super().__init__("forbidden", message)
