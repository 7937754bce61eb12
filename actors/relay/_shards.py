"""Which relay shard serves a tenant: rendezvous (highest random weight) hashing.

Every shard gets a score for the tenant, a stable hash of the pair; the highest score
wins. Host, bridge and relay compute it from the same shard list and agree without
talking. When a shard is added, a tenant moves only if the new shard outscores its old
one (about 1/N of tenants, all to the new shard); when one is removed, only its tenants
move. The hash is BLAKE2b, not Python's ``hash()``, which is salted per process.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final

import attrs

from ._frames import ID_PATTERN, Redirect, matches_pattern

#: 8 bytes of BLAKE2b: 64-bit scores, so ties between shards are practically impossible
#: (and broken by shard id when they happen, to stay deterministic).
SCORE_BYTES: Final = 8


def _valid_shard_id(_: object, __: attrs.Attribute[str], value: str) -> None:
    if not matches_pattern(ID_PATTERN, value):
        raise ValueError(f"shard id {value!r} is not a valid id (pattern {ID_PATTERN})")


@attrs.frozen(kw_only=True)
class Shard:
    """One relay shard: a stable id (what is hashed) and the URL peers dial.

    The id, not the URL, decides placement, so moving a shard to a new address moves
    no tenants.
    """

    shard_id: str = attrs.field(validator=_valid_shard_id)
    url: str


def score(tenant: str, shard_id: str) -> int:
    """The rendezvous score of ``shard_id`` for ``tenant`` (higher wins)."""
    digest = hashlib.blake2b(digest_size=SCORE_BYTES, person=b"zl.relay.shard")
    # Length prefixes keep ("ab", "c") and ("a", "bc") apart.
    for part in (tenant.encode("utf-8"), shard_id.encode("utf-8")):
        digest.update(len(part).to_bytes(4, "big"))
        digest.update(part)
    return int.from_bytes(digest.digest(), "big")


def shard_for(tenant: str, shards: Sequence[Shard]) -> Shard:
    """The shard that serves ``tenant``.

    Args:
        tenant: the tenant id.
        shards: the configured shard list (order does not matter).

    Returns:
        The shard with the highest score for ``tenant``.

    Raises:
        ValueError: the list is empty or names a shard id twice.
    """
    if not shards:
        raise ValueError("no relay shards configured")
    if len({shard.shard_id for shard in shards}) != len(shards):
        raise ValueError("relay shard ids must be unique")
    return max(shards, key=lambda shard: (score(tenant, shard.shard_id), shard.shard_id))


def redirect_for(tenant: str, shards: Sequence[Shard], *, local_shard_id: str) -> Redirect | None:
    """What a relay shard answers a peer that came for ``tenant``.

    Args:
        tenant: the tenant the peer's token names.
        shards: the configured shard list.
        local_shard_id: the id of the shard that is answering.

    Returns:
        None when ``tenant`` belongs here, else the ``Redirect`` frame to send.

    Raises:
        ValueError: as ``shard_for``, or ``local_shard_id`` is not in ``shards``.
    """
    if all(shard.shard_id != local_shard_id for shard in shards):
        raise ValueError(f"shard {local_shard_id!r} is not in the shard list")
    owner = shard_for(tenant, shards)
    if owner.shard_id == local_shard_id:
        return None
    return Redirect(tenant=tenant, shard_id=owner.shard_id, shard_url=owner.url)
