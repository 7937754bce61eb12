"""The Device Bridge's domain: the relay link, the announced catalog, the local caps and
the device's own check of the signed policy.

Keeps a small import graph: the MCP client, the relay frames, the policy's pure checks and
trio-websocket; never the host, gRPC, HTTP clients or the provider.
"""

from ._link import BRIDGE_VERSION as BRIDGE_VERSION
from ._link import Reconnect as Reconnect
from ._link import RelayLink as RelayLink
from ._link import RelayLinkConfig as RelayLinkConfig
from ._local import EffectiveCaps as EffectiveCaps
from ._local import LocalCaps as LocalCaps
from ._local import announced_tools as announced_tools
from ._local import capped_arguments as capped_arguments
from ._local import effective_caps as effective_caps
from ._paths import resolve_on_device as resolve_on_device
from ._policy import DevicePolicy as DevicePolicy
from ._policy import DevicePolicyConfig as DevicePolicyConfig
from ._policy import real_roots as real_roots
from ._policy import tenant_of_token as tenant_of_token
from .messages import BridgeMessage as BridgeMessage
from .messages import BridgeStatus as BridgeStatus
from .messages import GetBridgeStatus as GetBridgeStatus

__all__ = [
    "BRIDGE_VERSION",
    "BridgeMessage",
    "BridgeStatus",
    "DevicePolicy",
    "DevicePolicyConfig",
    "EffectiveCaps",
    "GetBridgeStatus",
    "LocalCaps",
    "Reconnect",
    "RelayLink",
    "RelayLinkConfig",
    "announced_tools",
    "capped_arguments",
    "effective_caps",
    "real_roots",
    "resolve_on_device",
    "tenant_of_token",
]
