"""How the host reaches tools: one ``ToolLink`` interface, two transports.

- stdio (dev/CI): the host runs the MCP server itself through an ``McpStdioClient``;
- relay (production): the host asks a Tool Relay, which forwards to the user's device.

The tool gateway (validation, caps, policy, receipts) sits above a link and does not care
which one it has. A link moves calls; it does not validate or audit them.
"""

from __future__ import annotations

from typing import Any, Protocol

import attrs


@attrs.frozen(kw_only=True)
class ToolDescriptor:
    """A tool as a device (or local server) announces it."""

    name: str
    version: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None = None


@attrs.frozen(kw_only=True)
class ToolInvocation:
    """One call, already validated and capped by the gateway."""

    call_id: str
    tenant: str
    device_id: str
    tool: str
    version: str
    arguments: dict[str, Any]
    timeout_s: float
    max_bytes: int
    traceparent: str | None = None
    #: The id of the receipt this call will have: it travels with the trace context.
    audit_id: str | None = None
    #: The signed policy bundle the call was decided under (the device enforces it again).
    policy: str | None = None


@attrs.frozen(kw_only=True)
class ToolOutput:
    """What the tool returned: MCP's ``structuredContent`` and text, or its own failure.

    ``is_error`` is a failure the tool reported (an MCP ``isError`` result); its
    ``error_code`` is the tool's typed code when it gave one. Transport failures are not
    outputs: the link raises ``actors.errors.ToolError`` for those.
    """

    structured: dict[str, Any] | None
    text: str
    is_error: bool = False
    error_code: str | None = None
    error_message: str | None = None


class ToolLink(Protocol):
    """A transport to the tools of a tenant's device."""

    async def catalog(self, *, tenant: str, device_id: str) -> tuple[ToolDescriptor, ...]:
        """The tools the device offers now.

        Raises:
            ToolError: ``tool.unavailable`` when the device (or local server) is not reachable.
        """
        ...

    async def invoke(self, call: ToolInvocation) -> ToolOutput:
        """Run ``call`` within ``call.timeout_s``.

        Raises:
            ToolError: ``tool.timeout``, ``tool.unavailable``, ``tool.not_found``,
                ``tool.failed``, or a relay code (``relay.overloaded``,
                ``relay.device_offline``, ``relay.forbidden``) mapped by the link.

        On cancellation the link tells the far end (MCP ``notifications/cancelled`` or a
        relay ``tool.cancel``), bounded in time, and re-raises.
        """
        ...
