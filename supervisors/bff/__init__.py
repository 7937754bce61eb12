"""The BFF process (``zl bff``): HTTPS in front of the model host's ``StreamChat``.

Sessions (``POST /v1/sessions``), streamed turns (``POST /v1/chat/stream``, SSE), cancel,
health, an OpenAI-compatible ``POST /v1/chat/completions`` and a chat page at ``/``; the
API is ``contracts/api/bff/openapi.yaml``. Every session is a supervised actor that owns
one ``StreamChat`` stream to the host (``docs/bff.md``).
"""

from ._auth import Caller as Caller
from ._auth import CallerVerifier as CallerVerifier
from ._auth import jwks_of as jwks_of
from ._auth import keys_from_jwks as keys_from_jwks
from ._bff import BffAddresses as BffAddresses
from ._bff import run_bff as run_bff
from ._cli import bff_main as bff_main
from ._config import AuthSection as AuthSection
from ._config import BffConfig as BffConfig
from ._config import HostSection as HostSection
from ._config import HttpSection as HttpSection
from ._config import SessionsSection as SessionsSection
from ._openapi import openapi_document as openapi_document

__all__ = [
    "AuthSection",
    "BffAddresses",
    "BffConfig",
    "Caller",
    "CallerVerifier",
    "HostSection",
    "HttpSection",
    "SessionsSection",
    "bff_main",
    "jwks_of",
    "keys_from_jwks",
    "openapi_document",
    "run_bff",
]
