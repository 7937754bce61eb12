"""Ed25519 signatures on checkpoints: what is signed, how it is checked, where keys come from.

A checkpoint's signature covers the record as it will be written, without its ``hash``
and without the ``signature`` field itself: ``v``, ``seq``, ``kind``, ``at`` (the time),
``prev`` (the chain head), and the payload (record count, Merkle root, ``key_id``),
as RFC 8785 canonical JSON after a fixed domain prefix. Keys are the same Ed25519 PEM
files as the relay's tokens (``zl token keygen``), named by the same key id.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable, Mapping
from typing import Any, TypeAlias

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from actors.relay import key_id, load_private_key, load_public_key

from ._digest import canonical_json

#: Payload fields the signer adds; everything else in a checkpoint is what it signs.
SIGNATURE_FIELDS = frozenset({"key_id", "signature"})
_DOMAIN = b"zl.audit.checkpoint.v1\n"

PublicKeys: TypeAlias = Mapping[str, Ed25519PublicKey]
"""Public keys by key id."""


def _message(body: Mapping[str, Any]) -> bytes:
    payload = {k: v for k, v in body["payload"].items() if k != "signature"}
    unsigned = {key: value for key, value in body.items() if key not in ("hash", "payload")}
    return _DOMAIN + canonical_json({**unsigned, "payload": payload})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CheckpointSigner:
    """Signs checkpoints with one private key."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.key_id = key_id(key.public_key())

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> CheckpointSigner:
        """Load a PEM private key (``zl token keygen``).

        Raises:
            KeyFileError: the file cannot be read or is not an Ed25519 private key.
        """
        return cls(load_private_key(path))

    def signed(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``body``'s payload with ``key_id`` and the signature over the whole body."""
        payload = {**body["payload"], "key_id": self.key_id}
        signature = self._key.sign(_message({**body, "payload": payload}))
        return {**payload, "signature": _b64(signature)}


def load_public_keys(paths: Iterable[str | os.PathLike[str]]) -> dict[str, Ed25519PublicKey]:
    """PEM public keys by key id.

    Raises:
        KeyFileError: a file cannot be read or is not an Ed25519 public key.
    """
    keys = {}
    for path in paths:
        key = load_public_key(path)
        keys[key_id(key)] = key
    return keys


def checkpoint_problem(record: Mapping[str, Any], keys: PublicKeys) -> str | None:
    """What is wrong with a checkpoint's signature for ``keys``, or None if it verifies."""
    payload = record["payload"]
    kid, signature = payload.get("key_id"), payload.get("signature")
    if kid is None or signature is None:
        return f"checkpoint {record['seq']} is not signed"
    if not isinstance(kid, str) or kid not in keys:
        return f"checkpoint {record['seq']} is signed by an unknown key {kid!r}"
    try:
        keys[kid].verify(_unb64(signature), _message(record))
    except (InvalidSignature, binascii.Error, ValueError, TypeError):
        return f"checkpoint {record['seq']}: the signature does not verify (edited or forged)"
    return None
