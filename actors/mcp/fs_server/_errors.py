"""Why an ``fs.read`` call fails, as catalog-coded errors.

::

    ToolError (actors.errors)    tool.* and fs.* catalog codes
     └── FsReadError             one failed fs.read; .code says why
          ├── InvalidArgs        tool.invalid_args   arguments fail args.schema.json
          ├── PathRefused        fs.invalid_path     NUL byte, '..', empty, symlink loop
          ├── OutsideRoots       fs.outside_roots    absolute path or symlink leading out
          ├── NotFound           fs.not_found        nothing there (or a file used as a directory)
          ├── NotAFile           fs.not_a_file       directory, device, FIFO, socket
          ├── PermissionDenied   fs.permission_denied  the OS refused access
          ├── NotText            fs.not_text         bytes are not UTF-8 (use base64)
          └── ReadFailed         fs.io_error         any other OS error while reading

A tool failure never crashes the server: it becomes an ``isError: true`` tool result
whose text starts with the code and whose ``_meta`` carries the code as data.
"""

from __future__ import annotations

import errno

from actors.errors import ToolError


class FsReadError(ToolError):
    """An ``fs.read`` call that cannot return file content."""

    CODE = "tool.failed"

    def __init__(self, message: str) -> None:
        super().__init__(self.CODE, message)


class InvalidArgs(FsReadError):
    """The arguments do not match ``args.schema.json``."""

    CODE = "tool.invalid_args"


class PathRefused(FsReadError):
    """The path is not acceptable on its face (NUL, ``..``, empty, too many symlinks)."""

    CODE = "fs.invalid_path"


class OutsideRoots(FsReadError):
    """The path, or a symlink on it, leads outside the allow-listed roots."""

    CODE = "fs.outside_roots"


class NotFound(FsReadError):
    """Nothing exists at the path."""

    CODE = "fs.not_found"


class NotAFile(FsReadError):
    """The path names something other than a regular file."""

    CODE = "fs.not_a_file"


class PermissionDenied(FsReadError):
    """The operating system refused access."""

    CODE = "fs.permission_denied"


class NotText(FsReadError):
    """The bytes asked for as UTF-8 are not valid UTF-8."""

    CODE = "fs.not_text"


class ReadFailed(FsReadError):
    """Some other operating-system error."""

    CODE = "fs.io_error"


def from_os_error(exc: OSError, shown_path: str) -> FsReadError:
    """The typed error for an ``OSError`` met while opening or reading ``shown_path``."""
    if exc.errno in (errno.EACCES, errno.EPERM):
        return PermissionDenied(f"permission denied: {shown_path}")
    if exc.errno == errno.ENOENT:
        return NotFound(f"no such file: {shown_path}")
    if exc.errno == errno.ENOTDIR:
        return NotFound(f"no such file: {shown_path} (a component on the path is not a directory)")
    if exc.errno in (errno.ENXIO, errno.ENODEV):
        return NotAFile(f"not a regular file: {shown_path}")
    if exc.errno == errno.ENAMETOOLONG:
        return PathRefused(f"path too long: {shown_path}")
    return ReadFailed(f"cannot read {shown_path}: {exc.strerror or exc}")
