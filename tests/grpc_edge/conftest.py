"""Fixtures for the gRPC edge tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
from edge_helpers import Probe, echo_service, start_server

from supervisors.edges.grpc import GrpcServerHandle, HealthService


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
async def echo_server(probe: Probe) -> AsyncIterator[GrpcServerHandle]:
    async with trio.open_nursery() as nursery:
        health = HealthService()
        handle = await start_server(nursery, [echo_service(probe), health.service])
        yield handle
        nursery.cancel_scope.cancel()
