"""The host's provider: its configuration section, the stack it opens, and the ``provider`` actor.

Configuration (TOML, or ``ZL_PROVIDER__*`` variables)::

    [provider]
    kind = "openai"                  # "mock" (the embedded default) or "openai"
    default_model = "gpt-4o-mini"
    fallback = ["backup", "mock"]    # tried in order when the primary's circuit is open
                                     # (env: ZL_PROVIDER__FALLBACK="backup,mock")
    [provider.openai]                # the primary upstream, named "openai"
    base_url = "https://api.example.com/v1"
    api_key_env = "OPENAI_API_KEY"   # or api_key_file = "/run/secrets/openai"
    first_token_timeout_s = 30
    [provider.openai.prices.gpt-4o-mini]
    input_usd_per_mtok = 0.15
    output_usd_per_mtok = 0.6
    [provider.upstreams.backup]      # more upstreams, by name, for the fallback chain
    base_url = "http://vllm:8000/v1"
    [provider.breaker]               # one policy, one breaker per upstream
    failure_rate_threshold = 0.5

Why streaming does not go through the actor: a session calls the provider stack directly
(``LlmProvider.stream``), so each token crosses no mailbox; the breakers are plain objects
updated synchronously on the one Trio thread, so they need no actor to serialise them. The
``provider`` actor is the stack's place in the supervision tree: it answers
:class:`GetProviderStatus` (breaker states and usage totals) and ``describe()``s itself for
the tree snapshot. The HTTP pool lives in :func:`open_host_provider`, around the actor system,
so a restart of the actor never pulls the pool from under running sessions.

Errors: a bad setting is ``supervisors._config.ConfigError`` naming its key
(``provider.openai.first_token_timeout_s: must be > 0, got -1.0``). The API key's value never
appears in a message, a log line, a status or a snapshot.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import attrs
import trio

from actors.errors import ProviderError
from actors.provider import (
    BreakerConfig,
    BreakerSnapshot,
    BreakerState,
    FallbackProvider,
    LlmProvider,
    MockProviderConfig,
    ModelPrice,
    OpenAIProviderConfig,
    Pacer,
    RetryConfig,
    ScriptedMockProvider,
    UsageLedger,
    UsageTotals,
    load_api_key,
    open_openai_provider,
)
from supervisors._config import ConfigError
from zl_actors import Actor, ActorContext, ActorSpec, Request, Restart

log = logging.getLogger("zl.host.provider")

KINDS = ("mock", "openai")
#: The primary upstream's name (in the chain, breaker state, usage and errors).
PRIMARY = "openai"
#: The name that puts the embedded mock in the fallback chain.
MOCK = "mock"
#: Status requests waiting for the provider actor (debug endpoint, CLI): few and cheap.
PROVIDER_MAILBOX = 4


def _name_list(value: object) -> tuple[str, ...]:
    """A list from TOML, or a comma-separated string from a ``ZL_*`` variable."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise ValueError(f"expected a list of upstream names, got {value!r}")


@attrs.frozen(kw_only=True)
class MockSection:
    first_token_delay_ms: float = 50.0
    tokens_per_s: float = 50.0
    answer_tokens: int = 24

    def to_provider_config(self) -> MockProviderConfig:
        return MockProviderConfig(
            first_token_delay_s=self.first_token_delay_ms / 1000,
            tokens_per_s=self.tokens_per_s,
            answer_tokens=self.answer_tokens,
        )


@attrs.frozen(kw_only=True)
class PriceSection:
    """A model's list price in US dollars per million tokens."""

    input_usd_per_mtok: float = 0.0
    output_usd_per_mtok: float = 0.0


@attrs.frozen(kw_only=True)
class RetrySection:
    """Retries before the first token only (see ``actors.provider.RetryConfig``)."""

    max_attempts: int = 3
    base_delay_s: float = 0.2
    max_delay_s: float = 2.0
    max_retry_after_s: float = 10.0


