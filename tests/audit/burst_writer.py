"""A process that writes audit records as fast as it can until it is killed (``kill -9``).

Usage: ``python -m tests.audit.burst_writer AUDIT_FILE PRIVATE_KEY``. Each record that the
writer acknowledged is printed as ``acked SEQ`` (flushed), so the test knows what the file
must hold after the kill.
"""

from __future__ import annotations

import sys
from pathlib import Path

import trio

from actors.audit import AppendReceipt, AuditConfig, AuditWriter, CheckpointSigner, FsyncPolicy
from tests.audit._support import receipt
from zl_actors import ActorSpec, open_actor_system

WRITERS = 16
CHECKPOINT_EVERY = 50


async def main(path: Path, key: Path) -> None:
    config = AuditConfig(
        path=path,
        fsync=FsyncPolicy(every_records=32, every_s=0.05),
        checkpoint_every=CHECKPOINT_EVERY,
        signer=CheckpointSigner.from_file(key),
    )
    async with open_actor_system("burst") as system:
        writer = await system.spawn(ActorSpec(name="audit", factory=lambda: AuditWriter(config)))

        async def write(worker: int) -> None:
            n = 0
            while True:
                n += 1
                appended = await writer.ask(
                    AppendReceipt(receipt=receipt((worker * 31 + n) % 100)), timeout=30
                )
                sys.stdout.write(f"acked {appended.seq}\n")
                sys.stdout.flush()

        async with trio.open_nursery() as nursery:
            for worker in range(WRITERS):
                nursery.start_soon(write, worker)


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]), Path(sys.argv[2]))
