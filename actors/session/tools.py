"""How a turn runs the tool call its model asked for (the tool gateway implements this)."""

from __future__ import annotations

from typing import Protocol

from actors.provider import ToolCallRequest, ToolSpec


class ToolRunner(Protocol):
    """Runs one tool call for a turn and returns what goes back to the model.

    Implementations emit the ``tool.call.*`` events, validate, enforce caps, write the
    receipt, and never raise for a tool failure: a failed call is a JSON text with an
    ``error`` object that the model reads.
    """

    def offered_tools(self) -> tuple[ToolSpec, ...]:
        """The tools the model may call in this session (already allowed by policy)."""
        ...

    async def run(self, call: ToolCallRequest, *, turn_id: str) -> str:
        """Run ``call``; return the JSON text of its result or of its error."""
        ...