@attrs.frozen(kw_only=True)
class UpstreamSection:
    """One OpenAI-compatible endpoint. Empty strings mean "not set"."""

    base_url: str = ""
    #: The environment variable holding the API key (wins over ``api_key_file``).
    api_key_env: str = ""
    #: A file whose content is the API key.
    api_key_file: str = ""
    connect_timeout_s: float = 5.0
    first_token_timeout_s: float = 30.0
    #: Silence allowed between chunks once the answer has started (cut at most 25 % later).
    idle_timeout_s: float = 30.0
    total_timeout_s: float = 300.0
    #: The HTTP pool's bound: at most this many streams to this upstream at once.
    max_connections: int = 100
    max_keepalive_connections: int = 20
    retry: RetrySection = RetrySection()
    prices: dict[str, PriceSection] = attrs.Factory(dict)


@attrs.frozen(kw_only=True)
class BreakerSection:
    """When an upstream's circuit opens and how it tries again (one breaker per upstream)."""

    failure_rate_threshold: float = 0.5
    window_s: float = 30.0
    min_calls: int = 5
    cool_down_s: float = 15.0
    half_open_probes: int = 1
    max_window_calls: int = 1000


@attrs.frozen(kw_only=True)
class ProviderSection:
    #: "mock" (the embedded default) or "openai".
    kind: str = "mock"
    default_model: str = "mock"
    mock: MockSection = MockSection()
    #: The primary upstream (used when ``kind = "openai"``).
    openai: UpstreamSection = UpstreamSection()
    #: More upstreams, by name, for the fallback chain.
    upstreams: dict[str, UpstreamSection] = attrs.Factory(dict)
    #: Names from ``upstreams`` (or "mock"), tried in order after the primary.
    #: Typed loosely so a ``ZL_*`` variable may give "a,b"; read it through ``fallback_chain``.
    fallback: Any = attrs.field(default=(), converter=_name_list)
    breaker: BreakerSection = BreakerSection()

    @property
    def fallback_chain(self) -> tuple[str, ...]:
        chain: tuple[str, ...] = self.fallback
        return chain


# -- checking and converting ----------------------------------------------------------------


def _check(ok: bool, key: str, rule: str, value: object) -> None:
    if not ok:
        raise ConfigError(f"{key}: {rule}, got {value!r}")


def _positive(key: str, value: float) -> None:
    _check(math.isfinite(value) and value > 0, key, "must be > 0", value)


def _non_negative(key: str, value: float) -> None:
    _check(math.isfinite(value) and value >= 0, key, "must be >= 0", value)


def _check_upstream(key: str, section: UpstreamSection) -> None:
    _check(
        section.base_url.startswith(("http://", "https://")),
        f"{key}.base_url",
        "must be an http:// or https:// URL",
        section.base_url,
    )
    for name in ("connect_timeout_s", "first_token_timeout_s", "idle_timeout_s", "total_timeout_s"):
        _positive(f"{key}.{name}", getattr(section, name))
    _check(
        section.max_connections >= 1,
        f"{key}.max_connections",
        "must be >= 1",
        section.max_connections,
    )
    _check(
        section.max_keepalive_connections >= 0,
        f"{key}.max_keepalive_connections",
        "must be >= 0",
        section.max_keepalive_connections,
    )
    retry = section.retry
    _check(retry.max_attempts >= 1, f"{key}.retry.max_attempts", "must be >= 1", retry.max_attempts)
    for name in ("base_delay_s", "max_delay_s", "max_retry_after_s"):
        _non_negative(f"{key}.retry.{name}", getattr(retry, name))
    for model, price in section.prices.items():
        _non_negative(f"{key}.prices.{model}.input_usd_per_mtok", price.input_usd_per_mtok)
        _non_negative(f"{key}.prices.{model}.output_usd_per_mtok", price.output_usd_per_mtok)


