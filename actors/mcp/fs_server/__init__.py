"""The ``fs.read`` MCP server: read-only file access confined to allow-listed roots, over stdio."""

from ._confine import Root as Root
from ._confine import open_confined as open_confined
from ._confine import split_request_path as split_request_path
from ._errors import FsReadError as FsReadError
from ._errors import InvalidArgs as InvalidArgs
from ._errors import NotAFile as NotAFile
from ._errors import NotFound as NotFound
from ._errors import NotText as NotText
from ._errors import OutsideRoots as OutsideRoots
from ._errors import PathRefused as PathRefused
from ._errors import PermissionDenied as PermissionDenied
from ._errors import ReadFailed as ReadFailed
from ._main import main as main
from ._server import FsServer as FsServer
from ._server import ServerStopped as ServerStopped
from ._tool import ReadRequest as ReadRequest
from ._tool import RootSet as RootSet
from ._tool import parse_args as parse_args
from ._tool import read_file as read_file
from ._tool import tool_descriptor as tool_descriptor
