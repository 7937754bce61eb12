"""The MCP client actor's protocol: what callers ask ``McpStdioClient`` and what it answers.

Asks (``ref.ask(msg, timeout=...)``):

* :class:`ListTools` → :class:`ToolCatalog`
* :class:`CallTool` → :class:`ToolResult`, or raises ``actors.errors.ToolError``
  (``tool.timeout``, ``tool.unavailable``, ``tool.failed``, ``tool.not_found``,
  ``tool.invalid_args``, ``tool.cancelled``) or ``actors.errors.Overloaded`` (``overloaded``)
* :class:`GetClientStatus` → :class:`ClientStatus`

Sends: :class:`CancelCall` (no answer).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

import attrs

from zl_actors import Request

from ._eras import Era, Implementation


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return dict(value) if value is not None else {}


@attrs.frozen(kw_only=True)
class ToolInfo:
    """One tool from the server's ``tools/list``, as the server described it.

    ``raw`` is the whole descriptor (title, annotations, icons, ...), untouched.
    """

    name: str
    description: str | None
    input_schema: Mapping[str, Any]
    output_schema: Mapping[str, Any] | None
    raw: Mapping[str, Any]


@attrs.frozen(kw_only=True)
class ToolCatalog:
    """The tools of the server process currently running, and who that server is.

    ``protocol_version`` is the version negotiated (modern or legacy era).
    """

    tools: tuple[ToolInfo, ...]
    era: Era
    protocol_version: str
    server_info: Implementation | None

    def get(self, name: str) -> ToolInfo | None:
        """The tool called ``name``, or ``None``."""
        for tool in self.tools:
            if tool.name == name:
                return tool
        return None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(tool.name for tool in self.tools)


@attrs.frozen(kw_only=True)
class ToolResult:
    """What ``tools/call`` returned, unvalidated against the tool's output schema.

    Attributes:
        call_id: the caller's id of the call.
        tool: the tool's name.
        structured_content: ``structuredContent`` (``None`` if the server sent none).
        content: the ``content`` blocks (text, image, ...), as sent.
        is_error: ``isError``: the tool ran and reported a failure (the gateway decides
            what that means; it is not raised).
        raw: the whole result object.
        elapsed_s: from writing the request to reading the response.
    """

    call_id: str
    tool: str
    structured_content: Mapping[str, Any] | None
    content: tuple[Mapping[str, Any], ...]
    is_error: bool
    raw: Mapping[str, Any]
    elapsed_s: float


@attrs.frozen(kw_only=True)
class ClientStatus:
    """Counters of the current server process (they start again at 0 after a restart)."""

    server_name: str
    pid: int | None
    era: Era | None
    protocol_version: str | None
    server_info: Implementation | None
    calls_in_flight: int
    calls_started: int
    garbage_lines: int
    unmatched_responses: int
    stderr_lines: int
    catalog_refreshes: int


@attrs.frozen(kw_only=True)
class ListTools(Request[ToolCatalog]):
    """Ask for the catalog (kept from ``tools/list``; refreshed on ``list_changed``)."""


@attrs.frozen(kw_only=True)
class CallTool(Request[ToolResult]):
    """Call one tool; the answer comes when the server answers, the deadline passes or it fails.

    Args:
        call_id: the caller's id for the call, unique among calls in flight (``CancelCall``
            names it).
        tool: the tool's name; it must be in the catalog.
        arguments: the tool's arguments (JSON-serialisable; validated by the gateway).
        timeout_s: the call's deadline from when the client takes it; ``None`` uses the
            client's ``default_call_timeout_s``. On expiry the server gets
            ``notifications/cancelled`` and the asker ``ToolError("tool.timeout")``.
        traceparent: W3C trace context, passed to the server in ``params._meta``.
        meta: more ``params._meta`` entries (the tenant and audit id, see ``call_meta``).
    """

    call_id: str
    tool: str
    arguments: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping)
    timeout_s: float | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.gt(0))
    )
    traceparent: str | None = None
    meta: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_mapping)


@attrs.frozen(kw_only=True)
class CancelCall:
    """Cancel a call in flight: the server gets ``notifications/cancelled`` and the asker, if
    still waiting, ``ToolError("tool.cancelled")``. Unknown or finished ids are ignored."""

    call_id: str
    reason: str = "cancelled by the caller"


@attrs.frozen(kw_only=True)
class GetClientStatus(Request[ClientStatus]):
    """Ask for the counters of the current server process."""


McpClientMessage: TypeAlias = ListTools | CallTool | CancelCall | GetClientStatus