def check_provider_section(section: ProviderSection, *, prefix: str = "provider") -> None:
    """Refuse unusable provider settings before anything starts (keys are not read here).

    Raises:
        ConfigError: naming the key, e.g. ``provider.fallback[1]``.
    """
    _check(section.kind in KINDS, f"{prefix}.kind", f"must be one of {list(KINDS)}", section.kind)
    mock = section.mock
    _non_negative(f"{prefix}.mock.first_token_delay_ms", mock.first_token_delay_ms)
    _positive(f"{prefix}.mock.tokens_per_s", mock.tokens_per_s)
    _check(
        mock.answer_tokens >= 1, f"{prefix}.mock.answer_tokens", "must be >= 1", mock.answer_tokens
    )
    breaker = section.breaker
    _check(
        0 < breaker.failure_rate_threshold <= 1,
        f"{prefix}.breaker.failure_rate_threshold",
        "must be in (0, 1]",
        breaker.failure_rate_threshold,
    )
    _positive(f"{prefix}.breaker.window_s", breaker.window_s)
    _non_negative(f"{prefix}.breaker.cool_down_s", breaker.cool_down_s)
    for name in ("min_calls", "half_open_probes", "max_window_calls"):
        value = getattr(breaker, name)
        _check(value >= 1, f"{prefix}.breaker.{name}", "must be >= 1", value)
    for name in section.upstreams:
        _check(
            name not in (PRIMARY, MOCK),
            f"{prefix}.upstreams.{name}",
            f"{PRIMARY!r} and {MOCK!r} are reserved names",
            name,
        )
    if section.kind != "openai":
        return
    _check_upstream(f"{prefix}.openai", section.openai)
    seen = {PRIMARY}
    for index, name in enumerate(section.fallback_chain):
        key = f"{prefix}.fallback[{index}]"
        _check(
            name == MOCK or name in section.upstreams,
            key,
            f"must be {MOCK!r} or a name under {prefix}.upstreams",
            name,
        )
        _check(name not in seen, key, "names an upstream already in the chain", name)
        seen.add(name)
        if name != MOCK:
            _check_upstream(f"{prefix}.upstreams.{name}", section.upstreams[name])


def upstream_config(name: str, section: UpstreamSection) -> OpenAIProviderConfig:
    """The adapter's configuration for one checked upstream section (the key is not read)."""
    retry = section.retry
    return OpenAIProviderConfig(
        base_url=section.base_url,
        name=name,
        api_key_env=section.api_key_env or None,
        api_key_file=section.api_key_file or None,
        connect_timeout=section.connect_timeout_s,
        first_token_timeout=section.first_token_timeout_s,
        idle_timeout=section.idle_timeout_s,
        total_timeout=section.total_timeout_s,
        retry=RetryConfig(
            max_attempts=retry.max_attempts,
            base_delay=retry.base_delay_s,
            max_delay=retry.max_delay_s,
            max_retry_after=retry.max_retry_after_s,
        ),
        prices={
            model: ModelPrice(
                input_usd_per_mtok=price.input_usd_per_mtok,
                output_usd_per_mtok=price.output_usd_per_mtok,
            )
            for model, price in section.prices.items()
        },
        max_connections=section.max_connections,
        max_keepalive_connections=section.max_keepalive_connections,
    )


def breaker_config(section: BreakerSection) -> BreakerConfig:
    return BreakerConfig(
        failure_rate_threshold=section.failure_rate_threshold,
        window=section.window_s,
        min_calls=section.min_calls,
        cool_down=section.cool_down_s,
        half_open_probes=section.half_open_probes,
        max_window_calls=section.max_window_calls,
    )


# -- the stack ------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ProviderStatus:
    """What the ``provider`` actor reports: the chain, each breaker, and usage so far."""

    kind: str
    chain: tuple[str, ...]
    breakers: tuple[BreakerSnapshot, ...]
    usage: tuple[UsageTotals, ...]


@attrs.frozen(kw_only=True)
class ProviderStack:
    """The provider sessions call, and what is needed to report on it.

    ``provider`` is the :class:`FallbackProvider` over the chain for ``kind = "openai"`` (even
    a chain of one: its breaker still fails fast while the upstream is down), or the mock.
    """

    kind: str
    provider: LlmProvider
    chain: tuple[str, ...]
    ledger: UsageLedger
    fallback: FallbackProvider | None = None

    def status(self) -> ProviderStatus:
        breakers = self.fallback.breakers() if self.fallback is not None else ()
        return ProviderStatus(
            kind=self.kind, chain=self.chain, breakers=breakers, usage=self.ledger.totals()
        )


def _log_state_change(name: str, old: BreakerState, new: BreakerState) -> None:
    level = logging.INFO if new is BreakerState.CLOSED else logging.WARNING
    log.log(level, "provider %s: circuit %s -> %s", name, old.value, new.value)


