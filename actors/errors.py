"""The domain error tree, tied to the wire error catalog in one place.

::

    ZlError                      (Exception; .code, .retryable from contracts' catalog)
     ├── InvalidRequest          invalid_request, session.*, message.too_large
     ├── GuardrailBreached       turn.timeout, budget.exhausted
     ├── Overloaded              overloaded, relay.overloaded
     ├── ToolError               tool.*
     │    └── ToolsUnreachable    tool.unavailable: the session's tools cannot be reached
     ├── ProviderError           provider.*
     ├── PolicyError             policy.*
     └── RelayError              relay.*

Every error that leaves a process (a gRPC ``error`` event, a relay frame, a receipt)
is a ``ZlError`` turned into ``WireError`` by :meth:`ZlError.to_wire`.
"""

from __future__ import annotations

import attrs

from contracts import error_catalog


@attrs.frozen(kw_only=True)
class WireError:
    """An error as it travels: a catalog code, a human message and whether a retry may help."""

    code: str
    message: str
    retryable: bool


class ZlError(Exception):
    """Base of every error the system reports with a catalog code.

    Args:
        code: a code from ``contracts/api/errors/catalog.json``.
        message: what happened, for a person.

    Raises:
        ValueError: if ``code`` is not in the catalog (a programming error).
    """

    def __init__(self, code: str, message: str) -> None:
        spec = error_catalog().get(code)
        if spec is None:
            raise ValueError(f"error code {code!r} is not in the error catalog")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = spec.retryable

    def to_wire(self) -> WireError:
        return WireError(code=self.code, message=self.message, retryable=self.retryable)


class InvalidRequest(ZlError):
    """The client sent something malformed or out of order."""


class GuardrailBreached(ZlError):
    """A turn or session limit was reached."""


class Overloaded(ZlError):
    """A bounded queue was full and the edge chose to refuse rather than wait."""


class ToolError(ZlError):
    """A tool call did not produce a valid result."""


class ToolsUnreachable(ToolError):
    """The session's device cannot be reached at all (its relay shard is down).

    Unlike a device that is offline or offers no tools, which the model answers without,
    this ends the turn with a typed ``tool.unavailable`` naming what is unreachable.
    """

    def __init__(self, message: str) -> None:
        super().__init__("tool.unavailable", message)


class ProviderError(ZlError):
    """The LLM provider failed, timed out, refused or sent garbage."""


class PolicyError(ZlError):
    """No usable policy: missing, expired or badly signed."""


class RelayError(ZlError):
    """The relay refused or could not route a frame."""


def internal_error(exc: BaseException) -> WireError:
    """The wire form of an unexpected failure: the type is named, internals are not leaked."""
    return WireError(
        code="internal", message=f"internal error ({type(exc).__name__})", retryable=True
    )
