"""Policy bundles v1: verify a signed bundle, compile its rules, sign one (pure, no I/O).

A bundle is a compact JWS whose payload follows ``contracts/api/policy/v1/bundle.schema.json``.
:func:`verify_bundle` checks, in this order, and stops at the first failure:

1. the JWS: size, shape, header (``alg: EdDSA``, ``typ``, ``kid``), the key by ``kid`` in
   the trusted set, the signature (``_jws``);
2. the payload: strict JSON (no duplicate keys, no integer past 2**53, bounded depth),
   then the schema, and every number an integer written as one (``42``, not ``42.0``);
3. ``aud`` is the tenant asked for; ``exp - iat`` within the maximum TTL; the bundle holds
   from the later of ``iat`` and ``nbf`` until ``exp``, against the clock with a bounded
   skew (so it never holds longer than the maximum TTL, whatever ``nbf`` says);
4. every rule compiles (semver range, path globs, egress entries, unique ids);
5. ``revision`` is above the last one accepted for the tenant (the very same bundle again
   is not a rollback: it is recognised by its digest).

Nothing of an unverified bundle is parsed past its header.
"""

from __future__ import annotations

import functools
import hashlib
import time
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import attrs
import fastjsonschema
import jsonschema
import referencing
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from actors.strict_json import StrictJsonError, loads
from contracts import load_json

from ._egress import EgressPattern
from ._errors import BundleRejected, RejectReason
from ._jws import JwsError, b64url_decode, keys_by_id, read_header, sign_compact, verify_compact
from ._paths import PathGlob
from ._semver import VersionRange

#: The ``typ`` header of a bundle (a caller token's is ``JWT``).
BUNDLE_TYP: Final = "zl-policy+jwt"
FORMAT_VERSION: Final = 1
#: The relay's ``tool.call`` carries the bundle in a field of at most this many characters.
MAX_BUNDLE_CHARS: Final = 65536
#: Bundle payloads nest five levels; this leaves room.
MAX_BUNDLE_DEPTH: Final = 16
DEFAULT_MAX_TTL_S: Final = 900.0
DEFAULT_CLOCK_SKEW_S: Final = 30.0
#: The rule id decisions name when no rule made them.
DEFAULT_DENY: Final = "default-deny"
ANY: Final = "*"
SCHEMA_PATH: Final = "api/policy/v1/bundle.schema.json"
REDACTION_SCHEMA_PATH: Final = "api/policy/v1/redaction.schema.json"


@attrs.frozen(kw_only=True)
class Caps:
    """Caps a rule (or the bundle's defaults) sets on one call."""

    timeout_ms: int
    max_bytes: int


@attrs.frozen(kw_only=True)
class Rule:
    """One compiled rule of a bundle (see the schema for what each field means)."""

    id: str
    tool: str
    versions: VersionRange = attrs.field(eq=False)
    allow: bool
    devices: frozenset[str]
    caps: Caps | None = None
    paths: tuple[PathGlob, ...] = attrs.field(default=(), eq=False)
    egress: tuple[EgressPattern, ...] = attrs.field(default=(), eq=False)
    #: Position in the bundle: among rules of the same kind, earlier ones are tried first.
    index: int = 0

    @property
    def any_device(self) -> bool:
        return ANY in self.devices

    def covers(self, tool: str, version: str, device_id: str) -> bool:
        """Whether the rule is about this tool, version and device (paths aside)."""
        return (
            (self.tool == ANY or self.tool == tool)
            and (self.any_device or device_id in self.devices)
            and self.versions.matches(version)
        )


@attrs.frozen(kw_only=True)
class Accepted:
    """What a verifier remembers of the last bundle it accepted for a tenant."""

    revision: int
    digest: str
    policy_id: str = ""


