"""A JSON-ready picture of the live tree, and a terminal rendering of it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs
import cattrs
import trio

from ._cell import Cell, Kind

if TYPE_CHECKING:
    from ._reports import FailureRecord


@attrs.frozen(kw_only=True)
class MailboxInfo:
    depth: int
    capacity: int


@attrs.frozen(kw_only=True)
class FailureSnapshot:
    type: str
    message: str
    seconds_ago: float


@attrs.frozen(kw_only=True)
class RecentFailure:
    """One abnormal exit, kept after the actor is gone (a temporary child leaves the tree).

    ``action`` is what was done about it: restarted (and how many restarts the supervisor
    has left in its window), not restarted (a temporary child), or the supervisor gave up.
    """

    path: str
    kind: str
    actor_type: str
    type: str
    message: str
    action: str
    seconds_ago: float


@attrs.frozen(kw_only=True)
class ActorSnapshot:
    """One node: what it is, how it is doing, and its children in start order."""

    path: str
    name: str
    kind: str
    actor_type: str
    state: str
    mailbox: MailboxInfo
    restarts: int
    uptime_s: float
    last_failure: FailureSnapshot | None
    children: tuple[ActorSnapshot, ...]
    #: The system's latest abnormal exits, newest last (on the root of ``system.snapshot()``).
    recent_failures: tuple[RecentFailure, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Plain dicts, lists, strings and numbers (``json.dumps`` ready)."""
        result: dict[str, Any] = _converter.unstructure(self)
        return result

    def walk(self) -> list[ActorSnapshot]:
        """This node and every descendant, depth first."""
        nodes = [self]
        for child in self.children:
            nodes.extend(child.walk())
        return nodes

    def find(self, path: str) -> ActorSnapshot | None:
        return next((node for node in self.walk() if node.path == path), None)


_converter = cattrs.Converter()


def snapshot_of(cell: Cell, *, failures: Iterable[FailureRecord] = ()) -> ActorSnapshot:
    now = trio.current_time()
    failure = cell.last_failure
    return ActorSnapshot(
        path=cell.path,
        name=cell.name,
        kind=cell.kind.value,
        actor_type=cell.actor_type,
        state=cell.state.value,
        mailbox=MailboxInfo(
            depth=cell.mailbox_depth if cell.kind is Kind.ACTOR else 0,
            capacity=cell.mailbox_capacity,
        ),
        restarts=cell.restarts,
        uptime_s=round(max(0.0, now - cell.started_at), 3),
        last_failure=None
        if failure is None
        else FailureSnapshot(
            type=failure.type, message=failure.message, seconds_ago=round(now - failure.at, 3)
        ),
        children=tuple(snapshot_of(child) for child in list(cell.children.values())),
        recent_failures=tuple(
            RecentFailure(
                path=record.path,
                kind=record.kind,
                actor_type=record.actor_type,
                type=record.type,
                message=record.message,
                action=record.action,
                seconds_ago=round(now - record.at, 3),
            )
            for record in failures
        ),
    )


def snapshot_from_json(data: dict[str, Any]) -> ActorSnapshot:
    """Rebuild a snapshot from its JSON form (what the debug endpoint serves)."""
    return _converter.structure(data, ActorSnapshot)


def render_tree(root: ActorSnapshot) -> str:
    """The tree as indented text lines, one node a line, for terminals and logs."""
    lines: list[str] = []

    def visit(node: ActorSnapshot, prefix: str, last: bool, top: bool) -> None:
        branch = "" if top else ("└─ " if last else "├─ ")
        parts = [f"{node.name} [{node.kind}:{node.actor_type}] {node.state}"]
        if node.kind == Kind.ACTOR.value:
            parts.append(f"mailbox {node.mailbox.depth}/{node.mailbox.capacity}")
        parts.append(f"restarts {node.restarts}")
        parts.append(f"up {node.uptime_s:.1f}s")
        if node.last_failure is not None:
            parts.append(
                f"last failure {node.last_failure.type}: {node.last_failure.message} "
                f"({node.last_failure.seconds_ago:.1f}s ago)"
            )
        lines.append(prefix + branch + "  ".join(parts))
        child_prefix = prefix if top else prefix + ("   " if last else "│  ")
        for index, child in enumerate(node.children):
            visit(child, child_prefix, index == len(node.children) - 1, False)

    visit(root, "", True, True)
    return "\n".join(lines)


def render_failures(root: ActorSnapshot) -> str:
    """The snapshot's recent failures as text lines, newest last ('' when there are none)."""
    if not root.recent_failures:
        return ""
    lines = [f"recent failures ({len(root.recent_failures)}, newest last):"]
    lines.extend(
        f"  {failure.path} [{failure.kind}:{failure.actor_type}] {failure.type}: "
        f"{failure.message}; {failure.action} ({failure.seconds_ago:.1f}s ago)"
        for failure in root.recent_failures
    )
    return "\n".join(lines)
