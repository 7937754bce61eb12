"""How the tool gateway consults policy: the ``PolicyCache``'s view of a tenant, or off.

``PolicyGate`` asks the cache once per session's offer and once per call; the decision
itself is pure (``actors.policy.decide``) and made by the call, which knows its arguments.
Policy off (``cache`` None) is a development setting only: the host logs a warning when it
starts that way, and receipts then carry no decision.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

import attrs

from actors.errors import PolicyError
from actors.policy import (
    DEFAULT_CLOCK_SKEW_S,
    GetPolicy,
    PolicyBundle,
    PolicyMessage,
    PolicyView,
)
from zl_actors import ActorError, ActorRef

#: Asking the cache; its first answer for a tenant waits for one fetch (bounded there).
POLICY_ASK_TIMEOUT_S: Final = 15.0


@attrs.frozen(kw_only=True)
class PolicyGate:
    """The gateway's access to policy.

    Args:
        cache: the host's ``PolicyCache``; None turns policy off (development only).
        clock_skew_s: how far past ``exp`` a bundle still holds.
        now: the wall clock (Unix time).
    """

    cache: ActorRef[PolicyMessage] | None
    clock_skew_s: float = DEFAULT_CLOCK_SKEW_S
    now: Callable[[], float] = time.time

    @property
    def enabled(self) -> bool:
        return self.cache is not None

    async def view(self, tenant: str) -> PolicyView | None:
        """The tenant's policy now (None when policy is off).

        Raises:
            PolicyError: ``policy.missing`` when the cache does not answer.
        """
        if self.cache is None:
            return None
        try:
            return await self.cache.ask(GetPolicy(tenant=tenant), timeout=POLICY_ASK_TIMEOUT_S)
        except ActorError as exc:
            raise PolicyError("policy.missing", f"the policy cache did not answer: {exc}") from None

    def usable(self, view: PolicyView) -> PolicyBundle:
        """The view's bundle if calls may be decided under it now.

        Raises:
            PolicyError: ``policy.missing`` (no bundle was ever accepted) or
                ``policy.expired`` (the newest one is past its ``exp``).
        """
        bundle = view.bundle
        if bundle is None:
            why = f": {view.problem}" if view.problem else ""
            raise PolicyError("policy.missing", f"no policy bundle for tenant {view.tenant}{why}")
        if bundle.expired(self.now(), self.clock_skew_s):
            raise PolicyError(
                "policy.expired",
                f"policy {bundle.policy_id} revision {bundle.revision} expired and no newer "
                "bundle has arrived",
            )
        return bundle


#: A gate with policy off, for embedding and benchmarks that compare with it.
POLICY_OFF: Final = PolicyGate(cache=None)
