"""The standard health service, ``grpc.health.v1.Health`` (Check, List, Watch)."""

from __future__ import annotations

import enum
from typing import Any

import trio

from contracts.generated.grpc.health.v1 import health_pb2

from ._errors import RpcError, StatusCode
from ._service import Service, service_from_descriptor, unary_handler
from ._stream import ServerStream


class ServingStatus(enum.IntEnum):
    """``HealthCheckResponse.ServingStatus``."""

    UNKNOWN = 0
    SERVING = 1
    NOT_SERVING = 2
    SERVICE_UNKNOWN = 3


#: The name under which the whole server's health is reported (the protocol's convention).
OVERALL = ""


class HealthService:
    """Serving status per service name, served as ``grpc.health.v1.Health``.

    The overall status (service name ``""``) starts SERVING; the application sets others
    (and sets the overall status to NOT_SERVING before a graceful shutdown).
    No I/O happens here; ``service`` is handed to ``serve_grpc``.
    """

    def __init__(self) -> None:
        self._statuses: dict[str, ServingStatus] = {OVERALL: ServingStatus.SERVING}
        self._changed = trio.Event()
        self.service: Service = service_from_descriptor(
            health_pb2.DESCRIPTOR.services_by_name["Health"],
            {
                "Check": unary_handler(self._check),
                "List": unary_handler(self._list),
                "Watch": self._watch,
            },
        )

    def set_status(self, service: str, status: ServingStatus) -> None:
        """Set a service's status; every Watch on it sees the change."""
        self._statuses[service] = status
        self._changed.set()
        self._changed = trio.Event()

    def status(self, service: str) -> ServingStatus | None:
        return self._statuses.get(service)

    async def _check(
        self, request: health_pb2.HealthCheckRequest, stream: ServerStream[Any, Any]
    ) -> health_pb2.HealthCheckResponse:
        status = self._statuses.get(request.service)
        if status is None:
            raise RpcError(StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return health_pb2.HealthCheckResponse(status=int(status))  # type: ignore[arg-type]

    async def _list(
        self, request: health_pb2.HealthListRequest, stream: ServerStream[Any, Any]
    ) -> health_pb2.HealthListResponse:
        response = health_pb2.HealthListResponse()
        for name, status in self._statuses.items():
            response.statuses[name].status = int(status)  # type: ignore[assignment]
        return response

    async def _watch(
        self, stream: ServerStream[health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse]
    ) -> None:
        """Send the status now and on every change, until the client cancels."""
        request = await stream.receive()
        last: ServingStatus | None = None
        while True:
            changed = self._changed
            status = self._statuses.get(request.service, ServingStatus.SERVICE_UNKNOWN)
            if status != last:
                await stream.send(health_pb2.HealthCheckResponse(status=int(status)))  # type: ignore[arg-type]
                last = status
            await changed.wait()
