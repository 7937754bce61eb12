"""gRPC over HTTP/2 wire details: message framing, ``grpc-timeout``, headers, trailers."""

from __future__ import annotations

import base64
import struct
import urllib.parse
from collections import deque

import attrs

from ._errors import StatusCode

#: Length-prefixed message header: 1 byte compressed flag, 4 bytes big-endian length.
PREFIX = struct.Struct(">BI")

_TIMEOUT_UNITS_S = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
#: The spec allows at most 8 digits in a grpc-timeout value.
_TIMEOUT_MAX_DIGITS = 8


@attrs.frozen(kw_only=True)
class Oversized:
    """Stands in the inbound queue where a too-large message was discarded."""

    size: int


@attrs.frozen(kw_only=True)
class Compressed:
    """Stands where a compressed message was discarded (the edge speaks only identity)."""


Inbound = bytes | Oversized | Compressed


class MessageReader:
    """Cuts a stream's DATA bytes into gRPC messages.

    Complete messages go to ``queue``; a message whose prefix announces more than
    ``max_message_bytes`` is skipped as it arrives (never buffered) and leaves an
    :class:`Oversized` marker in its place, so the handler learns of it in order.
    """

    def __init__(self, max_message_bytes: int) -> None:
        self._max = max_message_bytes
        self._buffer = bytearray()
        self._skip = 0
        self.queue: deque[Inbound] = deque()
        #: bytes held in ``queue`` (for tests and metrics)
        self.queued_bytes = 0

    @property
    def partial_bytes(self) -> int:
        """Bytes of an incomplete message held until the rest arrives."""
        return len(self._buffer)

    def feed(self, data: bytes) -> None:
        if self._skip:
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            data = data[dropped:]
        self._buffer += data
        while len(self._buffer) >= PREFIX.size:
            compressed, length = PREFIX.unpack_from(self._buffer)
            if length > self._max:
                del self._buffer[: PREFIX.size]
                # Drop what is already here; skip the rest as it comes in.
                dropped = min(length, len(self._buffer))
                del self._buffer[:dropped]
                self._skip = length - dropped
                self.queue.append(Oversized(size=length))
                if self._skip:
                    return
                continue
            if len(self._buffer) < PREFIX.size + length:
                return
            body = bytes(self._buffer[PREFIX.size : PREFIX.size + length])
            del self._buffer[: PREFIX.size + length]
            if compressed:
                self.queue.append(Compressed())
            else:
                self.queue.append(body)
                self.queued_bytes += len(body)

    def pop(self) -> Inbound:
        item = self.queue.popleft()
        if isinstance(item, bytes):
            self.queued_bytes -= len(item)
        return item


def frame(message: bytes) -> bytes:
    """One uncompressed length-prefixed gRPC message."""
    return PREFIX.pack(0, len(message)) + message


def parse_timeout(value: str) -> float | None:
    """Seconds in a ``grpc-timeout`` header value, or None if it is malformed."""
    digits, unit = value[:-1], value[-1:]
    if not digits.isdigit() or len(digits) > _TIMEOUT_MAX_DIGITS or unit not in _TIMEOUT_UNITS_S:
        return None
    return int(digits) * _TIMEOUT_UNITS_S[unit]


def decode_metadata(headers: list[tuple[bytes, bytes]]) -> tuple[tuple[str, str | bytes], ...]:
    """Custom metadata from request headers: pseudo-headers and reserved ones left out.

    ``-bin`` values are base64-decoded to bytes; text values are decoded as ASCII with
    replacement, so a hostile header never raises.
    """
    reserved = {
        "te",
        "content-type",
        "user-agent",
        "grpc-timeout",
        "grpc-encoding",
        "grpc-accept-encoding",
        "grpc-message-type",
    }
    out: list[tuple[str, str | bytes]] = []
    for raw_name, raw_value in headers:
        name = raw_name.decode("ascii", "replace").lower()
        if name.startswith(":") or name in reserved:
            continue
        if name.endswith("-bin"):
            padded = raw_value + b"=" * (-len(raw_value) % 4)
            try:
                out.append((name, base64.b64decode(padded)))
            except ValueError:
                continue
        else:
            out.append((name, raw_value.decode("ascii", "replace")))
    return tuple(out)


def response_headers() -> list[tuple[str, str]]:
    return [(":status", "200"), ("content-type", "application/grpc")]


def trailers(status: StatusCode, message: str, *, trailers_only: bool) -> list[tuple[str, str]]:
    """The trailer block ending a call; with ``trailers_only`` it also carries the headers."""
    block = response_headers() if trailers_only else []
    block.append(("grpc-status", str(int(status))))
    if message:
        # Percent-encoded as the spec asks; '/' and ' ' kept readable is not allowed: encode all.
        block.append(("grpc-message", urllib.parse.quote(message, safe="")))
    return block
