"""The actor's mailbox: a bounded FIFO with many senders and one receiver.

It follows ``trio``'s memory channel semantics (checkpoints, cancellation, FIFO wake-up of
waiting senders) but is specialised for actors: one receiving task, no clones, a buffer
made on first use, and a way to close it for senders while the receiver drains. It is
about a quarter of the memory of a memory channel pair, which matters with many idle
actors (sessions, devices).
"""

from __future__ import annotations

import collections
from typing import Any

import outcome
import trio
from trio.lowlevel import (
    Abort,
    Task,
    cancel_shielded_checkpoint,
    checkpoint_if_cancelled,
    current_task,
    reschedule,
    wait_task_rescheduled,
)

Envelope = tuple[Any, Any]


class Mailbox:
    """Bounded FIFO of envelopes.

    ``put`` waits while ``capacity`` envelopes are queued (senders are woken in arrival
    order); ``put_nowait`` raises ``trio.WouldBlock``. After ``close_for_senders`` puts raise
    ``trio.ClosedResourceError`` and the receiver gets what is queued, then
    ``trio.EndOfChannel``.
    """

    __slots__ = ("_items", "_receiver", "_senders", "capacity", "closed_for_senders")

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError("mailbox capacity must be >= 0")
        self.capacity = capacity
        self.closed_for_senders = False
        self._items: collections.deque[Envelope] | None = None
        self._receiver: Task | None = None
        self._senders: collections.OrderedDict[Task, Envelope] | None = None

    def __len__(self) -> int:
        return len(self._items) if self._items is not None else 0

    @property
    def receiver_waiting(self) -> bool:
        return self._receiver is not None

    # -- senders ----------------------------------------------------------------------------

    def put_nowait(self, envelope: Envelope) -> None:
        if self.closed_for_senders:
            raise trio.ClosedResourceError
        receiver = self._receiver
        if receiver is not None:
            self._receiver = None
            reschedule(receiver, outcome.Value(envelope))
            return
        items = self._items
        if items is None:
            items = self._items = collections.deque()
        if len(items) < self.capacity:
            items.append(envelope)
            return
        raise trio.WouldBlock

    async def put(self, envelope: Envelope) -> None:
        await checkpoint_if_cancelled()
        try:
            self.put_nowait(envelope)
        except trio.WouldBlock:
            pass
        else:
            await cancel_shielded_checkpoint()
            return
        task = current_task()
        senders = self._senders
        if senders is None:
            senders = self._senders = collections.OrderedDict()
        senders[task] = envelope

        def abort(_: object) -> Abort:
            del senders[task]
            return Abort.SUCCEEDED

        await wait_task_rescheduled(abort)

    # -- the receiver -----------------------------------------------------------------------

    def get_nowait(self) -> Envelope:
        items = self._items
        senders = self._senders
        if senders:
            task, envelope = senders.popitem(last=False)
            reschedule(task)
            if items is None:
                items = self._items = collections.deque()
            items.append(envelope)
        if items:
            return items.popleft()
        if self.closed_for_senders:
            raise trio.EndOfChannel
        raise trio.WouldBlock

    async def get(self) -> Envelope:
        await checkpoint_if_cancelled()
        try:
            envelope = self.get_nowait()
        except trio.WouldBlock:
            pass
        else:
            await cancel_shielded_checkpoint()
            return envelope
        self._receiver = current_task()

        def abort(_: object) -> Abort:
            self._receiver = None
            return Abort.SUCCEEDED

        result: Envelope = await wait_task_rescheduled(abort)
        return result

    def wake_receiver(self, envelope: Envelope) -> None:
        """Hand ``envelope`` to a parked receiver, if there is one (bypasses the capacity)."""
        receiver = self._receiver
        if receiver is not None:
            self._receiver = None
            reschedule(receiver, outcome.Value(envelope))

    # -- closing ----------------------------------------------------------------------------

    def close_for_senders(self) -> None:
        """No more puts; waiting senders get ``ClosedResourceError``; the receiver drains."""
        if self.closed_for_senders:
            return
        self.closed_for_senders = True
        senders = self._senders
        if senders:
            for task in senders:
                reschedule(task, outcome.Error(trio.ClosedResourceError()))
            senders.clear()
        if self._receiver is not None and not self._items:
            receiver, self._receiver = self._receiver, None
            reschedule(receiver, outcome.Error(trio.EndOfChannel()))

    def drain(self) -> list[Envelope]:
        """Close for senders and take everything still queued (the receiver is gone)."""
        self.close_for_senders()
        items = list(self._items or ())
        self._items = None
        return items
