"""The redaction domain's errors.

::

    RedactionError                 (Exception)
     └── RedactionSettingsError    a bundle's redaction section is invalid: not the schema's
                                   shape, an unknown class, a pattern RE2 cannot compile

A settings error says where (``redaction.patterns[2]``) and why, in one line, so that the
policy engine can refuse the bundle with it (``policy.invalid``).
"""

from __future__ import annotations


class RedactionError(Exception):
    """Base of the redaction domain's errors."""


class RedactionSettingsError(RedactionError):
    """The redaction section of a policy bundle cannot be used."""
