"""The tests' identity and policy: caller tokens the test host trusts, and signed bundles.

Deny by default holds in every test: a host with tools gets a policy source and the test
control-plane key, a bridge gets ``--policy-key``, and the tests that call tools sign a
permissive bundle for their tenant with :func:`write_bundle` (``host_config`` and the relay
``Bridge`` helper do it for the test tenant). Nothing turns policy off.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from actors.policy import mint_caller_token, sign_bundle
from actors.relay import generate_signing_key, save_public_key

TENANT = "acme"
USER = "u1"
#: Every tool, every version, every device: what the tests that are not about policy run under.
PERMISSIVE_RULES: tuple[dict[str, Any], ...] = (
    {"id": "allow-all", "tool": "*", "versions": "*", "effect": "allow", "devices": ["*"]},
)


@functools.cache
def control_plane_key() -> Ed25519PrivateKey:
    """The tests' control-plane signing key (one per test process)."""
    return generate_signing_key()


@functools.cache
def caller_key() -> Ed25519PrivateKey:
    """The tests' caller-token issuer key (one per test process)."""
    return generate_signing_key()


def public_key_file(key: Ed25519PrivateKey, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_public_key(key.public_key(), path)
    return path


def bundle_document(
    tenant: str = TENANT,
    *,
    rules: Sequence[dict[str, Any]] = PERMISSIVE_RULES,
    revision: int = 1,
    policy_id: str = "test-policy",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "iss": "test-control-plane",
        "aud": tenant,
        "policy_id": policy_id,
        "revision": revision,
        "rules": list(rules),
        **extra,
    }


def signed_bundle(
    tenant: str = TENANT,
    *,
    ttl_s: float = 600,
    now: float | None = None,
    key: Ed25519PrivateKey | None = None,
    **document: Any,
) -> str:
    """A bundle for ``tenant`` signed with the test control-plane key."""
    return sign_bundle(
        bundle_document(tenant, **document), key or control_plane_key(), ttl_s=ttl_s, now=now
    )


def permissive_bundle(tenant: str = TENANT) -> str:
    """A permissive bundle for calls a test makes itself, the same for five minutes.

    A device refuses a second, different bundle with the revision it already has, and one
    that lives longer than its maximum TTL (15 minutes): so a new one is signed every five
    minutes, with a higher revision (the time).
    """
    return _permissive_bundle(tenant, int(time.time() // 300))


@functools.cache
def _permissive_bundle(tenant: str, period: int) -> str:
    return signed_bundle(tenant, ttl_s=600, revision=period)


def write_bundle(directory: Path, tenant: str = TENANT, **kwargs: Any) -> str:
    """Sign a bundle (``signed_bundle`` arguments) and put it where a file source finds it."""
    directory.mkdir(parents=True, exist_ok=True)
    jws = signed_bundle(tenant, **kwargs)
    (directory / f"{tenant}.jws").write_text(jws)
    return jws


@attrs.frozen(kw_only=True)
class TestPolicy:
    """A file policy source with the test key trusted."""

    __test__ = False  # not a test class, whatever its name

    directory: Path
    public_key: Path
    state_dir: Path

    @property
    def source(self) -> str:
        return f"file:{self.directory}/{{tenant}}.jws"

    def section(self, **overrides: Any) -> Any:
        from supervisors.host import PolicySection

        values: dict[str, Any] = {
            "source": self.source,
            "trusted_keys": [str(self.public_key)],
            "state_dir": str(self.state_dir),
            "clock_skew_s": 0.0,
        }
        values.update(overrides)
        return PolicySection(**values)

    def write(self, tenant: str = TENANT, **kwargs: Any) -> str:
        return write_bundle(self.directory, tenant, **kwargs)


def make_test_policy(tmp_path: Path, *tenants: str) -> TestPolicy:
    """A policy folder under ``tmp_path`` with a permissive bundle for each tenant (acme)."""
    policy = TestPolicy(
        directory=tmp_path / "policy",
        public_key=public_key_file(control_plane_key(), tmp_path / "keys" / "control-plane.pub"),
        state_dir=tmp_path / "policy-state",
    )
    for tenant in tenants or (TENANT,):
        policy.write(tenant)
    return policy


def caller_public_key(tmp_path: Path) -> Path:
    return public_key_file(caller_key(), tmp_path / "keys" / "caller.pub")


def caller_token(
    tenant: str = TENANT,
    user: str = USER,
    devices: Sequence[str] = ("*",),
    *,
    ttl_s: float = 600,
    now: float | None = None,
    key: Ed25519PrivateKey | None = None,
) -> str:
    return mint_caller_token(
        key or caller_key(),
        tenant=tenant,
        user=user,
        devices=devices,
        ttl_s=ttl_s,
        now=time.time() if now is None else now,
    )


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


class _Metadata(grpc.StreamStreamClientInterceptor, grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Adds fixed metadata (the caller token) to every call of a channel."""

    def __init__(self, metadata: Sequence[tuple[str, str]]) -> None:
        self.metadata = tuple(metadata)

    def _details(self, details: Any) -> Any:
        return details._replace(metadata=(*(details.metadata or ()), *self.metadata))

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)


def with_metadata(channel: grpc.Channel, metadata: Sequence[tuple[str, str]]) -> grpc.Channel:
    """``channel`` with ``metadata`` on every call."""
    return grpc.intercept_channel(channel, _Metadata(metadata))
