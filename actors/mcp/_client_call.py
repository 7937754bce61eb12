"""Calling the client from another actor: typed errors only, and a cancel that reaches the server.

Errors raised are ``actors.errors`` ones (see ``_client.py`` for which codes).
"""

from __future__ import annotations

import contextlib

from actors.errors import InvalidRequest, Overloaded, ToolError
from zl_actors import (
    ActorCrashed,
    ActorRef,
    ActorSpec,
    ActorStopped,
    AskTimeout,
    MailboxFull,
    Restart,
)

from ._client import McpStdioClient
from ._client_config import DEFAULT_CALL_TIMEOUT_S, McpClientConfig
from .messages import CallTool, CancelCall, McpClientMessage, ToolResult

ASK_GRACE_S = 1.0
"""``call_tool`` waits this much longer than the call's deadline, so the client's typed
``tool.timeout`` (with its cancel notification) arrives before the ask gives up."""


async def call_tool(
    ref: ActorRef[McpClientMessage],
    request: CallTool,
    *,
    ask_timeout_s: float | None = None,
) -> ToolResult:
    """Ask the client for ``request`` and turn every runtime failure into a typed error.

    Args:
        ref: the client actor.
        request: the call; its ``timeout_s`` should be set (the client's default is not
            known here, ``DEFAULT_CALL_TIMEOUT_S`` is assumed when it is ``None``).
        ask_timeout_s: how long to wait for the answer; defaults to the call's deadline
            plus ``ASK_GRACE_S``.

    Returns:
        The :class:`~actors.mcp.messages.ToolResult`.

    Raises:
        ToolError: the client's typed errors; ``tool.timeout`` if the ask itself timed out;
            ``tool.unavailable`` if the client stopped or crashed before answering.
        Overloaded: too many calls in flight.
        InvalidRequest: ``call_id`` already in flight.

    On cancellation a ``CancelCall`` is sent (without waiting), so the server is told.
    """
    timeout = ask_timeout_s or (request.timeout_s or DEFAULT_CALL_TIMEOUT_S) + ASK_GRACE_S
    finished = False
    try:
        result: ToolResult = await ref.ask(request, timeout=timeout)
        finished = True
        return result
    except AskTimeout:
        raise ToolError("tool.timeout", f"{request.tool}: no answer within {timeout:g} s") from None
    except (ActorStopped, ActorCrashed) as exc:
        finished = True
        raise ToolError("tool.unavailable", f"{request.tool}: {exc}") from None
    except (ToolError, Overloaded, InvalidRequest):
        finished = True
        raise
    finally:
        if not finished:
            _cancel_nowait(ref, request)


def _cancel_nowait(ref: ActorRef[McpClientMessage], request: CallTool) -> None:
    # If it cannot be queued, the client's abandon sweep notices the abandoned ask instead.
    with contextlib.suppress(MailboxFull, ActorStopped):
        ref.send_nowait(CancelCall(call_id=request.call_id, reason="the caller gave up"))


def mcp_client_spec(
    name: str, config: McpClientConfig, *, restart: Restart = Restart.PERMANENT
) -> ActorSpec[McpClientMessage]:
    """The child spec of a client: permanent by default, so a crashed server is restarted
    with the supervisor's backoff."""
    return ActorSpec(name=name, factory=lambda: McpStdioClient(config), restart=restart)
