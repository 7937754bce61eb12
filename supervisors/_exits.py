"""How every command ends, whatever happened: one line for a start-up error, quiet otherwise.

- A start-up error (a setting that cannot work: a missing certificate, a port in use, an
  unreadable key) prints one line, ``prog: <what, naming the setting, and what to do>``,
  and exits 2. Such errors often arrive wrapped in exception groups (they are raised in a
  task of a nursery) and chained under the runtime's own errors (``SpawnError``); they are
  found there rather than shown as a traceback.
- Ctrl-C ends quietly with 130.
- A closed standard output (``zl audit tail FILE | head``) ends quietly with 141, as a
  process killed by SIGPIPE would, instead of printing ``BrokenPipeError`` twice.

Anything else is a bug and keeps its traceback. No import beyond the standard library:
the bridge uses this too.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Final

#: Exit status of a start-up error (a bad setting or argument), as argparse uses.
EXIT_STARTUP: Final = 2
EXIT_INTERRUPTED: Final = 130
#: 128 + SIGPIPE: what a shell shows for a process its pipe's reader went away from.
EXIT_BROKEN_PIPE: Final = 141
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class StartupError(Exception):
    """A setting or argument a process cannot start with; the message names it."""


def leaves(error: BaseException) -> list[BaseException]:
    """The errors inside ``error``: through exception groups and explicit causes."""
    found: list[BaseException] = []
    stack = [error]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, BaseExceptionGroup):
            stack.extend(reversed(item.exceptions))
            continue
        found.append(item)
        if item.__cause__ is not None:
            stack.append(item.__cause__)
    return found


def one_line(error: BaseException) -> str:
    """The error's message as a single line."""
    text = " ".join(str(error).split())
    return text or type(error).__name__


def check_log_level(value: str, option: str = "--log-level") -> str:
    """``value`` as a logging level name.

    Raises:
        StartupError: not a level, naming the option and the allowed values.
    """
    level = value.upper()
    if level not in LOG_LEVELS:
        raise StartupError(f"{option} {value!r} is not a level; use one of {', '.join(LOG_LEVELS)}")
    return level


def _silence_stdout() -> None:
    # The reader is gone: later writes (and the interpreter's last flush) go nowhere.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def run_command(
    prog: str,
    body: Callable[[], int],
    *,
    startup_errors: tuple[type[BaseException], ...] = (),
) -> int:
    """Run a command's ``body`` and turn how it ended into an exit status (see the module).

    Args:
        prog: the command's name for messages (``zl host``).
        body: does the work; returns the exit status.
        startup_errors: error types whose message is for the user, not a bug.
    """
    try:
        status = body()
        sys.stdout.flush()
        return status
    except BaseException as error:  # sorted below; anything else is re-raised as it was
        found = leaves(error)
        if any(isinstance(leaf, BrokenPipeError) for leaf in found):
            _silence_stdout()
            return EXIT_BROKEN_PIPE
        if found and all(isinstance(leaf, KeyboardInterrupt) for leaf in found):
            return EXIT_INTERRUPTED
        known: tuple[type[BaseException], ...] = (StartupError, *startup_errors)
        for leaf in found:
            if isinstance(leaf, known):
                logging.shutdown()
                print(f"{prog}: {one_line(leaf)}", file=sys.stderr)
                return EXIT_STARTUP
        raise
