"""The ``PolicyCache`` actor: each tenant's current verified bundle, kept fresh.

One refresher task per tenant in use (in the actor's nursery) pulls the bundle from the
source with its last ETag, verifies it (``verify_bundle``: signature by ``kid`` against
the trusted keys, tenant, TTL, validity window with a bounded skew, revision above the
last accepted, recorded in ``state_dir``), records the revision on disk, and only then
makes it current. A bundle that fails any check never replaces the current one; the
rejection is logged with its reason and counted (``on_rejection``). What else a bundle
configures on the host (its ``redaction`` section) is checked with it (``prepare``) and put
in force at the moment it becomes current, so a bundle is never half applied.

When it refreshes: after a good answer (a new bundle or 304) at ``refresh_s`` or half the
bundle's remaining life, whichever is sooner, jittered down by up to a fifth so that hosts
do not poll in step; after a failure (unreachable, 404, 5xx, a rejected bundle) with
exponential backoff and jitter from ``retry.initial_s`` up to ``retry.max_s``. Past ``exp``
with nothing fresh the bundle stays as the tenant's last word and the caller denies every
call ``policy.expired``; the next good bundle restores calls at once.

The first ``GetPolicy`` for a tenant starts its refresher and is answered once the first
fetch has finished (good or not); later ones are answered at once from memory.
"""

from __future__ import annotations

import logging
import random
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Final

import attrs
import trio
from attrs.validators import gt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from actors.relay import load_public_key
from zl_actors import Actor, ActorContext, Backoff, DeferredReply

from . import _state
from ._bundle import (
    DEFAULT_CLOCK_SKEW_S,
    DEFAULT_MAX_TTL_S,
    Accepted,
    PolicyBundle,
    verify_bundle,
)
from ._errors import BundleRejected, RejectReason
from ._ids import is_id
from ._jws import keys_by_id
from ._source import BundleSource, SourceError, open_source
from .messages import GetPolicy, PolicyMessage, PolicyView, RefreshNow

log = logging.getLogger("zl.policy")

#: Shortest wait between two refreshes of one tenant, whatever the bundle's TTL.
MIN_REFRESH_S: Final = 0.05
#: A good refresh is scheduled at up to this share earlier than due (jitter).
REFRESH_JITTER: Final = 0.2

RejectionObserver = Callable[[str], None]
#: What else a tenant's bundle configures on the host (its ``redaction`` section): called
#: with a verified bundle before it is recorded, it checks its part and returns the call
#: that puts that part in force, which the cache makes when the bundle becomes current.
#: It raises ``BundleRejected`` for a part that cannot be used: the bundle is then refused
#: like any other that fails a check, and nothing of it is in force.
BundlePreparer = Callable[[str, PolicyBundle], Callable[[], None]]


def _nothing_to_prepare(tenant: str, bundle: PolicyBundle) -> Callable[[], None]:
    return lambda: None


def _key_tuple(keys: Iterable[Ed25519PublicKey]) -> tuple[Ed25519PublicKey, ...]:
    return tuple(keys)


@attrs.frozen(kw_only=True)
class PolicyCacheConfig:
    """How the cache gets and checks bundles.

    Args:
        source: ``https://...{tenant}...`` or ``file:...{tenant}...``.
        trusted_keys: the control plane's public keys (two while one is rotated out).
        ssl_context: verifies an HTTPS source (None: the system's CAs).
        max_ttl_s: the longest ``exp - iat`` accepted.
        clock_skew_s: how far the control plane's clock and ours may differ.
        state_dir: where each tenant's last accepted revision is kept (None: memory only,
            for tests: a restart could then be rolled back).
        refresh_s: the longest time between two checks of a tenant's bundle.
        fetch_timeout_s: one fetch, whole.
        retry: backoff after a failed refresh.
        max_tenants: tenants refreshed at once; one more is answered with no policy.
        now: the wall clock (Unix time); tests pass their own.
    """

    source: str
    trusted_keys: tuple[Ed25519PublicKey, ...] = attrs.field(converter=_key_tuple)
    ssl_context: ssl.SSLContext | None = None
    max_ttl_s: float = attrs.field(default=DEFAULT_MAX_TTL_S, validator=gt(0))
    clock_skew_s: float = DEFAULT_CLOCK_SKEW_S
    state_dir: Path | None = None
    refresh_s: float = attrs.field(default=30.0, validator=gt(0))
    fetch_timeout_s: float = attrs.field(default=5.0, validator=gt(0))
    retry: Backoff = attrs.field(factory=lambda: Backoff(initial_s=0.5, max_s=30.0, jitter=1.0))
    max_tenants: int = attrs.field(default=10_000, validator=gt(0))
    now: Callable[[], float] = time.time


