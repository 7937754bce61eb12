"""The adapter's HTTP client: several small httpx connection pools used as one, each on
:mod:`._net`'s network backend.

Why not one pool: httpcore 1.0's pool re-examines every connection for every queued request
each time a request starts or a response closes, and counts idle connections inside that
scan — work quadratic in the pool's size, done on the event loop's thread. With ~100
streams open it costs milliseconds per request; under steady load that delay queues more
requests, which makes the next scan longer, and the host spirals into multi-second stalls
before a request is even sent (measured: ``python -m bench.provider --keepalive 200`` at 100
sessions gave a TTFT p95 of 3.1 s with one pool). Pools of at most ``CONNECTIONS_PER_POOL``
keep every scan short; a stream goes to the pool with the fewest streams open, so
connections stay spread and each pool's keep-alive connections get reused.
"""

from __future__ import annotations

import http.cookiejar
import math
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Final

import httpx

from ._net import FewerPassesTransport

#: The most connections one httpx pool holds (its scans stay in the microseconds).
CONNECTIONS_PER_POOL: Final = 16


class _NoCookies(http.cookiejar.CookieJar):
    """A jar that keeps nothing.

    One client carries every tenant's requests, so a cookie the upstream set in answer to one
    request must not ride along on the next, someone else's. (httpx keeps cookies by
    default; this also saves parsing them on every response.)
    """

    def extract_cookies(self, response: object, request: object) -> None:
        return None

    def set_cookie(self, cookie: http.cookiejar.Cookie) -> None:
        return None


class PooledHttpClient:
    """``stream`` over the least busy of several ``httpx.AsyncClient`` pools.

    Made by :func:`open_pooled_http_client`, which closes every pool on the way out.
    """

    def __init__(self, clients: list[httpx.AsyncClient]) -> None:
        if not clients:
            raise ValueError("at least one client")
        self._clients = clients
        self._open_streams = [0] * len(clients)

    @property
    def pools(self) -> int:
        return len(self._clients)

    @asynccontextmanager
    async def stream(self, method: str, url: str, **kwargs: Any) -> AsyncIterator[httpx.Response]:
        """``httpx.AsyncClient.stream`` on the pool with the fewest open streams.

        Raises:
            httpx.HTTPError: as ``httpx.AsyncClient.stream`` does.
        """
        index = min(range(len(self._open_streams)), key=self._open_streams.__getitem__)
        self._open_streams[index] += 1
        try:
            async with self._clients[index].stream(method, url, **kwargs) as response:
                yield response
        finally:
            self._open_streams[index] -= 1


@asynccontextmanager
async def open_pooled_http_client(
    *, max_connections: int, max_keepalive_connections: int, timeout: httpx.Timeout
) -> AsyncIterator[PooledHttpClient]:
    """Open ``ceil(max_connections / CONNECTIONS_PER_POOL)`` pools sharing the two bounds.

    Args:
        max_connections: connections open at once, over all pools.
        max_keepalive_connections: idle connections kept for reuse, over all pools.
        timeout: httpx's timeouts for every request.

    Yields:
        The client; every pool is closed (and its connections with it) on the way out.
    """
    count = max(1, math.ceil(max_connections / CONNECTIONS_PER_POOL))
    per_pool = math.ceil(max_connections / count)
    keepalive_per_pool = math.ceil(max_keepalive_connections / count)
    # One CA bundle for all the pools: loading it is the slow part of making a pool.
    ssl_context = httpx.create_ssl_context()
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    timeout=timeout,
                    cookies=_NoCookies(),
                    transport=FewerPassesTransport(
                        limits=httpx.Limits(
                            max_connections=per_pool,
                            max_keepalive_connections=keepalive_per_pool,
                        ),
                        ssl_context=ssl_context,
                    ),
                )
            )
            for _ in range(count)
        ]
        yield PooledHttpClient(clients)
