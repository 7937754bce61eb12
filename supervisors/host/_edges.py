"""The host's edges as actors: the gRPC server and the debug HTTP endpoint.

Each runs its server in the actor's nursery, so the supervisor owns the listening socket:
a crashed server is restarted like any other child, and stopping the host closes it.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from typing import Any

import attrs

from actors.telemetry import Telemetry
from supervisors.edges.debug_http import DebugHttpBinding, DebugHttpConfig, serve_debug_http
from supervisors.edges.grpc import (
    OVERALL,
    GrpcServerConfig,
    GrpcServerHandle,
    HealthService,
    Service,
    ServingStatus,
    serve_grpc,
)
from zl_actors import Actor, ActorContext, Request


@attrs.frozen(kw_only=True)
class GetAddress(Request[tuple[str, int]]):
    pass


@attrs.frozen(kw_only=True)
class DrainAndStop(Request[None]):
    """Stop accepting, let streams finish within ``grace_s``, then end them."""

    grace_s: float


GrpcControl = GetAddress | DrainAndStop


class GrpcServerActor(Actor[GrpcControl]):
    """Serves the host's gRPC services; answers its bound address; drains on request."""

    mailbox_capacity = 4

    def __init__(
        self,
        *,
        services: Sequence[Service],
        config: GrpcServerConfig,
        ssl_context: ssl.SSLContext | None,
        health: HealthService,
    ) -> None:
        self.services = services
        self.config = config
        self.ssl_context = ssl_context
        self.health = health
        self.server: GrpcServerHandle | None = None

    async def on_start(self, ctx: ActorContext[GrpcControl]) -> None:
        self.server = await ctx.nursery.start(
            lambda task_status: serve_grpc(
                self.services,
                config=self.config,
                ssl_context=self.ssl_context,
                task_status=task_status,
            )
        )
        # Every served service by name too: health-checking clients (grpc_health_probe,
        # load balancers) ask for the service they route, not only for the server ("").
        for name in self._names():
            self.health.set_status(name, ServingStatus.SERVING)

    def _names(self) -> list[str]:
        return [OVERALL, *(service.name for service in self.services)]

    async def handle(self, message: GrpcControl, ctx: ActorContext[GrpcControl]) -> Any:
        server = self.server
        assert server is not None
        match message:
            case GetAddress():
                return server.address
            case DrainAndStop(grace_s=grace_s):
                for name in self._names():
                    self.health.set_status(name, ServingStatus.NOT_SERVING)
                server.shutdown(grace_s)
                reply = ctx.defer_reply()

                async def wait() -> None:
                    await server.wait_stopped()
                    reply.resolve(None)

                ctx.nursery.start_soon(wait)
        return None


@attrs.frozen(kw_only=True)
class GetBinding(Request[DebugHttpBinding]):
    pass


class DebugHttpActor(Actor[GetBinding]):
    """Serves ``/debug/actors`` (and, with telemetry, ``/metrics`` and ``/debug/dashboard``)
    for the system it runs in."""

    mailbox_capacity = 4

    def __init__(self, *, config: DebugHttpConfig, telemetry: Telemetry | None = None) -> None:
        self.config = config
        self.telemetry = telemetry
        self.binding: DebugHttpBinding | None = None

    async def on_start(self, ctx: ActorContext[GetBinding]) -> None:
        system = ctx.system
        self.binding = await ctx.nursery.start(
            lambda task_status: serve_debug_http(
                system, config=self.config, telemetry=self.telemetry, task_status=task_status
            )
        )

    async def handle(self, message: GetBinding, ctx: ActorContext[GetBinding]) -> Any:
        return self.binding
