"""The stdio ``ToolLink``: the host runs the MCP server itself (development and CI)."""

from __future__ import annotations

from typing import Any

from actors.errors import ToolError
from actors.mcp import CallTool, ListTools, McpClientMessage, call_meta, call_tool
from zl_actors import ActorError, ActorRef

from ._contracts import tool_contracts
from .link import ToolDescriptor, ToolInvocation, ToolOutput

# The catalog question to the local MCP client is answered from its memory.
CATALOG_TIMEOUT_S = 5.0
# Version reported for a tool the host has no manifest for.
UNVERSIONED = "0.0.0"


def _text_of(content: tuple[Any, ...]) -> str:
    parts = [
        block.get("text", "")
        for block in content
        if isinstance(block, dict) and block.get("type") == "text"
    ]
    return "\n".join(parts)


# Where our MCP servers put a failed call's typed error (``code``, ``message``, ``retryable``).
ERROR_META_KEY = "dev.zerolatency/error"


def _typed_error(raw: Any, text: str) -> tuple[str | None, str | None]:
    """The tool's own error code and message, from its ``isError`` result."""
    meta = raw.get("_meta") if isinstance(raw, dict) else None
    error = meta.get(ERROR_META_KEY) if isinstance(meta, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        message = error.get("message")
        return error["code"], message if isinstance(message, str) else text
    return None, text or None


class StdioToolLink:
    """Reaches the tools of the MCP server that the host's ``McpStdioClient`` runs.

    Every tenant and device maps to this one local server (dev/CI has no devices).
    """

    def __init__(self, client: ActorRef[McpClientMessage], *, device_id: str = "local") -> None:
        self.client = client
        self.device_id = device_id

    async def catalog(self, *, tenant: str, device_id: str) -> tuple[ToolDescriptor, ...]:
        try:
            catalog = await self.client.ask(ListTools(), timeout=CATALOG_TIMEOUT_S)
        except ActorError as exc:
            raise ToolError(
                "tool.unavailable", f"the local MCP server is not available: {exc}"
            ) from None
        contracts = tool_contracts()
        return tuple(
            ToolDescriptor(
                name=tool.name,
                version=contracts[tool.name].version if tool.name in contracts else UNVERSIONED,
                description=tool.description or "",
                input_schema=dict(tool.input_schema),
                output_schema=dict(tool.output_schema) if tool.output_schema else None,
            )
            for tool in catalog.tools
        )

    async def invoke(self, call: ToolInvocation) -> ToolOutput:
        result = await call_tool(
            self.client,
            CallTool(
                call_id=call.call_id,
                tool=call.tool,
                arguments=call.arguments,
                timeout_s=call.timeout_s,
                traceparent=call.traceparent,
                meta=call_meta(tenant=call.tenant, audit_id=call.audit_id),
            ),
        )
        structured = dict(result.structured_content) if result.structured_content else None
        text = _text_of(result.content)
        if result.is_error:
            code, message = _typed_error(dict(result.raw), text)
            return ToolOutput(
                structured=None, text=text, is_error=True, error_code=code, error_message=message
            )
        return ToolOutput(structured=structured, text=text)
