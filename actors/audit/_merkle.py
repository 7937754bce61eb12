"""Merkle trees over record hashes (RFC 6962, the one Certificate Transparency uses).

A signed checkpoint carries the root of the tree over the hashes of the records since the
previous checkpoint. ``zl audit prove`` hands a third party one record, its audit path and
the checkpoint: they recompute the root and check the signature, and learn nothing about
the other records. Leaves are the 32-byte digests of the records; ``leaf = H(0x00 || d)``,
``node = H(0x01 || left || right)``; the tree splits at the largest power of two below n.

Pure logic: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def _leaf(digest: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + digest).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n >= 2)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """The tree head of ``leaves`` (RFC 6962 MTH); the hash of nothing when empty."""
    if not leaves:
        return EMPTY_ROOT
    level = [_leaf(leaf) for leaf in leaves]
    return _root_of(level)


def _root_of(nodes: list[bytes]) -> bytes:
    if len(nodes) == 1:
        return nodes[0]
    k = _split(len(nodes))
    return _node(_root_of(nodes[:k]), _root_of(nodes[k:]))


def audit_path(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """The sibling hashes that lead from leaf ``index`` to the root (RFC 6962 PATH).

    Raises:
        IndexError: ``index`` is not a leaf of ``leaves``.
    """
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf {index} is not in a tree of {len(leaves)}")
    return _path(index, [_leaf(leaf) for leaf in leaves])


def _path(index: int, nodes: list[bytes]) -> list[bytes]:
    if len(nodes) == 1:
        return []
    k = _split(len(nodes))
    if index < k:
        return [*_path(index, nodes[:k]), _root_of(nodes[k:])]
    return [*_path(index - k, nodes[k:]), _root_of(nodes[:k])]


def root_from_path(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes | None:
    """The root that ``leaf`` at ``index`` of a tree of ``size`` leads to through ``path``
    (RFC 9162 2.1.3.2); None when the path does not fit the tree's shape."""
    if not 0 <= index < size:
        return None
    fn, sn = index, size - 1
    node = _leaf(leaf)
    for sibling in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            node = _node(sibling, node)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            node = _node(node, sibling)
        fn >>= 1
        sn >>= 1
    return node if sn == 0 else None
