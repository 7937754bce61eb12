"""The Device Bridge process (``zl-bridge``)."""

from ._bridge import bridge_main as bridge_main
from ._bridge import main as main
from ._bridge import run_bridge as run_bridge
from ._bridge import status_line as status_line

__all__ = ["bridge_main", "main", "run_bridge", "status_line"]
