"""RFC 8785 canonical JSON and the ``sha256:<hex>`` digests that receipts and the chain use."""

from __future__ import annotations

import hashlib
from typing import Any

import rfc8785

from ._errors import NotCanonical

DIGEST_PREFIX = "sha256:"
# The ``prev`` of the first record of a file: no record came before it.
GENESIS = DIGEST_PREFIX + "0" * 64


def canonical_json(obj: Any) -> bytes:
    """The RFC 8785 (JCS) canonical JSON bytes of ``obj``.

    Args:
        obj: JSON-shaped data (dict with str keys, list, tuple, str, int, float, bool, None).

    Returns:
        UTF-8 bytes, no insignificant whitespace, keys sorted by UTF-16 code units.

    Raises:
        NotCanonical: NaN or an infinity, an integer outside the IEEE double's exact range,
            or a value of a type JSON does not have.
    """
    try:
        return rfc8785.dumps(obj)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise NotCanonical(f"no canonical JSON for this value: {exc}") from exc


def sha256_digest(data: bytes) -> str:
    """``sha256:<64 hex digits>`` of ``data``."""
    return DIGEST_PREFIX + hashlib.sha256(data).hexdigest()


def canonical_digest(obj: Any) -> str:
    """``sha256:<hex>`` of the RFC 8785 canonical JSON of ``obj``.

    Two values that are equal as JSON have the same digest whatever their key order or
    number spelling, so a receipt's digest can be recomputed from args kept elsewhere.

    Raises:
        NotCanonical: as :func:`canonical_json`.
    """
    return sha256_digest(canonical_json(obj))
