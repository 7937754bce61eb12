"""Rendezvous hashing of tenants over relay shards: stable, balanced, minimal movement."""

from __future__ import annotations

import collections
import subprocess
import sys

import pytest

from actors.relay import Redirect, Shard, redirect_for, shard_for
from actors.relay._shards import score

TENANTS = [f"tenant-{i}" for i in range(10_000)]
THREE = [Shard(shard_id=f"relay-{i}", url=f"wss://relay-{i}.relay:8443") for i in range(3)]
FOUR = [*THREE, Shard(shard_id="relay-3", url="wss://relay-3.relay:8443")]


class TestDeterministic:
    """The choice depends only on the tenant and the set of shard ids."""

    def test_same_answer_every_time_and_in_any_order(self) -> None:
        first = [shard_for(t, THREE).shard_id for t in TENANTS[:500]]
        assert first == [shard_for(t, THREE).shard_id for t in TENANTS[:500]]
        assert first == [shard_for(t, THREE[::-1]).shard_id for t in TENANTS[:500]]

    def test_same_answer_in_another_process(self) -> None:
        # Python's hash() is salted per process; the shard choice must not be.
        code = (
            "from actors.relay import Shard, shard_for\n"
            "s = [Shard(shard_id=f'relay-{i}', url='wss://x') for i in range(3)]\n"
            "print(','.join(shard_for(f'tenant-{i}', s).shard_id for i in range(200)))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
            env={"PYTHONHASHSEED": "12345"},
        ).stdout.strip()
        assert out == ",".join(shard_for(t, THREE).shard_id for t in TENANTS[:200])

    def test_known_values(self) -> None:
        # Pinned so that a change of hash (which would move every tenant) fails loudly.
        assert score("acme", "relay-0") == 11321308584669605631
        assert [shard_for(t, THREE).shard_id for t in ("acme", "globex", "initech")] == [
            "relay-2",
            "relay-1",
            "relay-2",
        ]

    def test_url_does_not_decide(self) -> None:
        moved = [Shard(shard_id=s.shard_id, url=s.url + "/new") for s in THREE]
        assert [shard_for(t, THREE).shard_id for t in TENANTS[:500]] == [
            shard_for(t, moved).shard_id for t in TENANTS[:500]
        ]

    def test_length_prefix_separates_fields(self) -> None:
        assert score("ab", "c") != score("a", "bc")


class TestBalance:
    """10,000 tenants spread evenly over 3 shards."""

    def test_within_tolerance(self) -> None:
        counts = collections.Counter(shard_for(t, THREE).shard_id for t in TENANTS)
        assert set(counts) == {"relay-0", "relay-1", "relay-2"}
        for count in counts.values():
            # Expected 3,333; the binomial standard deviation is ~47, so ±10% is ~7 sigma.
            assert 3000 <= count <= 3667, counts


class TestMinimalMovement:
    """A fourth shard takes about a quarter of tenants, and only tenants move to it."""

    def test_only_to_the_new_shard(self) -> None:
        before = {t: shard_for(t, THREE).shard_id for t in TENANTS}
        after = {t: shard_for(t, FOUR).shard_id for t in TENANTS}
        moved = [t for t in TENANTS if before[t] != after[t]]
        assert all(after[t] == "relay-3" for t in moved)
        assert 2250 <= len(moved) <= 2750, len(moved)  # expected 2,500

    def test_removing_a_shard_moves_only_its_tenants(self) -> None:
        before = {t: shard_for(t, FOUR).shard_id for t in TENANTS}
        after = {t: shard_for(t, THREE).shard_id for t in TENANTS}
        assert all(before[t] == "relay-3" for t in TENANTS if before[t] != after[t])


class TestRedirect:
    """A shard answers a tenant that is not its own with a redirect to the owner."""

    def test_redirect_or_none(self) -> None:
        for tenant in TENANTS[:50]:
            owner = shard_for(tenant, THREE)
            assert redirect_for(tenant, THREE, local_shard_id=owner.shard_id) is None
            other = next(s for s in THREE if s != owner)
            assert redirect_for(tenant, THREE, local_shard_id=other.shard_id) == Redirect(
                tenant=tenant, shard_id=owner.shard_id, shard_url=owner.url
            )


class TestBadShardLists:
    """Configuration mistakes are clear errors."""

    def test_empty(self) -> None:
        with pytest.raises(ValueError, match="no relay shards"):
            shard_for("acme", [])

    def test_duplicate_ids(self) -> None:
        with pytest.raises(ValueError, match="unique"):
            shard_for("acme", [THREE[0], THREE[0]])

    def test_local_shard_not_listed(self) -> None:
        with pytest.raises(ValueError, match="not in the shard list"):
            redirect_for("acme", THREE, local_shard_id="relay-9")

    def test_bad_id(self) -> None:
        with pytest.raises(ValueError, match="not a valid id"):
            Shard(shard_id="relay 0", url="wss://x")
