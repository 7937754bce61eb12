"""The audit file: append sealed records, flush and fsync them, resume the chain on open.

Blocking code: the ``AuditWriter`` actor runs every call here in a worker thread. Only one
writer may hold a file (an exclusive ``flock``), in this process or any other.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from ._chain import Anchor, BadRecord, Chain, Sealed, VerifyReport, parse_line, verify_lines
from ._digest import sha256_digest
from ._errors import AuditCorrupt, AuditFileError
from ._records import CHECKPOINT_KIND, OPENED_KIND, utc_now
from ._schema import record_problem
from ._signing import CheckpointSigner, PublicKeys

# Resuming reads the file backwards from this window, doubling it until the window holds
# a checkpoint (or the whole file): a few checkpoint intervals of receipts at most.
RESUME_WINDOW_BYTES = 64 * 1024
# verify_audit reads in blocks of this size; lines are never held all at once.
READ_BLOCK_BYTES = 256 * 1024
FILE_MODE = 0o600


def _optional_at_least(low: int) -> Callable[[object, attrs.Attribute[Any], int | None], None]:
    def check(_: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
        if value is not None and value < low:
            raise ValueError(f"{attribute.name} must be None or >= {low}: {value!r}")

    return check


def optional_positive(_: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{attribute.name} must be None or > 0: {value!r}")


@attrs.frozen(kw_only=True)
class FsyncPolicy:
    """When appended records are fsync'd (they are always written to the OS before a reply).

    Args:
        every_records: fsync once this many records are not yet synced (1: every append
            is durable before it is acknowledged). None: not by count.
        every_s: fsync once the oldest unsynced record is this many seconds old (checked at
            each append and by the writer's timer). None: not by time.

    With both None the file is only flushed to the OS: a process crash loses nothing, a
    machine crash may lose the last records.
    """

    every_records: int | None = attrs.field(default=1, validator=_optional_at_least(1))
    every_s: float | None = attrs.field(default=None, validator=optional_positive)


Entry = tuple[str, Mapping[str, Any], str]
"""One record to append: (kind, payload, at)."""


class AuditFile:
    """An open audit file that owns its chain. Use ``AuditFile.open``; close with ``close``."""

    def __init__(
        self,
        path: Path,
        fd: int,
        chain: Chain,
        fsync: FsyncPolicy,
        signer: CheckpointSigner | None = None,
    ) -> None:
        self.path = path
        self.chain = chain
        self.signer = signer
        self.fsync_policy = fsync
        self.fsyncs = 0  # how many fsyncs were made (figures and tests)
        self._fd: int | None = fd
        self._unsynced = 0
        self._oldest_unsynced = 0.0
        self._broken: str | None = None
        self._last_checkpoint_at = time.monotonic()

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        fsync: FsyncPolicy,
        writer: str,
        signer: CheckpointSigner | None = None,
    ) -> AuditFile:
        """Open (or create) ``path``, lock it, resume its chain and append ``audit.opened``.

        A last line without its newline is the trace of a write cut short by a crash; it
        was never acknowledged, so it is cut off, and the ``audit.opened`` record says how
        many bytes and their digest.

        Args:
            path: the audit file.
            fsync: when to fsync.
            writer: who opens it (for the ``audit.opened`` record), e.g. ``pid:1234``.
            signer: signs every checkpoint (None: checkpoints are not signed).

        Raises:
            AuditFileError: it cannot be opened or is locked by another writer.
            AuditCorrupt: its last records are not a valid chain.
        """
        path = Path(path)
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        except OSError as exc:
            raise AuditFileError(f"cannot open audit file {path}: {exc}") from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise AuditFileError(f"audit file {path} is held by another writer") from exc
            torn = _cut_torn_tail(fd)
            chain = _resume(fd, path)
            audit = cls(path, fd, chain, fsync, signer)
            resumed = chain.head
            opened = {
                "writer": writer,
                "resumed_after_seq": None if resumed is None else resumed.seq,
                "torn_tail_bytes": len(torn),
                "torn_tail_digest": sha256_digest(torn) if torn else None,
            }
            audit.append([(OPENED_KIND, opened, utc_now())])
            audit.sync()
            if resumed is None:
                _fsync_dir(path)  # a new file's directory entry must be durable too
            return audit
        except BaseException:
            os.close(fd)
            raise

    @property
    def closed(self) -> bool:
        return self._fd is None

    @property
    def usable(self) -> bool:
        """Open and not broken by a failed write or fsync (else reopen it to go on)."""
        return self._fd is not None and self._broken is None

    def append(self, entries: Sequence[Entry]) -> list[Sealed]:
        """Seal and write ``entries`` in one write; fsync if the policy says it is due.

        When this returns, the records are in the OS (and on disk if fsync'd).

        Raises:
            NotCanonical, ValueError: an entry cannot be sealed (nothing is written).
            AuditFileError: the write failed; the file is unusable from then on (reopen it:
                a partial write is cut off as a torn tail).
        """
        fd = self._usable_fd()
        # Seal on a copy first: a payload that cannot be sealed must leave the chain as it was.
        trial = self.chain.copy()
        sealed = [
            trial.seal(kind, payload, at, signer=self.signer) for kind, payload, at in entries
        ]
        data = b"".join(record.line for record in sealed)
        try:
            _write_all(fd, data)
        except OSError as exc:
            self._broken = f"a write failed: {exc}"
            raise AuditFileError(f"cannot write audit file {self.path}: {exc}") from exc
        self.chain = trial
        if any(record.kind == CHECKPOINT_KIND for record in sealed):
            self._last_checkpoint_at = time.monotonic()
        if self._unsynced == 0:
            self._oldest_unsynced = time.monotonic()
        self._unsynced += len(sealed)
        policy = self.fsync_policy
        if policy.every_records is not None and self._unsynced >= policy.every_records:
            self.sync()
        else:
            self.sync_if_due()
        return sealed

    def checkpoint(self) -> Sealed:
        """Append a checkpoint record now (see ``_chain``)."""
        return self.append([(CHECKPOINT_KIND, self.chain.checkpoint_payload(), utc_now())])[0]

    def seconds_since_checkpoint(self) -> float:
        """Seconds since the last checkpoint written by this writer (or since opening)."""
        return time.monotonic() - self._last_checkpoint_at

    def sync_if_due(self) -> bool:
        """fsync if the oldest unsynced record is older than the policy's ``every_s``."""
        every_s = self.fsync_policy.every_s
        due = every_s is not None and time.monotonic() - self._oldest_unsynced >= every_s
        if self._unsynced and due:
            self.sync()
            return True
        return False

    def sync(self) -> None:
        """fsync now if anything is unsynced.

        Raises:
            AuditFileError: fsync failed (the file is unusable from then on).
        """
        fd = self._usable_fd()
        if not self._unsynced:
            return
        try:
            os.fsync(fd)
        except OSError as exc:
            # After a failed fsync the kernel may have dropped the dirty pages: never retry.
            self._broken = f"fsync failed: {exc}"
            raise AuditFileError(f"cannot fsync audit file {self.path}: {exc}") from exc
        self.fsyncs += 1
        self._unsynced = 0

    def close(self, *, checkpoint: bool = True) -> None:
        """Write a closing checkpoint (if anything came since the last), fsync, unlock, close.

        Never raises for a file that is already closed or broken; it is just closed.
        """
        if self._fd is None:
            return
        try:
            if self._broken is None:
                if checkpoint and self.chain.since_checkpoint:
                    self.checkpoint()
                self.sync()
        finally:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing drops the flock

    def _usable_fd(self) -> int:
        if self._fd is None:
            raise AuditFileError(f"audit file {self.path} is closed")
        if self._broken is not None:
            raise AuditFileError(f"audit file {self.path} is unusable: {self._broken}")
        return self._fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _cut_torn_tail(fd: int) -> bytes:
    """Cut off bytes after the last newline; return them (empty if the file ends cleanly)."""
    size = os.fstat(fd).st_size
    end = size
    block = 4096
    while end > 0:
        start = max(0, end - block)
        chunk = os.pread(fd, end - start, start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            keep = start + newline + 1
            break
        end = start
    else:
        keep = 0
    if keep == size:
        return b""
    torn = os.pread(fd, size - keep, keep)
    os.ftruncate(fd, keep)
    os.fsync(fd)
    return torn


def _resume(fd: int, path: Path) -> Chain:
    """Rebuild the chain from the last checkpoint (or the start) to the end of the file."""
    size = os.fstat(fd).st_size
    window = RESUME_WINDOW_BYTES
    try:
        while True:
            start = max(0, size - window)
            data = os.pread(fd, size - start, start)
            lines = data.split(b"\n")[:-1]  # the file ends with a newline (torn tail cut)
            lines = [line + b"\n" for line in lines[1 if start > 0 else 0 :]]
            first = _last_checkpoint_index(lines)
            if first is not None or start == 0:
                break
            window *= 2
        if first is None:
            chain = Chain()
            tail = lines
        else:
            chain = Chain.after_checkpoint(parse_line(lines[first]))
            tail = lines[first + 1 :]
        for line in tail:
            chain.follow(parse_line(line))
    except BadRecord as exc:
        raise AuditCorrupt(f"cannot resume audit file {path}: {exc}") from exc
    return chain


def _last_checkpoint_index(lines: list[bytes]) -> int | None:
    marker = b'"kind":"' + CHECKPOINT_KIND.encode() + b'"'
    for index in range(len(lines) - 1, -1, -1):
        # The byte test is a cheap filter; a payload may hold the same text, so parse to be sure.
        if marker in lines[index] and parse_line(lines[index])["kind"] == CHECKPOINT_KIND:
            return index
    return None


def iter_lines(path: str | Path) -> Iterator[bytes]:
    """The lines of ``path`` with their newlines, read in blocks (the last may lack one)."""
    with open(path, "rb") as file:
        rest = b""
        while block := file.read(READ_BLOCK_BYTES):
            rest += block
            *lines, rest = rest.split(b"\n")
            for line in lines:
                yield line + b"\n"
        if rest:
            yield rest


def verify_audit(
    path: str | Path,
    *,
    anchor: Anchor | None = None,
    check_schema: bool = True,
    keys: PublicKeys | None = None,
) -> VerifyReport:
    """Check a whole audit file: every line, the chain, checkpoints, and (optionally) schemas.

    Args:
        path: the file.
        anchor: an ``Anchor`` known from outside (a published checkpoint) the file must hold.
        check_schema: also validate each record against contracts/api/audit/v1.
        keys: public keys by key id: every checkpoint must carry a signature by one.

    Returns:
        The report: ``ok``, ``records``, ``kinds``, ``head`` and the first ``problem``.

    Raises:
        OSError: the file cannot be read.
    """
    return verify_lines(
        iter_lines(path),
        anchor=anchor,
        check_record=record_problem if check_schema else None,
        keys=keys,
    )
