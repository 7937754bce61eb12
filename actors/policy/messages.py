"""The policy cache's protocol."""

from __future__ import annotations

import attrs

from zl_actors import Request

from ._bundle import PolicyBundle


@attrs.frozen(kw_only=True)
class PolicyView:
    """A tenant's policy as the cache holds it now.

    ``bundle`` is the newest verified bundle, kept past its ``exp`` (the caller checks the
    time: an expired bundle still says which tools the tenant's policy offered, while every
    call is denied ``policy.expired``); None when no bundle was ever accepted
    (``policy.missing``). ``problem`` is why the last refresh failed, if it did.
    """

    tenant: str
    bundle: PolicyBundle | None
    problem: str | None = None


@attrs.frozen(kw_only=True)
class GetPolicy(Request[PolicyView]):
    """The tenant's policy; the first ask for a tenant waits for its first fetch."""

    tenant: str


@attrs.frozen(kw_only=True)
class RefreshNow:
    """Fetch the tenant's bundle now instead of at its next scheduled refresh."""

    tenant: str


PolicyMessage = GetPolicy | RefreshNow
