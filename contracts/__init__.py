"""The project's contracts: protocol and schema files, and loaders for them.

Files come first (``api/``); Python here only finds and parses them, and the
generated protobuf code lives in ``generated/``. This package imports nothing
from the rest of the project.
"""

from ._files import CONTRACTS_ROOT as CONTRACTS_ROOT
from ._files import ErrorSpec as ErrorSpec
from ._files import error_catalog as error_catalog
from ._files import load_json as load_json

__all__ = ["CONTRACTS_ROOT", "ErrorSpec", "error_catalog", "load_json"]
