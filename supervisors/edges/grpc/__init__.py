"""The gRPC edge: a gRPC-over-HTTP/2 server on Trio, with health and reflection.

All gRPC serving in the project goes through this package (see ``_server.py`` for why it
is built on ``h2`` rather than on purerpc's server loop), and so do the BFF's calls to the
host (``open_grpc_channel``: a client on Trio and ``h2``, see ``_client.py``).
"""

from ._client import ClientConnection as ClientConnection
from ._client import GrpcChannel as GrpcChannel
from ._client import GrpcClientConfig as GrpcClientConfig
from ._client import open_grpc_channel as open_grpc_channel
from ._client_errors import CallError as CallError
from ._client_errors import ConnectError as ConnectError
from ._client_errors import GrpcClientError as GrpcClientError
from ._client_stream import ClientStream as ClientStream
from ._config import GrpcServerConfig as GrpcServerConfig
from ._errors import BadMessage as BadMessage
from ._errors import BindError as BindError
from ._errors import ConfigError as ConfigError
from ._errors import EndOfStream as EndOfStream
from ._errors import GrpcEdgeError as GrpcEdgeError
from ._errors import MessageTooLarge as MessageTooLarge
from ._errors import RpcError as RpcError
from ._errors import StatusCode as StatusCode
from ._errors import StreamClosed as StreamClosed
from ._errors import StreamReset as StreamReset
from ._health import OVERALL as OVERALL
from ._health import HealthService as HealthService
from ._health import ServingStatus as ServingStatus
from ._server import GrpcServerHandle as GrpcServerHandle
from ._server import serve_grpc as serve_grpc
from ._service import Method as Method
from ._service import Service as Service
from ._service import StreamHandler as StreamHandler
from ._service import service_from_descriptor as service_from_descriptor
from ._service import unary_handler as unary_handler
from ._stream import ServerStream as ServerStream

__all__ = [
    "OVERALL",
    "BadMessage",
    "BindError",
    "CallError",
    "ClientConnection",
    "ClientStream",
    "ConfigError",
    "ConnectError",
    "EndOfStream",
    "GrpcChannel",
    "GrpcClientConfig",
    "GrpcClientError",
    "GrpcEdgeError",
    "GrpcServerConfig",
    "GrpcServerHandle",
    "HealthService",
    "MessageTooLarge",
    "Method",
    "RpcError",
    "ServerStream",
    "Service",
    "ServingStatus",
    "StatusCode",
    "StreamClosed",
    "StreamHandler",
    "StreamReset",
    "open_grpc_channel",
    "serve_grpc",
    "service_from_descriptor",
    "unary_handler",
]
