"""LLM providers: one interface, a scripted mock (the default) and an OpenAI-compatible adapter."""

from ._breaker import BreakerConfig as BreakerConfig
from ._breaker import BreakerSnapshot as BreakerSnapshot
from ._breaker import BreakerState as BreakerState
from ._breaker import CircuitBreaker as CircuitBreaker
from ._breaker import StateChangeObserver as StateChangeObserver
from ._credentials import ApiKey as ApiKey
from ._credentials import load_api_key as load_api_key
from ._fallback import FallbackProvider as FallbackProvider
from ._ledger import UsageLedger as UsageLedger
from ._ledger import UsageTotals as UsageTotals
from ._mock import MockProviderConfig as MockProviderConfig
from ._mock import ScriptedMockProvider as ScriptedMockProvider
from ._mock import scripted_reply as scripted_reply
from ._openai import OpenAICompatibleProvider as OpenAICompatibleProvider
from ._openai import Outcome as Outcome
from ._openai import UsageObserver as UsageObserver
from ._openai import open_openai_provider as open_openai_provider
from ._openai_config import OpenAIProviderConfig as OpenAIProviderConfig
from ._openai_wire import ModelPrice as ModelPrice
from ._pacer import Pacer as Pacer
from ._retry import RetryConfig as RetryConfig
from ._types import ChatMessage as ChatMessage
from ._types import CompletionRequest as CompletionRequest
from ._types import Finished as Finished
from ._types import LlmProvider as LlmProvider
from ._types import ProviderEvent as ProviderEvent
from ._types import ProviderEventSink as ProviderEventSink
from ._types import TextDelta as TextDelta
from ._types import ToolCallRequest as ToolCallRequest
from ._types import ToolCallRequested as ToolCallRequested
from ._types import ToolSpec as ToolSpec
from ._types import Usage as Usage
from ._types import nowait_of as nowait_of

__all__ = [
    "ApiKey",
    "BreakerConfig",
    "BreakerSnapshot",
    "BreakerState",
    "ChatMessage",
    "CircuitBreaker",
    "CompletionRequest",
    "FallbackProvider",
    "Finished",
    "LlmProvider",
    "MockProviderConfig",
    "ModelPrice",
    "OpenAICompatibleProvider",
    "OpenAIProviderConfig",
    "Outcome",
    "Pacer",
    "ProviderEvent",
    "ProviderEventSink",
    "RetryConfig",
    "ScriptedMockProvider",
    "StateChangeObserver",
    "TextDelta",
    "ToolCallRequest",
    "ToolCallRequested",
    "ToolSpec",
    "Usage",
    "UsageLedger",
    "UsageObserver",
    "UsageTotals",
    "load_api_key",
    "nowait_of",
    "open_openai_provider",
    "scripted_reply",
]
