"""Redaction before every log line: one filter for the whole process.

``install_log_redaction()`` (called by each process's entry point, right after it sets up
logging) makes every log record redacted before any handler formats it:

- the message, with its arguments merged in (``log.info("key %s", key)``);
- the exception and its traceback, rendered once here as the formatter would and redacted
  (``log.exception`` and ``exc_info=True``), and the stack of ``stack_info=True``;
- string fields passed with ``extra=``, which structured and OpenTelemetry handlers export
  as attributes.

It installs the filter on the root logger and on each of its handlers, and a record
factory that applies it to each record as it is made, so records of every logger, and
handlers added later, are covered too. An uncaught exception's traceback (``sys.excepthook``)
goes through the same redactor.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable, Mapping
from types import TracebackType

from ._redactor import Redactor

Counter = Callable[[Mapping[str, int]], None]

# The attributes every LogRecord has; any other is an ``extra=`` field.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_DONE = "_zl_redacted"
_FORMATTER = logging.Formatter()


class RedactingFilter(logging.Filter):
    """Redacts a log record in place (see the module docstring); never drops one.

    Args:
        redactor: what finds and replaces (default: every built-in class).
        on_redacted: called with the counts by class of each record that had any.
    """

    def __init__(
        self, redactor: Redactor | None = None, on_redacted: Counter | None = None
    ) -> None:
        super().__init__()
        self.redactor = redactor if redactor is not None else Redactor()
        self.on_redacted = on_redacted

    def filter(self, record: logging.LogRecord) -> bool:
        done: frozenset[str] | None = record.__dict__.get(_DONE)
        counts: dict[str, int] = {}
        if done is None:
            self._message(record, counts)
            done = frozenset()
        # ``extra=`` fields are set after the record factory ran: a handler's filter sees them.
        extras = [k for k in record.__dict__ if k not in _STANDARD and k not in done and k != _DONE]
        for key in extras:
            value = record.__dict__[key]
            if isinstance(value, str):
                record.__dict__[key] = self._redact(value, counts)
        record.__dict__[_DONE] = done | frozenset(extras)
        if counts and self.on_redacted is not None:
            self.on_redacted(counts)
        return True

    def _message(self, record: logging.LogRecord, counts: dict[str, int]) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what there is, redacted
            message = f"{record.msg!s} {record.args!r}"
        record.msg = self._redact(message, counts)
        record.args = None
        if record.exc_info:
            record.exc_text = self._redact(_FORMATTER.formatException(record.exc_info), counts)
            # The rendered text replaces the exception: a handler that rendered it again
            # from the object would print the original message.
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self._redact(record.exc_text, counts)
        if record.stack_info:
            record.stack_info = self._redact(record.stack_info, counts)

    def _redact(self, text: str, counts: dict[str, int]) -> str:
        redacted = self.redactor.redact(text)
        for kind, n in redacted.counts.items():
            counts[kind] = counts.get(kind, 0) + n
        return redacted.text


class LogRedaction:
    """What ``install_log_redaction`` changed, to undo it (tests) or to count with."""

    def __init__(self, log_filter: RedactingFilter) -> None:
        self.filter = log_filter
        self._factory = logging.getLogRecordFactory()
        self._excepthook = sys.excepthook
        self._handlers: list[logging.Handler] = []

    def _install(self) -> None:
        root = logging.getLogger()
        root.addFilter(self.filter)
        self.cover_handlers()
        previous = self._factory
        log_filter = self.filter

        def factory(*args: object, **kwargs: object) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            log_filter.filter(record)
            return record

        logging.setLogRecordFactory(factory)
        sys.excepthook = self._excepthook_redacted

    def cover_handlers(self) -> None:
        """Add the filter to root handlers added since (for their ``extra=`` fields)."""
        for handler in logging.getLogger().handlers:
            if self.filter not in handler.filters:
                handler.addFilter(self.filter)
                self._handlers.append(handler)

    def _excepthook_redacted(
        self,
        kind: type[BaseException],
        value: BaseException,
        tb: TracebackType | None,
    ) -> None:
        text = "".join(traceback.format_exception(kind, value, tb))
        sys.stderr.write(self.filter.redactor.redact(text).text)

    def uninstall(self) -> None:
        """Put back the record factory, the excepthook and the filters."""
        global _INSTALLED
        logging.setLogRecordFactory(self._factory)
        sys.excepthook = self._excepthook
        logging.getLogger().removeFilter(self.filter)
        for handler in self._handlers:
            handler.removeFilter(self.filter)
        if _INSTALLED is self:
            _INSTALLED = None


_INSTALLED: LogRedaction | None = None


def install_log_redaction(redactor: Redactor | None = None) -> LogRedaction:
    """Redact every log record of this process from now on (idempotent).

    Call it after ``logging.basicConfig`` (or whatever adds the root handlers). Calling it
    again covers root handlers added since and keeps the first redactor.
    """
    global _INSTALLED
    if _INSTALLED is not None:
        _INSTALLED.cover_handlers()
        return _INSTALLED
    installed = LogRedaction(RedactingFilter(redactor))
    installed._install()
    _INSTALLED = installed
    return installed


def installed_log_redaction() -> LogRedaction | None:
    """The process's log redaction, if ``install_log_redaction`` was called."""
    return _INSTALLED