@asynccontextmanager
async def open_host_provider(
    section: ProviderSection,
    *,
    environ: Mapping[str, str] | None = None,
    clock: Callable[[], float] | None = None,
) -> AsyncIterator[ProviderStack]:
    """Open the configured provider stack, with one HTTP pool per upstream, for the block.

    Args:
        section: the ``[provider]`` section.
        environ: where ``api_key_env`` is looked up (``os.environ`` when None).
        clock: the breakers' clock (``trio.current_time`` when None, so tests' clocks apply).

    Yields:
        The stack; its ``provider`` is safe to share between all sessions.

    Raises:
        ConfigError: a bad setting, or an API key source that is missing or empty (named by
            its key, never by its value).

    Cancellation: every HTTP pool is closed on the way out (open streams are cut).
    """
    check_provider_section(section)
    ledger = UsageLedger()
    # One timer paces the mock's tokens for every session (actors/provider/_pacer.py).
    pacer = Pacer()
    if section.kind == MOCK:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pacer.run)
            mock = ScriptedMockProvider(section.mock.to_provider_config(), pacer=pacer)
            yield ProviderStack(kind=MOCK, provider=mock, chain=(MOCK,), ledger=ledger)
            nursery.cancel_scope.cancel()
        return
    names = (PRIMARY, *section.fallback_chain)
    async with AsyncExitStack() as stack:
        chain: list[LlmProvider] = []
        for name in names:
            if name == MOCK:
                if MOCK not in names[: names.index(name)]:
                    nursery = await stack.enter_async_context(trio.open_nursery())
                    nursery.start_soon(pacer.run)
                    stack.callback(nursery.cancel_scope.cancel)
                chain.append(ScriptedMockProvider(section.mock.to_provider_config(), pacer=pacer))
                continue
            upstream = section.openai if name == PRIMARY else section.upstreams[name]
            key = "provider.openai" if name == PRIMARY else f"provider.upstreams.{name}"
            config = upstream_config(name, upstream)
            try:
                # Resolved here first so that a missing key is a ConfigError at start-up.
                api_key = load_api_key(
                    key=None, env_var=config.api_key_env, file=config.api_key_file, environ=environ
                )
            except ProviderError as exc:
                source = "api_key_env" if config.api_key_env else "api_key_file"
                raise ConfigError(f"{key}.{source}: {exc.message}") from None
            config = attrs.evolve(config, api_key=api_key)
            chain.append(
                await stack.enter_async_context(
                    open_openai_provider(config, usage_observer=ledger.observer(name))
                )
            )
        fallback = FallbackProvider(
            chain,
            breaker_config=breaker_config(section.breaker),
            clock=clock if clock is not None else trio.current_time,
            name="provider",
            on_state_change=_log_state_change,
        )
        log.info("provider: chain %s", " -> ".join(names))
        yield ProviderStack(
            kind="openai", provider=fallback, chain=names, ledger=ledger, fallback=fallback
        )


# -- the actor ------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class GetProviderStatus(Request[ProviderStatus]):
    pass


ProviderControl = GetProviderStatus


class ProviderActor(Actor[ProviderControl]):
    """The provider stack's node in the host tree: reports its state; streams bypass it."""

    mailbox_capacity = PROVIDER_MAILBOX

    def __init__(self, *, stack: ProviderStack) -> None:
        self.stack = stack

    async def handle(self, message: ProviderControl, ctx: ActorContext[ProviderControl]) -> Any:
        match message:
            case GetProviderStatus():
                return self.stack.status()
        return None

    def describe(self) -> dict[str, str]:
        """One line per upstream for a tree snapshot, e.g. ``{"openai": "open 100%/6"}``."""
        return {
            snap.name: f"{snap.state.value} {snap.failure_rate:.0%}/{snap.calls_in_window}"
            for snap in self.stack.status().breakers
        }


def provider_actor_spec(stack: ProviderStack) -> ActorSpec[ProviderControl]:
    """The ``provider`` child of the host supervisor."""
    return ActorSpec(
        name="provider", factory=lambda: ProviderActor(stack=stack), restart=Restart.PERMANENT
    )
