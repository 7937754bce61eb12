"""Rendezvous hashing of tenants over relay shards: what moves when N changes, and the spread.

    python -m bench.shards [--tenants 100000] [--min 3] [--max 16] [--quick]

The shard choice is the relay's own (``actors.relay.shard_for``'s score: BLAKE2b of tenant
and shard id, highest wins), computed for every tenant against shards ``relay-1`` ..
``relay-(max+1)``. For each N from ``--min`` to ``--max``:

* ``moved_on_grow_pct``: the share of tenants whose shard changes when shard N+1 is added
  (ideal: 1/(N+1) of them, all to the new shard); ``moved_elsewhere``: those that moved
  anywhere but to the new shard (must be 0);
* ``moved_on_loss_pct``: the share that moves when one shard is lost (ideal: 1/N, only the
  lost shard's own tenants), and the spread of the survivors after it;
* ``tenants_max_over_mean``: the most loaded shard's tenants over the mean;
* ``devices_max_over_mean``: the same weighted by devices per tenant, drawn from a Zipf
  distribution (a few large tenants, many small ones; seeded, the same for every N), which
  is what a shard's memory and heartbeat load follow.

The last line is one JSON object. Pure computation: no processes, no sockets.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from actors.relay._shards import score

from ._stats import emit, progress

#: Devices per tenant: Zipf exponent and cap (a tenant of 10,000 devices is a big customer).
ZIPF_EXPONENT = 1.2
MAX_DEVICES_PER_TENANT = 10_000
SEED = 19


def _zipf_sizes(count: int, rng: random.Random) -> list[int]:
    """Devices per tenant: P(size = k) proportional to k**-ZIPF_EXPONENT, 1..the cap."""
    weights = [k**-ZIPF_EXPONENT for k in range(1, MAX_DEVICES_PER_TENANT + 1)]
    return rng.choices(range(1, MAX_DEVICES_PER_TENANT + 1), weights=weights, k=count)


def _owner(scores: list[int], shards: list[int]) -> int:
    # The relay breaks a tie by shard id; 64-bit scores make one practically impossible.
    return max(shards, key=scores.__getitem__)


def _spread(owners: list[int], weights: list[int], shards: list[int]) -> float:
    load = dict.fromkeys(shards, 0)
    for owner, weight in zip(owners, weights, strict=True):
        load[owner] += weight
    mean = sum(load.values()) / len(load)
    return max(load.values()) / mean if mean else 0.0


def simulate(tenants: int, low: int, high: int) -> dict[str, Any]:
    """The figures of the module docstring for ``tenants`` tenants and N in ``low..high``."""
    names = [f"relay-{index + 1}" for index in range(high + 1)]
    started = time.perf_counter()
    table = [[score(f"tenant-{tenant}", name) for name in names] for tenant in range(tenants)]
    progress(f"  {tenants * len(names):,} scores in {time.perf_counter() - started:.1f} s")
    devices = _zipf_sizes(tenants, random.Random(SEED))
    ones = [1] * tenants
    levels: list[dict[str, Any]] = []
    for count in range(low, high + 1):
        shards = list(range(count))
        owners = [_owner(row, shards) for row in table]
        grown = [_owner(row, [*shards, count]) for row in table]
        moved = sum(1 for old, new in zip(owners, grown, strict=True) if old != new)
        elsewhere = sum(
            1 for old, new in zip(owners, grown, strict=True) if old != new and new != count
        )
        survivors = shards[1:]  # shard relay-1 lost; any one is alike by symmetry
        after_loss = [_owner(row, survivors) for row in table]
        lost_moved = sum(1 for old, new in zip(owners, after_loss, strict=True) if old != new)
        levels.append(
            {
                "shards": count,
                "moved_on_grow_pct": round(100 * moved / tenants, 2),
                "ideal_moved_on_grow_pct": round(100 / (count + 1), 2),
                "moved_elsewhere": elsewhere,
                "moved_on_loss_pct": round(100 * lost_moved / tenants, 2),
                "ideal_moved_on_loss_pct": round(100 / count, 2),
                "tenants_max_over_mean": round(_spread(owners, ones, shards), 3),
                "devices_max_over_mean": round(_spread(owners, devices, shards), 3),
                "after_loss_devices_max_over_mean": round(
                    _spread(after_loss, devices, survivors), 3
                ),
            }
        )
    return {
        "bench": "shards",
        "tenants": tenants,
        "devices": sum(devices),
        "zipf_exponent": ZIPF_EXPONENT,
        "levels": levels,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tenants", type=int, default=100_000)
    parser.add_argument("--min", type=int, default=3, help="fewest shards (default 3)")
    parser.add_argument("--max", type=int, default=16, help="most shards (default 16)")
    parser.add_argument("--quick", action="store_true", help="10,000 tenants")
    args = parser.parse_args()
    if not 1 <= args.min <= args.max:
        parser.error("need 1 <= --min <= --max")
    if args.tenants < 1:
        parser.error("--tenants must be at least 1")
    tenants = 10_000 if args.quick else args.tenants
    progress(f"rendezvous hashing of {tenants:,} tenants over {args.min}..{args.max} shards ...")
    result = simulate(tenants, args.min, args.max)
    for level in result["levels"]:
        progress(
            f"  N={level['shards']:>2}: +1 moves {level['moved_on_grow_pct']:5.2f} % "
            f"(ideal {level['ideal_moved_on_grow_pct']:5.2f}), loss moves "
            f"{level['moved_on_loss_pct']:5.2f} %, tenants max/mean "
            f"{level['tenants_max_over_mean']:.3f}, devices {level['devices_max_over_mean']:.3f}"
        )
    result["quick"] = args.quick
    emit(result)


if __name__ == "__main__":
    main()
