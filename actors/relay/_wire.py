"""What the relay's connection actors need of a WebSocket, and the close codes they use.

Close codes (RFC 6455 leaves 4000-4999 to applications; ours echo HTTP statuses):

======  ==============================================================
1000    normal close
1001    the relay is shutting down (going away)
1009    a frame over ``max_frame_bytes`` (closed by trio-websocket itself)
1013    the relay is at capacity, try again later
4400    ``relay.bad_frame``: malformed, invalid or unexpected frame
4401    ``relay.unauthenticated``: token missing, bad, expired, wrong audience
4403    ``relay.forbidden``: the token does not cover this tenant or device
4408    the peer missed its heartbeats (dead peer)
4409    replaced by a newer connection with the same device id
4421    ``relay.wrong_shard``: a ``redirect`` frame was sent; dial that shard
======  ==============================================================
"""

from __future__ import annotations

import contextlib
from typing import Final, Protocol

import trio

from actors.errors import WireError

from ._errors import BadFrame
from ._frames import ErrorFrame, Frame, encode_frame
from ._limits import check_outbound_size

CLOSE_NORMAL: Final = 1000
CLOSE_GOING_AWAY: Final = 1001
CLOSE_TOO_BIG: Final = 1009
CLOSE_TRY_LATER: Final = 1013
CLOSE_BAD_FRAME: Final = 4400
CLOSE_UNAUTHENTICATED: Final = 4401
CLOSE_FORBIDDEN: Final = 4403
CLOSE_HEARTBEAT: Final = 4408
CLOSE_REPLACED: Final = 4409
CLOSE_WRONG_SHARD: Final = 4421

#: Close code for a connection-level error code.
CLOSE_CODE_FOR: Final[dict[str, int]] = {
    "relay.bad_frame": CLOSE_BAD_FRAME,
    "relay.unauthenticated": CLOSE_UNAUTHENTICATED,
    "relay.forbidden": CLOSE_FORBIDDEN,
    "relay.wrong_shard": CLOSE_WRONG_SHARD,
    "overloaded": CLOSE_TRY_LATER,
}
#: A close reason is at most 123 bytes on the wire; longer text is cut.
MAX_CLOSE_REASON_CHARS: Final = 120
#: How long a close handshake or a last error frame may take before the socket is dropped.
CLOSE_TIMEOUT_S: Final = 2.0


class WsPeer(Protocol):
    """The part of ``trio_websocket.WebSocketConnection`` the actors use."""

    async def send_message(self, message: str | bytes) -> None: ...

    async def get_message(self) -> str | bytes: ...

    async def aclose(self, code: int = 1000, reason: str | None = None) -> None: ...


def encode_for_link(frame: Frame, *, limit: int, link: str, validate: bool = False) -> str:
    """The frame's text, checked against the frame limit of the link it will leave on.

    Raises:
        BadFrame: it cannot be encoded (or, with ``validate``, its schema refuses it), or
            it is larger than ``limit``; ``call_id`` names the frame's call (if it has one)
            so that only that call fails.
    """
    call_id = getattr(frame, "call_id", None)
    try:
        text = encode_frame(frame, validate=validate)
    except BadFrame as exc:
        raise BadFrame(exc.message, call_id=call_id) from None
    # Characters first: a text is at least that many UTF-8 bytes, and most frames are ASCII.
    size = len(text) if text.isascii() else len(text.encode("utf-8"))
    check_outbound_size(size, limit, link=link, frame_type=frame.TYPE, call_id=call_id)
    return text


async def send_message(ws: WsPeer, message: bytes | str, *, timeout_s: float) -> None:
    """Send one encoded message within ``timeout_s``.

    Raises:
        trio.TooSlowError: the peer did not take it in time (a stuck peer).
        trio_websocket.ConnectionClosed: the connection is gone.
    """
    with trio.fail_after(timeout_s):
        await ws.send_message(message)


async def close_with_error(ws: WsPeer, error: WireError, *, code: int | None = None) -> None:
    """Tell the peer why (an ``error`` frame), then close with the matching code.

    Never raises for a peer that is already gone; bounded by ``CLOSE_TIMEOUT_S`` and
    shielded, so a cancelled caller still closes the socket cleanly.
    """
    close_code = code if code is not None else CLOSE_CODE_FOR.get(error.code, CLOSE_BAD_FRAME)
    await close_quietly(
        ws, close_code, f"{error.code}: {error.message}", ErrorFrame.from_wire(error)
    )


async def close_quietly(
    ws: WsPeer, code: int, reason: str, last_frame: Frame | None = None
) -> None:
    """Send ``last_frame`` if given, then close; errors of a dead peer are ignored.

    Shielded and bounded by ``CLOSE_TIMEOUT_S``: runs to the end even when the caller is
    being cancelled (it is called from ``finally`` blocks and ``on_stop``).
    """
    try:
        pass
    finally:
        with trio.move_on_after(CLOSE_TIMEOUT_S) as scope:
            scope.shield = True
            with contextlib.suppress(Exception):
                if last_frame is not None:
                    await ws.send_message(encode_frame(last_frame, validate=False))
            with contextlib.suppress(Exception):
                await ws.aclose(code, reason[:MAX_CLOSE_REASON_CHARS])
