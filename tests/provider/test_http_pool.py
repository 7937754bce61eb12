"""The adapter's HTTP client: small pools, streams spread over them, bounds kept, reuse kept."""

from __future__ import annotations

import math

import httpx
import pytest
import trio

from actors.provider._http_pool import CONNECTIONS_PER_POOL, open_pooled_http_client
from actors.provider.fake_upstream import FakeUpstream, Script

TIMEOUT = httpx.Timeout(5.0)
BODY = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


class TestPooledHttpClient:
    @pytest.mark.parametrize(
        ("max_connections", "pools"),
        [(1, 1), (CONNECTIONS_PER_POOL, 1), (CONNECTIONS_PER_POOL + 1, 2), (100, 7)],
    )
    async def test_pool_count_follows_the_bound(self, max_connections: int, pools: int) -> None:
        async with open_pooled_http_client(
            max_connections=max_connections, max_keepalive_connections=0, timeout=TIMEOUT
        ) as client:
            assert client.pools == pools

    async def test_the_pools_share_one_tls_context(self) -> None:
        """Loading the CA bundle is ~25 ms of the event loop: once, not twice per pool."""
        async with open_pooled_http_client(
            max_connections=100, max_keepalive_connections=0, timeout=TIMEOUT
        ) as client:
            pools = [http_client._transport._pool for http_client in client._clients]  # type: ignore[attr-defined]
            assert len({id(pool._ssl_context) for pool in pools}) == 1

    async def test_concurrent_streams_spread_and_stay_within_the_bound(
        self, upstream: FakeUpstream
    ) -> None:
        # Every stream holds its connection for a while, so all 40 are open at once.
        upstream.default = Script(first_token_delay=0.3)

        async def one() -> None:
            async with client.stream("POST", upstream.url + "/chat/completions", json=BODY) as r:
                await r.aread()

        async with open_pooled_http_client(
            max_connections=40, max_keepalive_connections=40, timeout=TIMEOUT
        ) as client:
            with trio.fail_after(20):
                async with trio.open_nursery() as nursery:
                    for _ in range(40):
                        nursery.start_soon(one)
            # 40 streams at once need 40 connections: three pools of 14 hold them all only if
            # the streams were spread (one pool alone would have made 26 of them wait).
            assert upstream.total_connections == 40
            # A second wave reuses the kept-alive connections instead of opening new ones.
            upstream.default = Script()
            with trio.fail_after(20):
                async with trio.open_nursery() as nursery:
                    for _ in range(40):
                        nursery.start_soon(one)
            assert upstream.total_connections == 40
        with trio.fail_after(5):
            await upstream.wait_until(open_connections=0)

    async def test_more_streams_than_connections_wait_for_one(self, upstream: FakeUpstream) -> None:
        upstream.default = Script(first_token_delay=0.05)
        async with open_pooled_http_client(
            max_connections=CONNECTIONS_PER_POOL + 1, max_keepalive_connections=0, timeout=TIMEOUT
        ) as client:
            bound = 2 * math.ceil((CONNECTIONS_PER_POOL + 1) / 2)

            async def one() -> None:
                async with client.stream(
                    "POST", upstream.url + "/chat/completions", json=BODY
                ) as response:
                    assert upstream.open_connections <= bound
                    await response.aread()

            with trio.fail_after(20):
                async with trio.open_nursery() as nursery:
                    for _ in range(60):
                        nursery.start_soon(one)
        assert len(upstream.requests) == 60
