"""The Device Bridge's domain: the relay link, the announced catalog and the local caps.

Keeps a small import graph: the MCP client, the relay frames and trio-websocket; never
the host, gRPC or the provider.
"""

from ._link import BRIDGE_VERSION as BRIDGE_VERSION
from ._link import BridgeStopped as BridgeStopped
from ._link import Reconnect as Reconnect
from ._link import RelayLink as RelayLink
from ._link import RelayLinkConfig as RelayLinkConfig
from ._local import EffectiveCaps as EffectiveCaps
from ._local import LocalCaps as LocalCaps
from ._local import ResultTooLarge as ResultTooLarge
from ._local import announced_tools as announced_tools
from ._local import capped_arguments as capped_arguments
from ._local import effective_caps as effective_caps
from ._local import fit_result as fit_result
from .messages import BridgeMessage as BridgeMessage
from .messages import BridgeStatus as BridgeStatus
from .messages import GetBridgeStatus as GetBridgeStatus

__all__ = [
    "BRIDGE_VERSION",
    "BridgeMessage",
    "BridgeStatus",
    "BridgeStopped",
    "EffectiveCaps",
    "GetBridgeStatus",
    "LocalCaps",
    "Reconnect",
    "RelayLink",
    "RelayLinkConfig",
    "ResultTooLarge",
    "announced_tools",
    "capped_arguments",
    "effective_caps",
    "fit_result",
]
