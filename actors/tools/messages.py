"""The tool gateway's protocol."""

from __future__ import annotations

import attrs

from zl_actors import Request

from ._contracts import ToolContract
from .link import ToolDescriptor


@attrs.frozen(kw_only=True)
class OfferedTool:
    """A tool a session may offer its model: what the device announced and the host's contract."""

    descriptor: ToolDescriptor
    contract: ToolContract


@attrs.frozen(kw_only=True)
class GetOfferedTools(Request[tuple[OfferedTool, ...]]):
    """The tools of ``device_id`` that the host has a contract for (cached for a while)."""

    tenant: str
    device_id: str


@attrs.frozen(kw_only=True)
class ForgetCatalog:
    """Drop the cached catalog of a device (it reconnected or announced a new one)."""

    tenant: str
    device_id: str


GatewayMessage = GetOfferedTools | ForgetCatalog
