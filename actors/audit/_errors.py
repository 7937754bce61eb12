"""The audit's errors.

::

    AuditError                   (Exception)
     ├── NotCanonical            a value has no RFC 8785 form (NaN, infinity, an integer
     │                           beyond 2**53, a type JSON does not have)
     └── AuditFileError          the audit file cannot be written: locked by another writer,
          │                      not an audit file, or its chain cannot be resumed
          └── AuditCorrupt       the record the chain would continue from is not valid

These never travel on the wire: they are start-up or programming errors of the host, and a
host that cannot write its audit must not run tool calls.
"""

from __future__ import annotations


class AuditError(Exception):
    """Base of the audit's errors."""


class NotCanonical(AuditError, ValueError):
    """A value cannot be put in RFC 8785 canonical JSON."""


class AuditFileError(AuditError):
    """The audit file cannot be opened, locked, resumed or written; the message names it."""


class AuditCorrupt(AuditFileError):
    """The end of the file is not a valid record, so the chain cannot continue from it."""
