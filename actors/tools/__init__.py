"""Tools: the link to where tools run, and the gateway that validates, caps and audits calls."""

from ._call import SessionTools as SessionTools
from ._call import ToolCall as ToolCall
from ._call import ToolsConfig as ToolsConfig
from ._contracts import Caps as Caps
from ._contracts import ToolContract as ToolContract
from ._contracts import tool_contracts as tool_contracts
from ._gateway import ToolGateway as ToolGateway
from ._policy import POLICY_OFF as POLICY_OFF
from ._policy import PolicyGate as PolicyGate
from ._stdio_link import StdioToolLink as StdioToolLink
from .link import ToolDescriptor as ToolDescriptor
from .link import ToolInvocation as ToolInvocation
from .link import ToolLink as ToolLink
from .link import ToolOutput as ToolOutput
from .messages import ForgetCatalog as ForgetCatalog
from .messages import GatewayMessage as GatewayMessage
from .messages import GetOfferedTools as GetOfferedTools
from .messages import OfferedTool as OfferedTool

__all__ = [
    "POLICY_OFF",
    "Caps",
    "ForgetCatalog",
    "GatewayMessage",
    "GetOfferedTools",
    "OfferedTool",
    "PolicyGate",
    "SessionTools",
    "StdioToolLink",
    "ToolCall",
    "ToolContract",
    "ToolDescriptor",
    "ToolGateway",
    "ToolInvocation",
    "ToolLink",
    "ToolOutput",
    "ToolsConfig",
    "tool_contracts",
]
