"""Redaction of what a session sends the model, off the event loop when it is big."""

from __future__ import annotations

from collections.abc import Callable

import trio

from actors.redaction import Redacted

#: Text up to this size is redacted in the actor's own task (a few milliseconds at the
#: throughput bench.redact measures); bigger text in a worker thread, so that the event
#: loop goes on serving other sessions meanwhile.
REDACT_INLINE_BYTES = 64 * 1024


async def redact_off_loop(redact: Callable[[str], Redacted], text: str) -> Redacted:
    """``redact(text)``, in a worker thread when the text is big (see REDACT_INLINE_BYTES).

    On cancellation it waits for the thread, which is bounded by the text's size.
    """
    if len(text) <= REDACT_INLINE_BYTES:
        return redact(text)
    return await trio.to_thread.run_sync(redact, text)
