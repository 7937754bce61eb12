"""Configuration of the OpenAI-compatible adapter (a frozen attrs class, cattrs-friendly)."""

from __future__ import annotations

import attrs

from ._credentials import ApiKey
from ._openai_wire import ModelPrice
from ._retry import RetryConfig


@attrs.frozen(kw_only=True)
class OpenAIProviderConfig:
    """Where the upstream is, how long to wait for it, and how to retry.

    Args:
        base_url: the API root, e.g. ``https://api.openai.com/v1`` or ``http://vllm:8000/v1``;
            the adapter posts to ``{base_url}/chat/completions``.
        name: the provider's name in logs, errors, breaker state and the fallback chain.
        api_key_env: the environment variable that holds the API key.
        api_key_file: a file whose content is the API key (used when ``api_key_env`` is None).
        api_key: a key already in hand; wins over both. Never printed (``repr=False``, and
            :class:`ApiKey` masks itself). With no key source the request has no
            Authorization header (local servers).
        connect_timeout: seconds to open the TCP (and TLS) connection.
        first_token_timeout: seconds from sending the request to the first content chunk
            (text or a tool-call fragment), per attempt.
        idle_timeout: seconds allowed between two chunks once content has started (a silent
            upstream is cut at most a quarter later: ``_openai.IDLE_SLACK``). Time the caller
            takes to accept an event does not count.
        total_timeout: seconds for the whole call, retries and backoff included.
        retry: retry policy (before the first forwarded event only).
        prices: per-model prices; a model listed here gets ``Usage.cost_usd``.
        max_connections: the HTTP connection pool's bound; a call waits for a free
            connection (within ``first_token_timeout``) when all are busy.
        max_keepalive_connections: idle connections kept for reuse.
    """

    base_url: str
    name: str = "openai"
    api_key_env: str | None = None
    api_key_file: str | None = None
    api_key: ApiKey | None = attrs.field(default=None, repr=False)
    connect_timeout: float = attrs.field(default=5.0, validator=attrs.validators.gt(0.0))
    first_token_timeout: float = attrs.field(default=30.0, validator=attrs.validators.gt(0.0))
    idle_timeout: float = attrs.field(default=30.0, validator=attrs.validators.gt(0.0))
    total_timeout: float = attrs.field(default=300.0, validator=attrs.validators.gt(0.0))
    retry: RetryConfig = attrs.Factory(RetryConfig)
    prices: dict[str, ModelPrice] = attrs.Factory(dict)
    max_connections: int = attrs.field(default=100, validator=attrs.validators.gt(0))
    max_keepalive_connections: int = attrs.field(default=20, validator=attrs.validators.ge(0))

    @property
    def completions_url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"
