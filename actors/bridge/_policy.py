"""The device's own enforcement of the signed policy: a host cannot widen what it may do.

Every ``tool.call`` must carry the bundle the host decided it under (``policy``). The
bridge verifies it with the control plane's public keys it was configured with (never a
key the host sends), for its own tenant, within the TTL and clock skew, and at or above the
highest revision it has accepted; then decides the call itself, with the version *its*
MCP server announced and the paths as they resolve on this disk (``_paths``). It refuses:

- a call with no bundle (``policy.missing``), a bundle that does not verify
  (``policy.bad_signature`` / ``policy.invalid``) or has expired (``policy.expired``);
- a call for another tenant or device, or one the bundle does not allow (``tool.denied``);
- a call whose caps (or deadline) are wider than the bundle's for that rule (``tool.denied``).

This holds for every tool the bridge serves, a third-party MCP server's included: a tool
the bundle does not name never runs. The bridge's own limits (``LocalCaps``, its roots)
apply on top and can only narrow what the bundle allows.
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import attrs
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from actors.errors import PolicyError, ToolError
from actors.policy import (
    DEFAULT_CLOCK_SKEW_S,
    DEFAULT_MAX_TTL_S,
    Accepted,
    CallRequest,
    Decision,
    EgressRefused,
    PathRefused,
    PolicyBundle,
    decide,
    egress_targets,
    keys_by_id,
    path_arguments,
    verify_bundle,
)
from actors.relay import ToolCall

from ._paths import resolve_on_device

log = logging.getLogger("zl.bridge.policy")

#: Verified bundles remembered by their text (a host sends the same one with every call).
VERIFIED_CACHE: Final = 8


@attrs.frozen(kw_only=True)
class DevicePolicyConfig:
    """What the bridge checks bundles against.

    Args:
        trusted_keys: the control plane's public keys (two at once while rotating).
        tenant: this device's tenant (its device token says so).
        device_id: this device.
        roots: the real paths of the folders the device's tools serve, first one first;
            empty: paths are matched as written (no symlinks or case to resolve).
        max_ttl_s: the longest ``exp - iat`` accepted.
        clock_skew_s: how far the control plane's clock and ours may differ.
        now: the wall clock (Unix time).
    """

    trusted_keys: tuple[Ed25519PublicKey, ...]
    tenant: str
    device_id: str
    roots: tuple[str, ...] = ()
    max_ttl_s: float = DEFAULT_MAX_TTL_S
    clock_skew_s: float = DEFAULT_CLOCK_SKEW_S
    now: Callable[[], float] = time.time


class DevicePolicy:
    """Checks each call against its bundle (see the module docstring)."""

    def __init__(self, config: DevicePolicyConfig) -> None:
        self.config = config
        self.keys = keys_by_id(config.trusted_keys)
        self.last: Accepted | None = None
        self.verified: OrderedDict[str, PolicyBundle] = OrderedDict()

    def _bundle(self, jws: str) -> PolicyBundle:
        config = self.config
        now = config.now()
        bundle = self.verified.get(jws)
        if bundle is None:
            bundle = verify_bundle(
                jws,
                keys=self.keys,
                tenant=config.tenant,
                now=now,
                max_ttl_s=config.max_ttl_s,
                clock_skew_s=config.clock_skew_s,
                last=self.last,
            )
            self.verified[jws] = bundle
            if len(self.verified) > VERIFIED_CACHE:
                self.verified.popitem(last=False)
            if self.last is None or bundle.revision > self.last.revision:
                self.last = bundle.accepted
                log.info(
                    "bridge: policy %s revision %d in force", bundle.policy_id, bundle.revision
                )
        elif bundle.expired(now, config.clock_skew_s):
            raise PolicyError("policy.expired", "the call's policy bundle has expired")
        if self.last is not None and bundle.revision < self.last.revision:
            raise PolicyError(
                "policy.invalid",
                f"revision {bundle.revision} is older than {self.last.revision}, already in force",
            )
        return bundle

    def _request(self, call: ToolCall, version: str) -> CallRequest:
        roots = self.config.roots
        paths: list[object] = []
        for value in path_arguments(call.args):
            if roots:
                try:
                    value = resolve_on_device(value, roots)
                except PathRefused as exc:
                    raise ToolError("tool.denied", str(exc)) from None
            paths.append(value)
        try:
            egress, problem = egress_targets(call.args), None
        except EgressRefused as exc:
            egress, problem = (), str(exc)
        return CallRequest(
            tool=call.tool,
            version=version,
            device_id=call.device_id,
            paths=tuple(paths),
            egress=egress,
            egress_problem=problem,
        )

    def check(self, call: ToolCall, *, version: str) -> Decision:
        """Allow ``call`` (the tool's own ``version`` on this device), or raise why not.

        Raises:
            PolicyError: ``policy.missing``, ``policy.expired``, ``policy.bad_signature``,
                ``policy.invalid``.
            ToolError: ``tool.denied``: another tenant or device, not allowed, a path that
                resolves outside the roots, or caps wider than the bundle's.
        """
        config = self.config
        if call.tenant != config.tenant or call.device_id != config.device_id:
            raise ToolError(
                "tool.denied",
                f"the call is for {call.tenant}/{call.device_id}; this device is "
                f"{config.tenant}/{config.device_id}",
            )
        if not call.policy:
            raise PolicyError("policy.missing", "the call carries no policy bundle")
        bundle = self._bundle(call.policy)
        decision = decide(bundle, self._request(call, version))
        if not decision.allowed:
            raise ToolError("tool.denied", f"{decision.reason} (rule {decision.rule_id})")
        caps = decision.caps
        if caps is not None and (
            call.caps.timeout_ms > caps.timeout_ms
            or call.deadline_ms > caps.timeout_ms
            or call.caps.max_bytes > caps.max_bytes
        ):
            raise ToolError(
                "tool.denied",
                f"the call's caps (timeoutMs {call.caps.timeout_ms}, maxBytes "
                f"{call.caps.max_bytes}) are wider than rule {decision.rule_id}'s "
                f"(timeoutMs {caps.timeout_ms}, maxBytes {caps.max_bytes})",
            )
        return decision


def bundle_revision(policy: DevicePolicy | None) -> int | None:
    """The highest revision the device has accepted (for its status line)."""
    return None if policy is None or policy.last is None else policy.last.revision


def tenant_of_token(token: str) -> str:
    """The tenant a device token names (read, not verified: it is the device's own token).

    Raises:
        ValueError: the token cannot be read or names no tenant.
    """
    try:
        claims: Mapping[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError as exc:
        raise ValueError(f"the device token cannot be read: {exc}") from None
    tenant = claims.get("tenant")
    if not isinstance(tenant, str) or not tenant:
        raise ValueError("the device token names no tenant")
    return tenant


def real_roots(roots: Sequence[str]) -> tuple[str, ...]:
    """The roots as real paths (symlinks in them resolved), as ``resolve_on_device`` wants."""
    return tuple(os.path.realpath(os.path.expanduser(root)) for root in roots)
