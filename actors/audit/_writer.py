"""``AuditWriter``: the one actor of a process that owns its audit file.

Every append is a request (``ask``) answered after the record is written to the OS, and
fsync'd when the policy says so: a caller that got its answer may send the tool call's
final event. Requests are written in arrival order, one at a time, in a worker thread so
that the event loop never waits on the disk; the bounded mailbox makes callers wait when
the disk is slower than they are (back-pressure, never an unbounded queue).

Stopping gracefully writes every queued request, then a checkpoint, then fsyncs and
closes. A crash closes the file too (``on_stop``), and a restart resumes the chain from
the file; after a process crash a torn last line is cut off and recorded.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import trio

from zl_actors import Actor, ActorContext, DeferredReply, MailboxFull

from ._chain import Sealed
from ._digest import canonical_json
from ._errors import AuditFileError, NotCanonical
from ._file import AuditFile, Entry, FsyncPolicy, optional_positive
from ._records import CHECKPOINT_KIND, RECEIPT_KIND, TURN_KIND, utc_now, valid_kind
from ._signing import CheckpointSigner
from .messages import (
    Appended,
    AppendReceipt,
    AppendRecord,
    AppendTurn,
    AuditMessage,
    Checkpoint,
    Sync,
    Tick,
)

# Appends that may wait for the writer before callers are made to wait: sized for a burst
# of concurrent tool calls finishing together, small enough that a stuck disk shows fast.
AUDIT_MAILBOX_CAPACITY = 256
# Default records between checkpoints, and seconds between time-based checkpoints.
DEFAULT_CHECKPOINT_EVERY = 1000
DEFAULT_CHECKPOINT_EVERY_S = 60.0

Redactor = Callable[[str, Mapping[str, Any]], Mapping[str, Any]]
"""Applied to every payload before it is written: ``(kind, payload) -> payload``."""


def no_redaction(kind: str, payload: Mapping[str, Any]) -> Mapping[str, Any]:
    """The default redactor: receipts hold only digests, so there is nothing to remove yet."""
    del kind
    return payload


@attrs.frozen(kw_only=True)
class AuditConfig:
    """How the audit is written.

    Args:
        path: the JSON-lines audit file (created if missing, resumed if present).
        fsync: when records are fsync'd.
        checkpoint_every: write a checkpoint after this many records.
        checkpoint_every_s: also one this often if records came since the last (None: no).
        redact: applied to every payload before it is written.
        on_written: told of every record written (metrics); must not block or raise.
        signer: signs every checkpoint (Ed25519); None leaves them unsigned.
    """

    path: Path = attrs.field(converter=Path)
    fsync: FsyncPolicy = attrs.field(factory=FsyncPolicy)
    checkpoint_every: int = attrs.field(
        default=DEFAULT_CHECKPOINT_EVERY, validator=attrs.validators.ge(1)
    )
    checkpoint_every_s: float | None = attrs.field(
        default=DEFAULT_CHECKPOINT_EVERY_S, validator=optional_positive
    )
    redact: Redactor = no_redaction
    on_written: Callable[[Appended], None] | None = None
    signer: CheckpointSigner | None = None


log = logging.getLogger("zl.audit")


class AuditWriter(Actor[AuditMessage]):
    """Owns the audit file; answers each append once it is written.

    Args:
        config: where and how to write.
    """

    mailbox_capacity = AUDIT_MAILBOX_CAPACITY

    def __init__(self, config: AuditConfig) -> None:
        self._config = config
        self._file: AuditFile | None = None
        # Group commit: appends wait here and one worker-thread call writes them all, so 50
        # callers cost one write (and at most one fsync), not 50 in a row.
        self._pending: list[tuple[Entry, DeferredReply | None]] = []
        self._wake = trio.Event()
        self._idle = trio.Event()
        self._idle.set()
        # File operations run in worker threads one at a time (the file is not thread-safe).
        self._io = trio.Lock()

    async def on_start(self, ctx: ActorContext[AuditMessage]) -> None:
        """Open the file and resume its chain (in a thread); start the timer if one is needed.

        Raises:
            AuditFileError: the file cannot be opened or is held by another writer.
            AuditCorrupt: its last records are not a valid chain (the host must not start).
        """
        config = self._config
        self._file = await trio.to_thread.run_sync(
            lambda: AuditFile.open(
                config.path, fsync=config.fsync, writer=f"pid:{os.getpid()}", signer=config.signer
            )
        )
        ctx.nursery.start_soon(self._flush_batches)
        periods = [p for p in (config.fsync.every_s, config.checkpoint_every_s) if p is not None]
        if periods:
            ctx.nursery.start_soon(_tick_every, min(periods), ctx)

    async def handle(self, message: AuditMessage, ctx: ActorContext[AuditMessage]) -> Any:
        """Write one request. Cancellation waits for a write in progress to finish.

        A record that cannot be written (bad kind, no canonical form after redaction) is
        refused to its asker with ``ValueError``; the writer carries on.

        Raises:
            AuditFileError: the write or fsync failed: the writer fails and its supervisor
                restarts it, which reopens the file.
        """
        match message:
            case AppendReceipt(receipt=receipt):
                return await self._append(RECEIPT_KIND, receipt.to_payload(), ctx)
            case AppendTurn(summary=summary):
                return await self._append(TURN_KIND, summary.to_payload(), ctx)
            case AppendRecord(kind=kind, payload=payload):
                return await self._append(kind, payload, ctx)
            case Checkpoint():
                await self._idle.wait()
                async with self._io:
                    sealed = await trio.to_thread.run_sync(self._open_file().checkpoint)
                return self._written(Appended(seq=sealed.seq, hash=sealed.hash, kind=sealed.kind))
            case Sync():
                await self._idle.wait()
                async with self._io:
                    await trio.to_thread.run_sync(self._open_file().sync)
                return None
            case Tick():
                async with self._io:
                    ticked = await trio.to_thread.run_sync(self._tick)
                if ticked is not None:
                    self._written(Appended(seq=ticked.seq, hash=ticked.hash, kind=ticked.kind))
                return None

    async def on_drained(self, ctx: ActorContext[AuditMessage]) -> None:
        """A graceful stop writes every append already accepted before the file closes."""
        del ctx
        await self._idle.wait()

    async def on_stop(self, ctx: ActorContext[AuditMessage]) -> None:
        """Checkpoint, fsync and close the file (also after a crash: the chain stays valid)."""
        del ctx
        audit, self._file = self._file, None
        if audit is not None:
            await trio.to_thread.run_sync(audit.close)

    def _open_file(self) -> AuditFile:
        assert self._file is not None, "on_start opens the file before any message"
        return self._file

    async def _append(
        self, kind: str, payload: Mapping[str, Any], ctx: ActorContext[AuditMessage]
    ) -> Appended | None:
        # A bad record is its sender's mistake: refuse it to that sender alone (raising from
        # handle would fail the writer, and every other caller's append with it).
        if not valid_kind(kind) or kind == CHECKPOINT_KIND:
            _refuse(ctx, ValueError(f"cannot append a record of kind {kind!r}"))
            return None
        try:
            redacted = self._config.redact(kind, payload)
            canonical_json(redacted)
        except (ValueError, NotCanonical) as exc:
            _refuse(ctx, exc)
            return None
        entry: Entry = (kind, redacted, utc_now())
        self._pending.append((entry, ctx.defer_reply() if ctx.answering else None))
        self._idle = trio.Event() if self._idle.is_set() else self._idle
        self._wake.set()
        return None

    async def _flush_batches(self) -> None:
        """Write what is pending, in batches, until the writer stops.

        Raises:
            AuditFileError: a write failed; the batch's callers get the error first.
        """
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    audit = await self._usable_file()
                    async with self._io:
                        sealed = await trio.to_thread.run_sync(
                            audit.append, [entry for entry, _ in batch]
                        )
                except AuditFileError as exc:
                    # A full or failing disk fails these appends, not the writer: its
                    # callers are told (they fail closed) and the next append reopens the
                    # file, so receipts resume once the disk has room again.
                    log.error("audit: %s; %d appends failed", exc, len(batch))  # noqa: TRY400
                    for _, reply in batch:
                        if reply is not None:
                            reply.fail(exc)
                    continue
                except Exception as exc:
                    for _, reply in batch:
                        if reply is not None:
                            reply.fail(exc)
                    raise
                for (entry, reply), seal in zip(batch, sealed, strict=True):
                    appended = self._written(Appended(seq=seal.seq, hash=seal.hash, kind=entry[0]))
                    if reply is not None:
                        reply.resolve(appended)
                if sum(audit.chain.since_checkpoint.values()) >= self._config.checkpoint_every:
                    async with self._io:
                        checkpoint = await trio.to_thread.run_sync(audit.checkpoint)
                    self._written(
                        Appended(seq=checkpoint.seq, hash=checkpoint.hash, kind=CHECKPOINT_KIND)
                    )
            self._idle.set()

    async def _usable_file(self) -> AuditFile:
        """The open file; after a failed write, the file reopened (its torn tail cut off).

        Raises:
            AuditFileError: it cannot be reopened yet (the disk is still full, say).
        """
        audit = self._open_file()
        if audit.usable:
            return audit
        config = self._config
        async with self._io:
            await trio.to_thread.run_sync(lambda: audit.close(checkpoint=False))
            self._file = await trio.to_thread.run_sync(
                lambda: AuditFile.open(config.path, fsync=config.fsync, writer=f"pid:{os.getpid()}")
            )
        log.info("audit: %s reopened after a failed write", config.path)
        return self._file

    def _written(self, appended: Appended) -> Appended:
        if self._config.on_written is not None:
            self._config.on_written(appended)
        return appended

    def _tick(self) -> Sealed | None:
        audit = self._open_file()
        audit.sync_if_due()
        every_s = self._config.checkpoint_every_s
        due = every_s is not None and audit.seconds_since_checkpoint() >= every_s
        if due and audit.chain.since_checkpoint:
            return audit.checkpoint()
        return None


def _refuse(ctx: ActorContext[AuditMessage], error: Exception) -> None:
    """Refuse a bad record to its asker alone (a told record is only logged)."""
    if ctx.answering:
        ctx.defer_reply().fail(error)
    else:
        log.warning("audit: refused a record: %s", error)


async def _tick_every(period_s: float, ctx: ActorContext[AuditMessage]) -> None:
    while True:
        await trio.sleep(period_s)
        # When the mailbox is full, appends are flowing and each checks the fsync policy itself.
        with contextlib.suppress(MailboxFull):
            ctx.self_ref.send_nowait(Tick())