@attrs.frozen(kw_only=True, eq=False)
class PolicyBundle:
    """A verified bundle: who it is for, how long it holds, its rules and settings.

    ``jws`` is the signed text itself, which the host sends with each tool call so that
    the device can verify it too. ``redaction`` is the verified ``redaction`` section as a
    read-only mapping (empty when the bundle has none).
    """

    policy_id: str
    revision: int
    tenant: str
    issuer: str
    issued_at: int
    not_before: int
    expires_at: int
    rules: tuple[Rule, ...]
    default_caps: Caps | None
    redaction: Mapping[str, Any]
    jws: str
    kid: str
    digest: str
    #: (tool, version, device) -> the rules that cover it; decisions fill it.
    _covering: dict[tuple[str, str, str], tuple[Rule, ...]] = attrs.field(
        factory=dict, repr=False, alias="_covering"
    )

    def expired(self, now: float, skew_s: float = DEFAULT_CLOCK_SKEW_S) -> bool:
        """Whether ``now`` (Unix time) is past ``exp`` plus the allowed skew."""
        return now >= self.expires_at + skew_s

    def age_s(self, now: float) -> float:
        """Seconds since the bundle was issued."""
        return max(0.0, now - self.issued_at)

    @property
    def accepted(self) -> Accepted:
        return Accepted(revision=self.revision, digest=self.digest, policy_id=self.policy_id)

    def covering(self, tool: str, version: str, device_id: str) -> tuple[Rule, ...]:
        """The rules about this tool, version and device, in bundle order (cached)."""
        key = (tool, version, device_id)
        found = self._covering.get(key)
        if found is None:
            found = tuple(rule for rule in self.rules if rule.covers(tool, version, device_id))
            if len(self._covering) >= MAX_COVERING_CACHE:
                self._covering.clear()
            self._covering[key] = found
        return found


#: Distinct (tool, version, device) answers a bundle keeps (a bundle lives minutes).
MAX_COVERING_CACHE: Final = 4096


@functools.cache
def bundle_validator() -> jsonschema.protocols.Validator:
    """The bundle schema's validator, with ``redaction.schema.json`` resolvable by reference."""
    schema = load_json(SCHEMA_PATH)
    redaction = load_json(REDACTION_SCHEMA_PATH)
    registry: referencing.Registry[Any] = referencing.Registry().with_resources(
        [(redaction["$id"], referencing.Resource.from_contents(redaction))]
    )
    jsonschema.Draft202012Validator.check_schema(schema)
    validator: jsonschema.protocols.Validator = jsonschema.Draft202012Validator(
        _anchored(schema), registry=registry
    )
    return validator


