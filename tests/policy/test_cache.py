"""The PolicyCache actor: pull, verify, refresh before expiry, back off, never roll back.

The source is an in-memory stand-in shaped like ``BundleSource`` (tests of the HTTPS
source against ``zl policy serve`` are in test_serve.py); time is Trio's autojump clock,
with the wall clock the cache sees derived from it.
"""

from __future__ import annotations

import hmac
import itertools
import json
import logging
import time
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing
from cryptography.hazmat.primitives import serialization

from actors.errors import PolicyError
from actors.policy import (
    BUNDLE_TYP,
    Fetched,
    GetPolicy,
    PolicyCache,
    PolicyCacheConfig,
    PolicyView,
    RefreshNow,
    SourceError,
    StateError,
)
from actors.redaction import TenantRedaction
from actors.relay import generate_signing_key
from actors.tools import PolicyGate
from tests._policy import control_plane_key, signed_bundle
from tests.policy.test_bundle import b64, claims, forge, signed_raw
from zl_actors import ActorRef, ActorSpec, Backoff, open_actor_system

EPOCH = 1_800_000_000.0


@attrs.define
class MemorySource:
    """Answers like a control plane: the bundle of each tenant, ETags, outages."""

    description: str = "memory"
    bundles: dict[str, str] = attrs.Factory(dict)
    down: bool = False
    fetches: list[tuple[float, str | None]] = attrs.Factory(list)

    async def fetch(self, tenant: str, etag: str | None) -> Fetched:
        self.fetches.append((trio.current_time(), etag))
        await trio.sleep(0.01)
        if self.down:
            raise SourceError("connection refused")
        text = self.bundles.get(tenant)
        if text is None:
            return Fetched(status="missing")
        tag = str(hash(text))
        if tag == etag:
            return Fetched(status="not_modified", etag=tag)
        return Fetched(status="bundle", text=text, etag=tag)

    async def aclose(self) -> None:
        return None


def now() -> float:
    return EPOCH + trio.current_time()


def config(**overrides: object) -> PolicyCacheConfig:
    values: dict[str, object] = {
        "source": "file:/unused/{tenant}",
        "trusted_keys": (control_plane_key().public_key(),),
        "clock_skew_s": 0.0,
        "refresh_s": 30.0,
        "retry": Backoff(initial_s=1.0, max_s=8.0, jitter=0.0),
        "now": now,
    }
    values.update(overrides)
    return PolicyCacheConfig(**values)  # type: ignore[arg-type]


def bundle(revision: int = 1, ttl_s: float = 600, tenant: str = "acme", **kwargs: object) -> str:
    return signed_bundle(tenant, revision=revision, ttl_s=ttl_s, now=now(), **kwargs)  # type: ignore[arg-type]


async def ask(cache: ActorRef[object], tenant: str = "acme") -> PolicyView:
    view: PolicyView = await cache.ask(GetPolicy(tenant=tenant), timeout=60)  # type: ignore[arg-type]
    return view


@pytest.fixture
def rejections() -> list[str]:
    return []


async def start(
    system: object, source: MemorySource, rejections: list[str], **overrides: object
) -> ActorRef[object]:
    settings = config(**overrides)
    return await system.spawn(  # type: ignore[attr-defined, no-any-return]
        ActorSpec(
            name="policy_cache",
            factory=lambda: PolicyCache(settings, on_rejection=rejections.append, source=source),
        )
    )


class TestPull:
    """First ask waits for a fetch; later asks are answered from memory; ETags are sent."""

    async def test_first_ask_and_etag(
        self, autojump_clock: trio.testing.MockClock, rejections: list[str]
    ) -> None:
        source = MemorySource(bundles={"acme": bundle()})
        async with open_actor_system("t") as system:
            cache = await start(system, source, rejections)
            view = await ask(cache)
            assert view.bundle is not None
            assert view.bundle.revision == 1
            await trio.sleep(31)
            assert len(source.fetches) == 2
            assert source.fetches[1][1] is not None, "the second fetch sends If-None-Match"
            assert (await ask(cache)).bundle is view.bundle

    async def test_no_bundle_is_missing(
        self, autojump_clock: trio.testing.MockClock, rejections: list[str]
    ) -> None:
        async with open_actor_system("t") as system:
            cache = await start(system, MemorySource(), rejections)
            view = await ask(cache)
            assert view.bundle is None
            with pytest.raises(PolicyError) as caught:
                PolicyGate(cache=cache, clock_skew_s=0, now=now).usable(view)  # type: ignore[arg-type]
            assert caught.value.code == "policy.missing"

    async def test_refresh_now(
        self, autojump_clock: trio.testing.MockClock, rejections: list[str]
    ) -> None:
        source = MemorySource(bundles={"acme": bundle(1)})
        async with open_actor_system("t") as system:
            cache = await start(system, source, rejections)
            await ask(cache)
            source.bundles["acme"] = bundle(2)
            await cache.send(RefreshNow(tenant="acme"))  # type: ignore[arg-type]
            await trio.sleep(1)
            assert (await ask(cache)).bundle.revision == 2  # type: ignore[union-attr]


