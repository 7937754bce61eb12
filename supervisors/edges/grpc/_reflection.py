"""Server reflection, ``grpc.reflection.v1alpha`` and ``v1``, over the registered services."""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FileDescriptor

from contracts.generated.grpc.reflection.v1 import reflection_pb2 as reflection_v1
from contracts.generated.grpc.reflection.v1alpha import reflection_pb2 as reflection_v1alpha

from ._errors import StatusCode
from ._service import Service, service_from_descriptor
from ._stream import ServerStream

_VERSIONS = (reflection_v1alpha, reflection_v1)


def _with_dependencies(roots: Sequence[FileDescriptor]) -> dict[str, FileDescriptor]:
    files: dict[str, FileDescriptor] = {}
    pending = list(roots)
    while pending:
        file = pending.pop()
        if file.name not in files:
            files[file.name] = file
            pending.extend(file.dependencies)
    return files


def _closure(file: FileDescriptor) -> list[bytes]:
    """The file first, then every file it imports (what a client needs to decode it)."""
    return [f.serialized_pb for f in _with_dependencies([file]).values()]


def _make_handler(
    module: ModuleType, service_names: list[str], files: dict[str, FileDescriptor]
) -> Any:
    pool = descriptor_pool.Default()

    def find_symbol(symbol: str) -> FileDescriptor | None:
        # A method's full name is not a pool symbol in every protobuf runtime: try its service.
        for candidate in (symbol, symbol.rpartition(".")[0]):
            try:
                file = pool.FindFileContainingSymbol(candidate)
            except KeyError:
                continue
            return files.get(file.name)
        return None

    async def handler(stream: ServerStream[Any, Any]) -> None:
        async for request in stream:
            response = module.ServerReflectionResponse(
                valid_host=request.host, original_request=request
            )
            kind = request.WhichOneof("message_request")
            found: FileDescriptor | None = None
            if kind == "list_services":
                for name in service_names:
                    response.list_services_response.service.add(name=name)
            elif kind == "file_by_filename":
                found = files.get(request.file_by_filename)
            elif kind == "file_containing_symbol":
                found = find_symbol(request.file_containing_symbol)
            elif kind == "all_extension_numbers_of_type" and find_symbol(
                request.all_extension_numbers_of_type
            ):
                # Our files declare no extensions.
                response.all_extension_numbers_response.base_type_name = (
                    request.all_extension_numbers_of_type
                )
            else:
                response.error_response.error_code = int(StatusCode.NOT_FOUND)
                response.error_response.error_message = f"not found ({kind})"
            if kind in ("file_by_filename", "file_containing_symbol"):
                if found is None:
                    response.error_response.error_code = int(StatusCode.NOT_FOUND)
                    response.error_response.error_message = f"not found ({kind})"
                else:
                    response.file_descriptor_response.file_descriptor_proto.extend(_closure(found))
            await stream.send(response)

    return handler


def reflection_services(services: Sequence[Service]) -> list[Service]:
    """Both reflection services, describing ``services`` and themselves.

    Args:
        services: the application's services (health included, if served).

    Returns:
        ``grpc.reflection.v1alpha.ServerReflection`` and ``grpc.reflection.v1.ServerReflection``.
    """
    descriptors = [m.DESCRIPTOR.services_by_name["ServerReflection"] for m in _VERSIONS]
    names = sorted({s.name for s in services} | {d.full_name for d in descriptors})
    files = _with_dependencies([s.file for s in services] + [d.file for d in descriptors])
    return [
        service_from_descriptor(
            descriptor, {"ServerReflectionInfo": _make_handler(module, names, files)}
        )
        for module, descriptor in zip(_VERSIONS, descriptors, strict=True)
    ]
