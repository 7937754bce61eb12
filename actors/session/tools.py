"""How a turn runs the tool call its model asked for (the tool gateway implements this)."""

from __future__ import annotations

from typing import Any, Protocol

from actors.provider import ToolCallRequest, ToolSpec
from zl_actors import ActorContext


class ToolRunner(Protocol):
    """Runs one tool call for a turn and returns what goes back to the model.

    Implementations emit the ``tool.call.*`` events, validate, enforce caps, write the
    receipt, and never raise for a tool failure: a failed call is a JSON text with an
    ``error`` object that the model reads.
    """

    async def offered_tools(self) -> tuple[ToolSpec, ...]:
        """The tools the model may call in this session now."""
        ...

    @property
    def policy_in_force(self) -> tuple[str, int] | None:
        """The policy id and revision the last ``offered_tools`` decided under (None: none)."""
        ...

    async def run(
        self,
        call: ToolCallRequest,
        *,
        turn_id: str,
        turn: ActorContext[Any],
        receipts: list[str] | None = None,
    ) -> str:
        """Run ``call`` as a child of the ``turn`` actor; the JSON text of its result or error.

        The id of the receipt the call will have is appended to ``receipts`` as the call
        starts (the turn's audit record lists them). On cancellation (the turn is
        cancelled) the call is cancelled down the line and its receipt is still written.
        """
        ...
