"""Decisions: may this tool call run, under which rule, with which caps (pure, no I/O).

Deny by default. The rules that *cover* a call are those for its tool (or ``*``), whose
version range its version satisfies and whose devices include its device (or ``*``):

1. a covering deny rule that matches the call denies it, whatever allows it: a deny rule
   with no paths and no egress matches every call it covers; with paths, a call with a
   path argument matching one of them (ignoring case); with egress, a call reaching one
   of those targets;
2. otherwise the allow rules decide: those naming the device if any of them cover the
   call, else those for ``*`` (a rule for the device beats a rule for ``*``); the first in
   bundle order that admits the call allows it: its path allow-list (if any) holds every
   path argument, and its egress list holds every target the call reaches (a call that
   reaches the network needs one);
3. nothing admits it: ``default-deny``.

Every decision names the rule that made it (``default-deny`` when none did) and why.
Caps of an allowed call are the tightest of the rule's (or the bundle's defaults), the
tool manifest's and the host's or device's own: :func:`tightest_caps`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

from ._bundle import DEFAULT_DENY, Caps, PolicyBundle, Rule
from ._egress import EgressRefused, Target, egress_targets
from ._paths import PathRefused, normalize_path, path_arguments

DENIED: Final = "tool.denied"


@attrs.frozen(kw_only=True)
class CallRequest:
    """What policy looks at in one call: tool, version, device, its path and egress arguments."""

    tool: str
    version: str
    device_id: str
    #: The values of the path arguments, as the call gives them (``path_arguments``).
    paths: tuple[object, ...] = ()
    #: Where the call connects to (``egress_targets``).
    egress: tuple[Target, ...] = ()
    #: Set when an argument could not be read as a target: no rule can admit the call.
    egress_problem: str | None = None

    @classmethod
    def of(cls, *, tool: str, version: str, device_id: str, args: Mapping[str, Any]) -> CallRequest:
        """The request for a call with these arguments."""
        try:
            egress = egress_targets(args)
            problem = None
        except EgressRefused as exc:
            egress, problem = (), str(exc)
        return cls(
            tool=tool,
            version=version,
            device_id=device_id,
            paths=path_arguments(args),
            egress=egress,
            egress_problem=problem,
        )


@attrs.frozen(kw_only=True)
class Decision:
    """The verdict on one call: allowed or not, the rule that said so, why, and caps."""

    allowed: bool
    rule_id: str
    reason: str
    #: The wire code of a denial (``tool.denied``); None when allowed.
    code: str | None = None
    #: The caps policy sets on an allowed call (None: the bundle sets none).
    caps: Caps | None = None

    @property
    def effect(self) -> str:
        return "allow" if self.allowed else "deny"


def _deny(rule_id: str, reason: str) -> Decision:
    return Decision(allowed=False, rule_id=rule_id, reason=reason, code=DENIED)


def _deny_matches(
    rule: Rule, paths: list[str], refused: list[str], egress: tuple[Target, ...]
) -> str | None:
    """Why ``rule`` (a deny rule covering the call) matches it, or None."""
    if not rule.paths and not rule.egress:
        return "it denies every such call"
    # A path that cannot be normalised cannot be shown to stay out of a denied one.
    if rule.paths and refused:
        return f"it denies listed paths and {refused[0]}"
    for path in paths:
        if any(glob.matches(path, ignore_case=True) for glob in rule.paths):
            return f"path {path[:120]!r} is denied"
    for target in egress:
        if any(pattern.matches(target) for pattern in rule.egress):
            return f"{target[0]}:{target[1]} is denied"
    return None


def _admits(rule: Rule, paths: list[str], refused: list[str], request: CallRequest) -> str | None:
    """None if ``rule`` admits the call, else why not."""
    if rule.paths:
        if refused:
            return refused[0]
        if not paths:
            return "the call names no path and the rule allows only listed paths"
        for path in paths:
            if not any(glob.matches(path) for glob in rule.paths):
                return f"path {path[:120]!r} is not in the allow-list"
    if request.egress_problem is not None:
        return request.egress_problem
    if request.egress:
        if not rule.egress:
            return "the call reaches the network and the rule has no egress allow-list"
        for target in request.egress:
            if not any(pattern.matches(target) for pattern in rule.egress):
                return f"{target[0]}:{target[1]} is not in the egress allow-list"
    return None


def decide(bundle: PolicyBundle, request: CallRequest) -> Decision:
    """The decision on ``request`` under ``bundle`` (see the module docstring)."""
    covering = bundle.covering(request.tool, request.version, request.device_id)
    what = f"{request.tool}@{request.version} on device {request.device_id or '(none)'}"
    if not covering:
        return _deny(DEFAULT_DENY, f"no rule covers {what}")
    paths: list[str] = []
    refused: list[str] = []
    for value in request.paths:
        try:
            paths.append(normalize_path(value))
        except PathRefused as exc:
            refused.append(str(exc))
    denies = [rule for rule in covering if not rule.allow]
    # A rule for the device is named before one for every device.
    for rule in sorted(denies, key=lambda r: (r.any_device, r.index)):
        why = _deny_matches(rule, paths, refused, request.egress)
        if why is not None:
            return _deny(rule.id, f"rule {rule.id!r} denies {what}: {why}")
    allows = [rule for rule in covering if rule.allow]
    tier = [rule for rule in allows if not rule.any_device] or allows
    if not tier:
        return _deny(DEFAULT_DENY, f"no rule allows {what}")
    reasons = []
    for rule in tier:
        problem = _admits(rule, paths, refused, request)
        if problem is None:
            caps = rule.caps if rule.caps is not None else bundle.default_caps
            return Decision(
                allowed=True, rule_id=rule.id, reason=f"rule {rule.id!r} allows {what}", caps=caps
            )
        reasons.append(f"{rule.id}: {problem}")
    return _deny(DEFAULT_DENY, f"no rule admits this call of {what} ({'; '.join(reasons)[:400]})")


def offers(bundle: PolicyBundle, *, tool: str, version: str, device_id: str) -> bool:
    """Whether some call of ``tool`` on the device could be allowed (what the model is offered).

    True when an allow rule covers it and no deny rule covers it unconditionally.
    """
    covering = bundle.covering(tool, version, device_id)
    if any(not r.allow and not r.paths and not r.egress for r in covering):
        return False
    return any(rule.allow for rule in covering)


def tightest_caps(*caps: Caps | None) -> Caps:
    """The smallest timeout and byte cap among the given caps (None ones are skipped).

    Raises:
        ValueError: no caps at all.
    """
    present = [c for c in caps if c is not None]
    if not present:
        raise ValueError("no caps to combine")
    return Caps(
        timeout_ms=min(c.timeout_ms for c in present),
        max_bytes=min(c.max_bytes for c in present),
    )
