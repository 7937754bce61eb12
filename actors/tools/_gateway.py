"""The ``ToolGateway`` actor: which tools a session may offer, from the link's catalogs.

It caches each device's catalog for a short while (a catalog question to a device goes
over the relay) and answers from the cache; fetching happens in its nursery so that one
slow device never holds up the others.
"""

from __future__ import annotations

from typing import Any

import attrs
import trio

from actors.errors import ToolError
from zl_actors import Actor, ActorContext, DeferredReply

from ._contracts import tool_contracts
from .link import ToolLink
from .messages import ForgetCatalog, GatewayMessage, OfferedTool

# How long a device's catalog is trusted before it is asked again.
CATALOG_TTL_S = 30.0
# Longest wait for a device's catalog.
CATALOG_TIMEOUT_S = 5.0


@attrs.define
class _Entry:
    tools: tuple[OfferedTool, ...] = ()
    expires_at: float = 0.0
    waiting: list[DeferredReply] = attrs.Factory(list)
    fetching: bool = False


class ToolGateway(Actor[GatewayMessage]):
    """See the module docstring."""

    mailbox_capacity = 256

    def __init__(self, *, link: ToolLink) -> None:
        self.link = link
        self.entries: dict[tuple[str, str], _Entry] = {}

    async def handle(self, message: GatewayMessage, ctx: ActorContext[GatewayMessage]) -> Any:
        key = (message.tenant, message.device_id)
        if isinstance(message, ForgetCatalog):
            self.entries.pop(key, None)
            return None
        entry = self.entries.setdefault(key, _Entry())
        if entry.expires_at > trio.current_time():
            return entry.tools
        entry.waiting.append(ctx.defer_reply())
        if not entry.fetching:
            entry.fetching = True
            ctx.nursery.start_soon(self._fetch, key, entry)
        return None

    async def _fetch(self, key: tuple[str, str], entry: _Entry) -> None:
        tenant, device_id = key
        error: Exception | None = None
        try:
            with trio.fail_after(CATALOG_TIMEOUT_S):
                descriptors = await self.link.catalog(tenant=tenant, device_id=device_id)
        except trio.TooSlowError:
            error = ToolError(
                "tool.unavailable",
                f"no catalog for device {device_id} of tenant {tenant} within "
                f"{CATALOG_TIMEOUT_S:g} s (its relay shard may be slow or unreachable)",
            )
        except ToolError as exc:
            error = exc
        contracts = tool_contracts()
        if error is None:
            entry.tools = tuple(
                OfferedTool(descriptor=d, contract=contracts[d.name])
                for d in descriptors
                if d.name in contracts
            )
            entry.expires_at = trio.current_time() + CATALOG_TTL_S
        entry.fetching = False
        waiting, entry.waiting = entry.waiting, []
        for reply in waiting:
            if error is None:
                reply.resolve(entry.tools)
            else:
                reply.fail(error)
