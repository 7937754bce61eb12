"""The debug HTTP endpoint: the live actor tree as JSON and as an HTML page.

Loopback by default; any other address requires a bearer token (see ``DebugHttpConfig``).
``zl tree`` (``supervisors.tree_cli``) is its terminal client.
"""

from ._app import ACTORS_PATH as ACTORS_PATH
from ._app import HEALTH_PATH as HEALTH_PATH
from ._config import PLAINTEXT_SETTING as PLAINTEXT_SETTING
from ._config import TOKEN_ENV as TOKEN_ENV
from ._config import TOKEN_SETTING as TOKEN_SETTING
from ._config import DebugHttpConfig as DebugHttpConfig
from ._config import is_loopback_host as is_loopback_host
from ._errors import DebugHttpBindError as DebugHttpBindError
from ._errors import DebugHttpConfigError as DebugHttpConfigError
from ._errors import DebugHttpError as DebugHttpError
from ._html import render_html as render_html
from ._server import DebugHttpBinding as DebugHttpBinding
from ._server import check_config as check_config
from ._server import serve_debug_http as serve_debug_http

__all__ = [
    "ACTORS_PATH",
    "HEALTH_PATH",
    "PLAINTEXT_SETTING",
    "TOKEN_ENV",
    "TOKEN_SETTING",
    "DebugHttpBindError",
    "DebugHttpBinding",
    "DebugHttpConfig",
    "DebugHttpConfigError",
    "DebugHttpError",
    "check_config",
    "is_loopback_host",
    "render_html",
    "serve_debug_http",
]