def hs256_with_the_public_key() -> str:
    public_pem = (
        control_plane_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = {"alg": "HS256", "typ": BUNDLE_TYP}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims()).encode())}"
    return f"{signing_input}.{b64(hmac.new(public_pem, signing_input.encode(), 'sha256').digest())}"


def tampered() -> str:
    head, _, signature = bundle(2).split(".")
    return f"{head}.{b64(json.dumps(claims(revision=2)).encode())}.{signature}"


class TestRejections:
    """A bundle that fails a check never replaces the current one; logged and counted."""

    @pytest.mark.parametrize(
        ("make", "reason"),
        [
            (lambda: bundle(2).rsplit(".", 1)[0] + ".", "unsigned"),
            (lambda: signed_bundle("acme", revision=2, key=generate_signing_key()), "unknown_kid"),
            (lambda: bundle(2, tenant="globex"), "wrong_tenant"),
            (lambda: signed_bundle("acme", revision=2, ttl_s=60, now=now() - 3600), "expired"),
            (lambda: bundle(1, policy_id="replayed"), "rollback"),
            (lambda: bundle(2, ttl_s=3600), "ttl_too_long"),
            (lambda: "x" * 70_000, "too_large"),
            (lambda: forge({"alg": "none", "typ": BUNDLE_TYP}, claims(), b""), "unsigned"),
            (hs256_with_the_public_key, "algorithm"),
            (tampered, "bad_signature"),
            (
                lambda: signed_bundle("acme", revision=2, ttl_s=60, now=now() + 3600),
                "not_yet_valid",
            ),
            (lambda: signed_raw(json.dumps(claims())[:-1].encode() + b', "revision": 9}'), "json"),
        ],
    )
    async def test_rejected_bundle_keeps_the_current_one(
        self,
        autojump_clock: trio.testing.MockClock,
        rejections: list[str],
        caplog: pytest.LogCaptureFixture,
        make: object,
        reason: str,
    ) -> None:
        source = MemorySource(bundles={"acme": bundle(1)})
        async with open_actor_system("t") as system:
            cache = await start(system, source, rejections, max_ttl_s=900)
            first = (await ask(cache)).bundle
            source.bundles["acme"] = make()  # type: ignore[operator]
            with caplog.at_level(logging.WARNING, logger="zl.policy"):
                await cache.send(RefreshNow(tenant="acme"))  # type: ignore[arg-type]
                await trio.sleep(0.5)
            view = await ask(cache)
            assert view.bundle is first
            assert rejections == [reason]
            assert f"bundle rejected ({reason})" in caplog.text
            assert view.problem


