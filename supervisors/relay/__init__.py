"""The Tool Relay process (``zl relay``): config, supervision tree, WSS listeners."""

from ._cli import relay_main as relay_main
from ._config import DEVICE_PATH as DEVICE_PATH
from ._config import HOST_PATH as HOST_PATH
from ._config import ListenSection as ListenSection
from ._config import RelayConfig as RelayConfig
from ._config import ShardSection as ShardSection
from ._config import TlsSection as TlsSection
from ._config import check_config as check_config
from ._relay import RelayAddresses as RelayAddresses
from ._relay import run_relay as run_relay

__all__ = [
    "DEVICE_PATH",
    "HOST_PATH",
    "ListenSection",
    "RelayAddresses",
    "RelayConfig",
    "ShardSection",
    "TlsSection",
    "check_config",
    "relay_main",
    "run_relay",
]