@attrs.define
class _Tenant:
    """One tenant's state; its refresher is the only task that changes it."""

    name: str
    current: PolicyBundle | None = None
    last: Accepted | None = None
    etag: str | None = None
    problem: str | None = None
    started: bool = False
    fetched_once: bool = False
    waiting: list[DeferredReply] = attrs.Factory(list)
    wake: trio.Event = attrs.Factory(trio.Event)

    def view(self) -> PolicyView:
        return PolicyView(tenant=self.name, bundle=self.current, problem=self.problem)


class PolicyCache(Actor[PolicyMessage]):
    """See the module docstring.

    Args:
        config: source, keys and timing.
        on_rejection: told the reason of each rejected bundle or failed fetch (a metric).
        source: replaces the configured source (tests).
        prepare: what else each bundle configures (``BundlePreparer``); nothing by default.
    """

    mailbox_capacity = 256

    def __init__(
        self,
        config: PolicyCacheConfig,
        *,
        on_rejection: RejectionObserver | None = None,
        source: BundleSource | None = None,
        prepare: BundlePreparer = _nothing_to_prepare,
    ) -> None:
        self.config = config
        self.on_rejection = on_rejection
        self.source = source
        self.prepare = prepare
        self.keys = keys_by_id(config.trusted_keys)
        self.tenants: dict[str, _Tenant] = {}
        self.rng = random.Random()

    async def on_start(self, ctx: ActorContext[PolicyMessage]) -> None:
        if self.source is None:
            self.source = open_source(
                self.config.source,
                ssl_context=self.config.ssl_context,
                timeout_s=self.config.fetch_timeout_s,
            )
        if self.config.state_dir is not None:
            stored = await trio.to_thread.run_sync(_state.load_all, self.config.state_dir)
            for tenant, remembered in stored.items():
                self._restore(tenant, remembered)
        for entry in list(self.tenants.values())[: self.config.max_tenants]:
            self._start_refresher(entry, ctx)

    async def on_stop(self, ctx: ActorContext[PolicyMessage]) -> None:
        if self.source is not None:
            with trio.move_on_after(1.0, shield=True):
                await self.source.aclose()

    def _restore(self, tenant: str, remembered: _state.Stored) -> None:
        entry = _Tenant(name=tenant, last=remembered.accepted)
        try:
            bundle = verify_bundle(
                remembered.jws,
                keys=self.keys,
                tenant=tenant,
                now=self.config.now(),
                max_ttl_s=self.config.max_ttl_s,
                clock_skew_s=self.config.clock_skew_s,
                last=remembered.accepted,
                check_time=False,
            )
            apply = self.prepare(tenant, bundle)
        except BundleRejected as exc:
            # Its revision still holds as the floor (a key may have been rotated out).
            log.warning("policy: remembered bundle of %s no longer verifies: %s", tenant, exc)
        else:
            entry.current = bundle
            apply()
        self.tenants[tenant] = entry

    async def handle(self, message: PolicyMessage, ctx: ActorContext[PolicyMessage]) -> Any:
        match message:
            case GetPolicy(tenant=tenant):
                entry = self._entry(tenant)
                if entry is None:
                    return PolicyView(
                        tenant=tenant, bundle=None, problem="the policy cache is full"
                    )
                if entry.fetched_once or entry.current is not None:
                    if not entry.started:
                        self._start_refresher(entry, ctx)
                    return entry.view()
                entry.waiting.append(ctx.defer_reply())
                self._start_refresher(entry, ctx)
            case RefreshNow(tenant=tenant):
                entry = self._entry(tenant)
                if entry is not None:
                    self._start_refresher(entry, ctx)
                    entry.wake.set()
        return None

    def _entry(self, tenant: str) -> _Tenant | None:
        entry = self.tenants.get(tenant)
        if entry is None:
            if len(self.tenants) >= self.config.max_tenants or not is_id(tenant):
                return None
            entry = self.tenants[tenant] = _Tenant(name=tenant)
        return entry

    def _start_refresher(self, entry: _Tenant, ctx: ActorContext[PolicyMessage]) -> None:
        if not entry.started:
            entry.started = True
            ctx.nursery.start_soon(self._refresher, entry)

    async def _refresher(self, entry: _Tenant) -> None:
        failures = 0
        while True:
            delay = await self._refresh(entry)
            if delay is None:
                failures += 1
                delay = self.config.retry.delay(failures, self.rng)
            else:
                failures = 0
            entry.fetched_once = True
            waiting, entry.waiting = entry.waiting, []
            for reply in waiting:
                reply.resolve(entry.view())
            with trio.move_on_after(max(MIN_REFRESH_S, delay)):
                await entry.wake.wait()
            entry.wake = trio.Event()

    def _reject(self, entry: _Tenant, reason: RejectReason, message: str) -> None:
        entry.problem = message
        log.warning("policy: %s: bundle rejected (%s): %s", entry.name, reason.value, message)
        if self.on_rejection is not None:
            self.on_rejection(reason.value)

    async def _refresh(self, entry: _Tenant) -> float | None:
        """One refresh; the delay before the next (None: it failed, back off)."""
        assert self.source is not None
        try:
            fetched = await self.source.fetch(entry.name, entry.etag)
        except SourceError as exc:
            self._reject(entry, RejectReason.UNAVAILABLE, f"{self.source.description}: {exc}")
            return None
        if fetched.status == "missing":
            self._reject(entry, RejectReason.UNAVAILABLE, "the source has no bundle for the tenant")
            return None
        if fetched.status == "bundle" and not (
            entry.current is not None and entry.current.jws == fetched.text
        ):
            try:
                bundle = verify_bundle(
                    fetched.text,
                    keys=self.keys,
                    tenant=entry.name,
                    now=self.config.now(),
                    max_ttl_s=self.config.max_ttl_s,
                    clock_skew_s=self.config.clock_skew_s,
                    last=entry.last,
                )
                apply = self.prepare(entry.name, bundle)
            except BundleRejected as exc:
                self._reject(entry, exc.reason, exc.message)
                return None
            if self.config.state_dir is not None:
                try:
                    await trio.to_thread.run_sync(
                        _state.save,
                        self.config.state_dir,
                        entry.name,
                        _state.Stored(accepted=bundle.accepted, jws=bundle.jws),
                    )
                except _state.StateError as exc:
                    # Unrecorded, it could be rolled back after a restart: not used.
                    log.error("policy: %s: %s", entry.name, exc)  # noqa: TRY400 - no traceback: the message says it all
                    entry.problem = str(exc)
                    return None
            entry.current, entry.last = bundle, bundle.accepted
            apply()
            log.info(
                "policy: %s: bundle %s revision %d accepted (kid %s, expires in %.0f s)",
                entry.name,
                bundle.policy_id,
                bundle.revision,
                bundle.kid,
                bundle.expires_at - self.config.now(),
            )
        entry.etag = fetched.etag
        if entry.current is not None and entry.current.expired(
            self.config.now(), self.config.clock_skew_s
        ):
            # The source is up but has nothing newer: back off rather than poll it hot.
            self._reject(entry, RejectReason.EXPIRED, "the source still serves an expired bundle")
            return None
        entry.problem = None
        return self._next_refresh(entry.current)

    def _next_refresh(self, bundle: PolicyBundle | None) -> float:
        delay = self.config.refresh_s
        if bundle is not None:
            remaining = bundle.expires_at - self.config.now()
            delay = min(delay, max(MIN_REFRESH_S, remaining / 2))
        return delay * self.rng.uniform(1 - REFRESH_JITTER, 1.0)


def policy_cache_keys(paths: Sequence[str]) -> tuple[Ed25519PublicKey, ...]:
    """The trusted keys from PEM files (see ``actors.relay.load_public_key``).

    Raises:
        actors.relay.KeyFileError: a file that is not an Ed25519 public key.
    """
    return tuple(load_public_key(path) for path in paths)