def _anchored(node: Any) -> Any:
    """A copy of a schema whose ``pattern``s end with ``\\Z``: JSON Schema's ``$`` is the very
    end of the text, Python's also matches before a final newline."""
    if isinstance(node, dict):
        return {
            key: (
                value[:-1] + r"\Z"
                if key == "pattern" and isinstance(value, str) and value.endswith("$")
                else _anchored(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_anchored(item) for item in node]
    return node


@functools.cache
def _fast_check() -> Callable[[Any], Any]:
    """The bundle schema compiled by ``fastjsonschema`` (redaction section inlined).

    Ten times cheaper than ``jsonschema`` on valid bundles, which is what verifiers mostly
    see; a bundle it refuses is checked again by ``bundle_validator`` for the message.
    """
    schema = _anchored(load_json(SCHEMA_PATH))
    schema["$defs"]["redaction"] = _anchored(load_json(REDACTION_SCHEMA_PATH))
    schema["properties"]["redaction"] = {"$ref": "#/$defs/redaction"}
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    check: Callable[[Any], Any] = fastjsonschema.compile(schema, use_default=False)
    return check


def schema_problem(claims: object) -> str | None:
    """The most relevant reason ``claims`` do not follow the bundle schema, or None."""
    try:
        _fast_check()(claims)
        return None
    except fastjsonschema.JsonSchemaException:
        pass
    error = jsonschema.exceptions.best_match(bundle_validator().iter_errors(claims))  # type: ignore[arg-type]
    if error is None:
        return "the bundle does not follow the schema"
    where = "/".join(str(part) for part in error.absolute_path) or "(top level)"
    return f"{where}: {error.message[:200]}"


def _caps(raw: Mapping[str, Any] | None) -> Caps | None:
    if raw is None:
        return None
    return Caps(timeout_ms=raw["timeoutMs"], max_bytes=raw["maxBytes"])


def compile_rules(raw_rules: Sequence[Mapping[str, Any]]) -> tuple[Rule, ...]:
    """Rules from schema-valid ``rules``.

    Raises:
        ValueError: a duplicate or reserved id, or a range, glob or egress entry that
            does not compile; the message names the rule.
    """
    seen: set[str] = set()
    rules = []
    for index, raw in enumerate(raw_rules):
        rule_id = raw["id"]
        if rule_id in seen or rule_id == DEFAULT_DENY:
            raise ValueError(f"rule {rule_id!r}: ids must be unique and not {DEFAULT_DENY!r}")
        seen.add(rule_id)
        devices = frozenset(raw["devices"])
        if ANY in devices and len(devices) > 1:
            raise ValueError(f'rule {rule_id!r}: devices is either ["*"] or a list of ids')
        try:
            rules.append(
                Rule(
                    id=rule_id,
                    tool=raw["tool"],
                    versions=VersionRange(raw["versions"]),
                    allow=raw["effect"] == "allow",
                    devices=devices,
                    caps=_caps(raw.get("caps")),
                    paths=tuple(PathGlob(text) for text in raw.get("paths", ())),
                    egress=tuple(EgressPattern(text) for text in raw.get("egress", ())),
                    index=index,
                )
            )
        except ValueError as exc:
            raise ValueError(f"rule {rule_id!r}: {exc}") from None
    return tuple(rules)


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return types.MappingProxyType({key: _freeze(item) for key, item in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(item) for item in value)
    return value


def _fraction_at(claims: object) -> str | None:
    """Where the claims hold a number written with a fraction or an exponent, or None.

    JSON Schema counts ``42.0`` and ``4.2e1`` as integers, and the strict reader gives them
    as ``float``; every number of a bundle is an integer (times, revision, caps), and what
    reads them further in (receipts, caps, comparisons with the last revision) must get one.
    """
    stack: list[tuple[str, object]] = [("", claims)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, float):
            return where.lstrip("/") or "(top level)"
        if isinstance(value, dict):
            stack.extend((f"{where}/{key}", item) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((f"{where}/{index}", item) for index, item in enumerate(value))
    return None


def check_claims(claims: object) -> tuple[Rule, ...]:
    """Schema and rule checks of a bundle's claims (no signature, no clock); its rules.

    Raises:
        BundleRejected: ``schema`` or ``invalid``.
    """
    problem = schema_problem(claims)
    if problem is None and (where := _fraction_at(claims)) is not None:
        problem = f"{where}: a number with a fraction or an exponent; write the integer itself"
    if problem is not None:
        raise BundleRejected(
            RejectReason.SCHEMA, f"the bundle does not follow the schema: {problem}"
        )
    assert isinstance(claims, dict)
    if claims["exp"] <= claims["nbf"]:
        raise BundleRejected(RejectReason.INVALID, "exp is not after nbf")
    try:
        return compile_rules(claims["rules"])
    except ValueError as exc:
        raise BundleRejected(RejectReason.INVALID, str(exc)) from None


def bundle_digest(jws: str) -> str:
    """The digest by which a bundle is recognised (``sha256:`` of its compact text)."""
    return "sha256:" + hashlib.sha256(jws.encode("ascii", "replace")).hexdigest()


def verify_bundle(
    jws: str,
    *,
    keys: Mapping[str, Ed25519PublicKey] | Sequence[Ed25519PublicKey],
    tenant: str,
    now: float | None = None,
    max_ttl_s: float = DEFAULT_MAX_TTL_S,
    clock_skew_s: float = DEFAULT_CLOCK_SKEW_S,
    last: Accepted | None = None,
    check_time: bool = True,
) -> PolicyBundle:
    """Verify a signed bundle for ``tenant`` (see the module docstring for the checks).

    Args:
        jws: the bundle as sent (compact JWS).
        keys: the trusted control-plane keys (two at a time while one is rotated out),
            as a sequence or already by key id.
        tenant: the tenant the bundle must be for (``aud``).
        now: Unix time (for tests); the system clock by default.
        max_ttl_s: the longest ``exp - iat`` accepted.
        clock_skew_s: how far the signer's clock and ours may differ.
        last: the bundle last accepted for the tenant (revision floor); None: none yet.
        check_time: False skips ``nbf`` and ``exp`` (a bundle read back from the state
            folder is kept, even expired, to name what the tenant's policy was).

    Returns:
        The verified bundle.

    Raises:
        BundleRejected: with the reason of the first failed check.
    """
    by_id = keys if isinstance(keys, Mapping) else keys_by_id(tuple(keys))
    try:
        header, payload = verify_compact(jws, by_id, typ=BUNDLE_TYP, max_chars=MAX_BUNDLE_CHARS)
    except JwsError as exc:
        raise BundleRejected(exc.reason, exc.message) from None
    try:
        claims = loads(payload, max_bytes=MAX_BUNDLE_CHARS, max_depth=MAX_BUNDLE_DEPTH)
    except StrictJsonError as exc:
        raise BundleRejected(RejectReason.JSON, f"the payload is not strict JSON: {exc}") from None
    rules = check_claims(claims)
    if claims["aud"] != tenant:
        raise BundleRejected(
            RejectReason.WRONG_TENANT, f"the bundle is for tenant {claims['aud']!r}, not {tenant!r}"
        )
    ttl = claims["exp"] - claims["iat"]
    if ttl > max_ttl_s:
        raise BundleRejected(
            RejectReason.TTL_TOO_LONG, f"exp - iat is {ttl} s; at most {max_ttl_s:g} s is accepted"
        )
    current = time.time() if now is None else now
    # From the later of the two: an iat ahead of nbf cannot stretch the bundle's life.
    starts, which = max((claims["nbf"], "nbf"), (claims["iat"], "iat"))
    if check_time and current < starts - clock_skew_s:
        raise BundleRejected(
            RejectReason.NOT_YET_VALID,
            f"the bundle is not valid yet ({which} is {starts - current:.0f} s ahead)",
        )
    if check_time and current >= claims["exp"] + clock_skew_s:
        raise BundleRejected(RejectReason.EXPIRED, "the bundle has expired (exp)")
    digest = bundle_digest(jws)
    revision = claims["revision"]
    if last is not None and (
        revision < last.revision or (revision == last.revision and digest != last.digest)
    ):
        raise BundleRejected(
            RejectReason.ROLLBACK,
            f"revision {revision} is not above {last.revision}, the last accepted for {tenant!r}",
        )
    return _bundle(claims, rules, jws=jws, kid=str(header["kid"]), digest=digest)


def _bundle(
    claims: Mapping[str, Any], rules: tuple[Rule, ...], *, jws: str, kid: str, digest: str
) -> PolicyBundle:
    defaults = claims.get("defaults", {})
    return PolicyBundle(
        policy_id=claims["policy_id"],
        revision=claims["revision"],
        tenant=claims["aud"],
        issuer=claims["iss"],
        issued_at=claims["iat"],
        not_before=claims["nbf"],
        expires_at=claims["exp"],
        rules=rules,
        default_caps=_caps(defaults.get("caps")),
        redaction=_freeze(claims.get("redaction", {})),
        jws=jws,
        kid=kid,
        digest=digest,
    )


def unverified_claims(jws: str) -> dict[str, Any]:
    """The claims of a bundle, read without checking its signature.

    Only for tools that say so (``zl policy explain`` without keys, finding a bundle's
    tenant before verifying it); never for a decision.

    Raises:
        BundleRejected: not a bundle that could be read.
    """
    try:
        read_header(jws, max_chars=MAX_BUNDLE_CHARS)
        claims = loads(b64url_decode(jws.split(".")[1]), max_bytes=MAX_BUNDLE_CHARS)
    except JwsError as exc:
        raise BundleRejected(exc.reason, exc.message) from None
    except (ValueError, StrictJsonError) as exc:
        raise BundleRejected(RejectReason.JSON, f"the payload is unreadable: {exc}") from None
    if not isinstance(claims, dict):
        raise BundleRejected(RejectReason.SCHEMA, "the payload is not a JSON object")
    return claims


def unsigned_bundle(claims: Mapping[str, Any]) -> PolicyBundle:
    """A bundle from claims that carry no signature (``zl policy explain`` of a draft).

    Missing ``v``, ``iat``, ``nbf`` and ``exp`` are filled as signing would fill them.

    Raises:
        BundleRejected: ``schema`` or ``invalid``.
    """
    now = int(time.time())
    filled = {"v": FORMAT_VERSION, "iat": now, "nbf": now, "exp": now + 1, **claims}
    rules = check_claims(filled)
    return _bundle(filled, rules, jws="", kid="", digest="")


def sign_bundle(
    document: Mapping[str, Any],
    key: Ed25519PrivateKey,
    *,
    ttl_s: float,
    now: float | None = None,
) -> str:
    """Sign a bundle document, filling ``v``, ``iat``, ``nbf`` and ``exp`` from ``ttl_s``.

    ``document`` holds the rest of the claims (``iss``, ``aud``, ``policy_id``,
    ``revision``, ``rules``, optional ``defaults`` and ``redaction``).

    Raises:
        BundleRejected: the result would not verify (schema, rules, size).
        ValueError: ``ttl_s`` is not positive.
    """
    if not ttl_s > 0:
        raise ValueError(f"the TTL must be positive, got {ttl_s!r}")
    issued = int(time.time() if now is None else now)
    claims = {
        **{k: v for k, v in document.items() if k not in ("iat", "nbf", "exp")},
        "v": FORMAT_VERSION,
        "iat": issued,
        "nbf": issued,
        "exp": issued + max(1, round(ttl_s)),
    }
    check_claims(claims)
    jws = sign_compact(claims, key, typ=BUNDLE_TYP)
    if len(jws) > MAX_BUNDLE_CHARS:
        raise BundleRejected(
            RejectReason.TOO_LARGE,
            f"the signed bundle has {len(jws)} characters; at most {MAX_BUNDLE_CHARS}",
        )
    return jws
