"""The model host process: configuration, supervision tree, gRPC and debug edges, CLI."""

from ._chat_edge import event_to_proto as event_to_proto
from ._chat_edge import make_stream_chat_handler as make_stream_chat_handler
from ._chat_edge import request_to_inbound as request_to_inbound
from ._cli import host_main as host_main
from ._config import AuditSection as AuditSection
from ._config import AuthSection as AuthSection
from ._config import DebugSection as DebugSection
from ._config import GrpcSection as GrpcSection
from ._config import HostConfig as HostConfig
from ._config import MockSection as MockSection
from ._config import PolicySection as PolicySection
from ._config import ProviderSection as ProviderSection
from ._config import RedactionSection as RedactionSection
from ._config import SessionsSection as SessionsSection
from ._config import TelemetrySection as TelemetrySection
from ._config import ToolsSection as ToolsSection
from ._host import HostAddresses as HostAddresses
from ._host import redaction_from_bundles as redaction_from_bundles
from ._host import run_host as run_host

__all__ = [
    "AuditSection",
    "AuthSection",
    "DebugSection",
    "GrpcSection",
    "HostAddresses",
    "HostConfig",
    "MockSection",
    "PolicySection",
    "ProviderSection",
    "RedactionSection",
    "SessionsSection",
    "TelemetrySection",
    "ToolsSection",
    "event_to_proto",
    "host_main",
    "make_stream_chat_handler",
    "redaction_from_bundles",
    "request_to_inbound",
    "run_host",
]
