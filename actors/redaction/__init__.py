"""Redaction: secrets and personal data removed before the model and before every log.

Detectors (``_detectors.py``) with checksums and context (``_secrets.py``,
``_personal.py``, ``_checks.py``), one RE2 pass per family of patterns (``_scan.py``),
tenant settings from the policy bundle (``_settings.py``), the redactor and its
per-session pseudonyms (``_redactor.py``), and the log filter every process installs
(``_logging.py``). Pure code: no Trio, no I/O.
"""

from ._detectors import BUILTIN_CLASSES as BUILTIN_CLASSES
from ._detectors import Category as Category
from ._errors import RedactionError as RedactionError
from ._errors import RedactionSettingsError as RedactionSettingsError
from ._logging import LogRedaction as LogRedaction
from ._logging import RedactingFilter as RedactingFilter
from ._logging import install_log_redaction as install_log_redaction
from ._logging import installed_log_redaction as installed_log_redaction
from ._redactor import PSEUDONYM_CAPACITY as PSEUDONYM_CAPACITY
from ._redactor import Pseudonyms as Pseudonyms
from ._redactor import Redacted as Redacted
from ._redactor import Redactor as Redactor
from ._redactor import TenantRedaction as TenantRedaction
from ._redactor import placeholder as placeholder
from ._scan import Found as Found
from ._settings import PERSONAL_CLASSES as PERSONAL_CLASSES
from ._settings import SECRET_CLASSES as SECRET_CLASSES
from ._settings import RedactionSettings as RedactionSettings
from ._settings import compile_pattern as compile_pattern
from ._settings import load_settings_file as load_settings_file

__all__ = [
    "BUILTIN_CLASSES",
    "PERSONAL_CLASSES",
    "PSEUDONYM_CAPACITY",
    "SECRET_CLASSES",
    "Category",
    "Found",
    "LogRedaction",
    "Pseudonyms",
    "Redacted",
    "RedactingFilter",
    "RedactionError",
    "RedactionSettings",
    "RedactionSettingsError",
    "Redactor",
    "TenantRedaction",
    "compile_pattern",
    "install_log_redaction",
    "installed_log_redaction",
    "load_settings_file",
    "placeholder",
    "redact_main",
]


def redact_main(argv: list[str] | None = None) -> int:
    """``zl redact`` (imported when used: the command line needs argparse, nothing else)."""
    from ._cli import redact_main as main

    return main(argv)
