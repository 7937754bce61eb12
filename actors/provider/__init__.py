"""LLM providers: one interface, a scripted mock (the default) and an OpenAI-compatible adapter."""

from ._mock import MockProviderConfig as MockProviderConfig
from ._mock import ScriptedMockProvider as ScriptedMockProvider
from ._mock import scripted_reply as scripted_reply
from ._types import ChatMessage as ChatMessage
from ._types import CompletionRequest as CompletionRequest
from ._types import Finished as Finished
from ._types import LlmProvider as LlmProvider
from ._types import ProviderEvent as ProviderEvent
from ._types import TextDelta as TextDelta
from ._types import ToolCallRequest as ToolCallRequest
from ._types import ToolCallRequested as ToolCallRequested
from ._types import ToolSpec as ToolSpec
from ._types import Usage as Usage

__all__ = [
    "ChatMessage",
    "CompletionRequest",
    "Finished",
    "LlmProvider",
    "MockProviderConfig",
    "ProviderEvent",
    "ScriptedMockProvider",
    "TextDelta",
    "ToolCallRequest",
    "ToolCallRequested",
    "ToolSpec",
    "Usage",
    "scripted_reply",
]