class TestWhatElseABundleSets:
    """A bundle's redaction section is put in force with it, or the bundle is refused whole."""

    # Real time: the state is written from a worker thread (see TestRestart).
    async def test_a_section_the_redactor_refuses_rejects_the_bundle(
        self, rejections: list[str], tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        from supervisors.host import redaction_from_bundles

        tenants = TenantRedaction()
        good = {"patterns": [{"name": "employee_id", "pattern": "EMP-[0-9]{6}"}]}
        bad = {
            "patterns": [
                {"name": "ticket", "pattern": "TCK-[0-9]{4}"},
                {"name": "pin", "pattern": "(?<=PIN:)[0-9]{4}"},
            ]
        }
        state = tmp_path / "state"
        source = MemorySource(bundles={"acme": signed_bundle("acme", revision=1, redaction=good)})
        settings = config(state_dir=state, now=time.time)
        async with open_actor_system("t") as system:
            cache = await system.spawn(
                ActorSpec(
                    name="policy_cache",
                    factory=lambda: PolicyCache(
                        settings,
                        on_rejection=rejections.append,
                        source=source,
                        prepare=redaction_from_bundles(tenants),
                    ),
                )
            )
            first = (await ask(cache)).bundle
            assert first is not None
            assert [p.name for p in tenants.settings_for("acme").patterns] == ["employee_id"]
            source.bundles["acme"] = signed_bundle("acme", revision=2, redaction=bad)
            with caplog.at_level(logging.WARNING, logger="zl.policy"):
                await cache.send(RefreshNow(tenant="acme"))  # type: ignore[arg-type]
                with trio.fail_after(10):
                    while not rejections:
                        await trio.sleep(0.02)
            view = await ask(cache)
            # Nothing of revision 2 is in force: not its rules, not its good pattern.
            assert view.bundle is first
            assert [p.name for p in tenants.settings_for("acme").patterns] == ["employee_id"]
            assert rejections == ["redaction"]
            assert "bundle rejected (redaction): redaction.patterns[1] (pin)" in caplog.text
            assert "RE2 cannot compile" in caplog.text
        # Nor was its revision recorded: a restart takes revision 1 back, pattern and all.
        assert json.loads((state / "acme.json").read_text())["revision"] == 1
        restarted = TenantRedaction()
        async with open_actor_system("t") as system:
            source.down = True
            cache = await system.spawn(
                ActorSpec(
                    name="policy_cache",
                    factory=lambda: PolicyCache(
                        settings, source=source, prepare=redaction_from_bundles(restarted)
                    ),
                )
            )
            assert (await ask(cache)).bundle.revision == 1  # type: ignore[union-attr]
            assert [p.name for p in restarted.settings_for("acme").patterns] == ["employee_id"]

    async def test_a_bundle_without_a_section_gives_the_default(
        self, autojump_clock: trio.testing.MockClock, rejections: list[str]
    ) -> None:
        from supervisors.host import redaction_from_bundles

        tenants = TenantRedaction()
        tenants.update_from_bundle("acme", {"pseudonyms": True})
        source = MemorySource(bundles={"acme": bundle(1)})
        async with open_actor_system("t") as system:
            cache = await system.spawn(
                ActorSpec(
                    name="policy_cache",
                    factory=lambda: PolicyCache(
                        config(), source=source, prepare=redaction_from_bundles(tenants)
                    ),
                )
            )
            assert (await ask(cache)).bundle is not None
        assert tenants.settings_for("acme") is tenants.default


class TestExpiry:
    """Past exp with nothing fresh: denied policy.expired; a fresh bundle restores calls."""

    async def test_control_plane_down_longer_than_the_ttl(
        self, autojump_clock: trio.testing.MockClock, rejections: list[str]
    ) -> None:
        source = MemorySource(bundles={"acme": bundle(1, ttl_s=20)})
        async with open_actor_system("t") as system:
            cache = await start(system, source, rejections)
            gate = PolicyGate(cache=cache, clock_skew_s=0, now=now)  # type: ignore[arg-type]
            gate.usable(await ask(cache))
            source.down = True
            await trio.sleep(25)
            with pytest.raises(PolicyError) as caught:
                gate.usable(await ask(cache))
            assert caught.value.code == "policy.expired"
            assert "unavailable" in rejections
            # Retries back off (1, 2, 4, 8, 8 s...), they do not hammer the control plane.
            down = [t for t, _ in source.fetches[1:]]
            gaps = [b - a for a, b in itertools.pairwise(down)]
            assert gaps
            assert max(gaps) <= 8.5
            assert gaps[-1] > gaps[0]
            source.down = False
            source.bundles["acme"] = bundle(2, ttl_s=20)
            await trio.sleep(9)
            assert gate.usable(await ask(cache)).revision == 2

    async def test_refreshes_before_expiry(
        self, autojump_clock: trio.testing.MockClock, rejections: list[str]
    ) -> None:
        source = MemorySource(bundles={"acme": bundle(1, ttl_s=10)})
        async with open_actor_system("t") as system:
            cache = await start(system, source, rejections)
            await ask(cache)
            source.bundles["acme"] = bundle(2, ttl_s=10)
            await trio.sleep(6)
            # Refreshed at about half the remaining life, not at refresh_s (30 s).
            assert (await ask(cache)).bundle.revision == 2  # type: ignore[union-attr]


class TestRestart:
    """The last accepted revision is on disk: a restarted cache refuses a rollback."""

    # Real time here: the state is written from a worker thread, which the autojump clock
    # does not wait for.
    async def test_restart_refuses_a_lower_revision(
        self, rejections: list[str], tmp_path: Path
    ) -> None:
        state = tmp_path / "state"
        older = bundle(4)
        source = MemorySource(bundles={"acme": bundle(5)})
        async with open_actor_system("t") as system:
            cache = await start(system, source, rejections, state_dir=state)
            assert (await ask(cache)).bundle.revision == 5  # type: ignore[union-attr]
        assert (state / "acme.json").exists()
        # The control plane (or an attacker in its place) now serves an older, valid bundle.
        source = MemorySource(bundles={"acme": older})
        async with open_actor_system("t") as system:
            cache = await start(system, source, rejections, state_dir=state)
            await ask(cache)
            with trio.fail_after(10):
                while not rejections:
                    await trio.sleep(0.02)
            view = await ask(cache)
            assert view.bundle is not None
            assert view.bundle.revision == 5
            assert rejections == ["rollback"]

    async def test_restart_takes_back_the_same_bundle(
        self, rejections: list[str], tmp_path: Path
    ) -> None:
        state = tmp_path / "state"
        source = MemorySource(bundles={"acme": bundle(5)})
        for _ in range(2):
            async with open_actor_system("t") as system:
                cache = await start(system, source, rejections, state_dir=state)
                assert (await ask(cache)).bundle.revision == 5  # type: ignore[union-attr]
                await trio.sleep(0.2)
        assert rejections == []

    async def test_unreadable_state_stops_the_cache(
        self, tmp_path: Path, rejections: list[str]
    ) -> None:
        state = tmp_path / "state"
        state.mkdir()
        (state / "acme.json").write_text("{not json")
        with pytest.raises(BaseException) as caught:  # noqa: PT011 - the actor system wraps it
            async with open_actor_system("t") as system:
                await start(system, MemorySource(), rejections, state_dir=state)
        assert "policy state file" in repr(caught.value) or isinstance(caught.value, StateError)
