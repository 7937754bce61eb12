"""The last accepted bundle of each tenant, on disk, so that a restart cannot roll policy back.

``state_dir/<tenant>.json`` holds the revision and digest of the last bundle accepted for
the tenant and the bundle itself (signed, so it is safe at rest and is verified again when
read). It is written, fsynced and renamed into place *before* the bundle is used, so a
crash never forgets a revision that was acted on. A restarted verifier starts from it: a
lower revision, or the same revision with other content, is a rollback; the same bundle is
taken back as it was, which lets a host serve from its last bundle while the control plane
is unreachable (until that bundle's ``exp``).

The functions here do blocking file I/O; the cache calls them from a worker thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Final

import attrs

from ._bundle import MAX_BUNDLE_CHARS, Accepted
from ._ids import is_id

SUFFIX: Final = ".json"
#: A state file holds one bundle and two small fields.
MAX_STATE_BYTES: Final = MAX_BUNDLE_CHARS + 4096


class StateError(Exception):
    """The state folder or one of its files cannot be read or written (the message says which)."""


@attrs.frozen(kw_only=True)
class Stored:
    """One tenant's remembered bundle."""

    accepted: Accepted
    jws: str


def load_all(directory: Path) -> dict[str, Stored]:
    """Every tenant's remembered bundle (an absent folder holds none).

    Raises:
        StateError: a file that is not a state file this module wrote: the revision floor
            it held would be lost, so the caller must not go on as if it had none.
    """
    found: dict[str, Stored] = {}
    if not directory.exists():
        return found
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        raise StateError(f"policy state folder {directory}: {exc.strerror}") from None
    for name in names:
        if not name.endswith(SUFFIX) or name.startswith("."):
            continue
        tenant = name[: -len(SUFFIX)]
        path = directory / name
        try:
            stored = _read(tenant, path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StateError(
                f"policy state file {path} is unreadable ({exc}); move it away only if you "
                "know the tenant's last revision cannot be rolled back"
            ) from None
        found[tenant] = stored
    return found


def _read(tenant: str, path: Path) -> Stored:
    if not is_id(tenant) or path.stat().st_size > MAX_STATE_BYTES:
        raise ValueError("not a state file")
    data = json.loads(path.read_text(encoding="utf-8"))
    return Stored(
        accepted=Accepted(
            revision=int(data["revision"]),
            digest=str(data["digest"]),
            policy_id=str(data.get("policy_id", "")),
        ),
        jws=str(data["bundle"]),
    )


def save(directory: Path, tenant: str, stored: Stored) -> None:
    """Remember ``stored`` for ``tenant``: write, fsync, rename, fsync the folder.

    Raises:
        StateError: the folder cannot be made or the file written.
    """
    if not is_id(tenant):
        raise StateError(f"tenant {tenant!r} is not a valid id")
    data = json.dumps(
        {
            "tenant": tenant,
            "revision": stored.accepted.revision,
            "digest": stored.accepted.digest,
            "policy_id": stored.accepted.policy_id,
            "bundle": stored.jws,
        },
        sort_keys=True,
    ).encode("utf-8")
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{tenant}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, directory / f"{tenant}{SUFFIX}")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with contextlib.suppress(OSError):  # some filesystems cannot fsync a folder
                os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise StateError(f"policy state for {tenant!r} in {directory}: {exc.strerror}") from None
