"""The relay's errors: wire errors with catalog codes, and key file problems.

::

    ZlError                      (actors.errors; .code, .retryable from the catalog)
     └── RelayError              relay.*
          ├── BadFrame           relay.bad_frame: oversized, not JSON, unknown type,
          │                      or invalid for its schema
          ├── Unauthenticated    relay.unauthenticated: token missing, malformed, badly signed,
          │                      expired, not yet valid, wrong audience or wrong kind
          └── Forbidden          relay.forbidden: a valid token that does not cover this tenant

    KeyFileError                 (Exception) a signing or verifying key file is missing,
                                 unreadable or not an Ed25519 PEM key; a start-up error,
                                 never sent on the wire

Messages may be sent to the peer, so they name what was wrong but never echo secrets
(no token text, no key material).
"""

from __future__ import annotations

from actors.errors import RelayError


class BadFrame(RelayError):
    """A frame that cannot be accepted; ``call_id`` is set when the frame named one.

    Args:
        message: what was wrong, for a person.
        call_id: the frame's ``call_id`` if it could be read, so the peer can fail that call.
    """

    def __init__(self, message: str, *, call_id: str | None = None) -> None:
        super().__init__("relay.bad_frame", message)
        self.call_id = call_id


class Unauthenticated(RelayError):
    """The bearer token does not prove who the peer is."""

    def __init__(self, message: str) -> None:
        super().__init__("relay.unauthenticated", message)


class Forbidden(RelayError):
    """The peer is who it says, but may not act for this tenant."""

    def __init__(self, message: str) -> None:
        super().__init__("relay.forbidden", message)


class KeyFileError(Exception):
    """A key file cannot be used; the message names the file."""
