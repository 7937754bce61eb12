"""Services as the edge serves them: method paths, message types and handlers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
from google.protobuf import message_factory
from google.protobuf.descriptor import FileDescriptor, ServiceDescriptor
from google.protobuf.message import Message

from ._errors import EndOfStream, RpcError, StatusCode
from ._stream import ServerStream

#: A handler gets the call's stream; returning ends the call with OK.
StreamHandler = Callable[[ServerStream[Any, Any]], Awaitable[None]]


@attrs.frozen(kw_only=True)
class Method:
    """One rpc: its path, its message types and the handler that serves it."""

    path: str
    request_type: type[Message]
    response_type: type[Message]
    client_streaming: bool
    server_streaming: bool
    handler: StreamHandler


@attrs.frozen(kw_only=True)
class Service:
    """A gRPC service bound to handlers; built by :func:`service_from_descriptor`."""

    name: str
    file: FileDescriptor
    methods: tuple[Method, ...]


def service_from_descriptor(
    descriptor: ServiceDescriptor, handlers: Mapping[str, StreamHandler]
) -> Service:
    """Bind handlers to the rpcs of a generated service descriptor.

    Every handler has the stream signature ``async def h(stream) -> None`` whatever the
    rpc's cardinality; :func:`unary_handler` adapts a plain request -> response function.

    Args:
        descriptor: e.g. ``agent_pb2.DESCRIPTOR.services_by_name["Agent"]``.
        handlers: rpc name -> handler; every rpc of the service must have one.

    Returns:
        The service, ready for ``serve_grpc``.

    Raises:
        ValueError: a handler is missing or names an rpc the service does not have.
    """
    names = {m.name for m in descriptor.methods}
    if set(handlers) != names:
        raise ValueError(
            f"{descriptor.full_name}: handlers for {sorted(handlers)} but rpcs are {sorted(names)}"
        )
    methods = tuple(
        Method(
            path=f"/{descriptor.full_name}/{m.name}",
            request_type=message_factory.GetMessageClass(m.input_type),
            response_type=message_factory.GetMessageClass(m.output_type),
            client_streaming=m.client_streaming,
            server_streaming=m.server_streaming,
            handler=handlers[m.name],
        )
        for m in descriptor.methods
    )
    return Service(name=descriptor.full_name, file=descriptor.file, methods=methods)


def unary_handler(
    function: Callable[[Any, ServerStream[Any, Any]], Awaitable[Message]],
) -> StreamHandler:
    """Adapt ``async def f(request, stream) -> response`` to a unary rpc's stream handler.

    The request must be exactly one message; otherwise the call ends with INVALID_ARGUMENT.
    """

    async def handler(stream: ServerStream[Any, Any]) -> None:
        try:
            request = await stream.receive()
        except EndOfStream:
            raise RpcError(StatusCode.INVALID_ARGUMENT, "a unary call needs one request") from None
        await stream.send(await function(request, stream))

    return handler
