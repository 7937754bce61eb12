"""The ``fs.read`` tool: its contract, argument checks and the (blocking) read itself.

:func:`read_file` is synchronous and meant for a worker thread (``trio.to_thread``); it
opens through :mod:`._confine`, so nothing outside the roots is ever read. Errors are the
:mod:`._errors` tree.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
from collections.abc import Sequence
from typing import Any

import attrs
import jsonschema

from contracts import load_json

from ._confine import Root, open_confined, split_request_path
from ._errors import InvalidArgs, NotText, from_os_error

TOOL_NAME = "fs.read"
CONTRACT_DIR = "api/mcp/tools/fs.read/v1"

READ_CHUNK_BYTES = 1024 * 1024
"""Largest single ``pread``; a read of maxBytes is a loop of these."""


@functools.cache
def manifest() -> dict[str, Any]:
    """The tool's ``manifest.json``."""
    data: dict[str, Any] = load_json(f"{CONTRACT_DIR}/manifest.json")
    return data


@functools.cache
def args_schema() -> dict[str, Any]:
    """``args.schema.json`` (the tool's ``inputSchema``)."""
    data: dict[str, Any] = load_json(f"{CONTRACT_DIR}/args.schema.json")
    return data


@functools.cache
def result_schema() -> dict[str, Any]:
    """``result.schema.json`` (the tool's ``outputSchema``)."""
    data: dict[str, Any] = load_json(f"{CONTRACT_DIR}/result.schema.json")
    return data


@functools.cache
def _args_validator() -> jsonschema.Draft202012Validator:
    # Compiled once: the schema is a read-only contract file.
    return jsonschema.Draft202012Validator(args_schema())


def tool_descriptor() -> dict[str, Any]:
    """The entry ``tools/list`` returns for fs.read."""
    info = manifest()
    return {
        "name": TOOL_NAME,
        "title": "Read a file",
        "description": info["description"],
        "inputSchema": args_schema(),
        "outputSchema": result_schema(),
        "annotations": {
            "readOnlyHint": True,
            "destructiveHint": False,
            "idempotentHint": True,
            "openWorldHint": False,
        },
        "_meta": {"dev.zerolatency/version": info["version"]},
    }


@attrs.frozen(kw_only=True)
class ReadRequest:
    """Checked fs.read arguments."""

    path: str
    offset: int = 0
    max_bytes: int
    encoding: str = "utf-8"


def parse_args(arguments: Any, *, default_max_bytes: int | None = None) -> ReadRequest:
    """Validate ``arguments`` against ``args.schema.json``.

    Args:
        arguments: the ``tools/call`` arguments as received.
        default_max_bytes: maxBytes when the caller gives none (the manifest's cap if None).

    Raises:
        InvalidArgs: with the first schema error, in words.
    """
    error = jsonschema.exceptions.best_match(_args_validator().iter_errors(arguments))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "arguments"
        raise InvalidArgs(f"invalid arguments for fs.read: {where}: {error.message}")
    cap = default_max_bytes or int(manifest()["defaultCaps"]["maxBytes"])
    return ReadRequest(
        path=arguments["path"],
        offset=arguments.get("offset", 0),
        max_bytes=arguments.get("maxBytes", cap),
        encoding=arguments.get("encoding", "utf-8"),
    )


class RootSet:
    """The allow-listed roots with a directory fd held open for each.

    Args:
        paths: existing directories; the first is the base for relative paths.

    Raises:
        OSError: a root does not exist or is not a directory.
        ValueError: no roots.
    """

    def __init__(self, paths: Sequence[str]) -> None:
        if not paths:
            raise ValueError("at least one root directory is needed")
        self.roots = tuple(Root.from_path(p) for p in paths)
        self._fds: list[int] = []
        try:
            for root in self.roots:
                self._fds.append(os.open(root.real, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        except BaseException:
            self.close()
            raise

    def fd(self, index: int) -> int:
        return self._fds[index]

    def close(self) -> None:
        """Close the root fds (idempotent)."""
        while self._fds:
            os.close(self._fds.pop())


def _cut_utf8(data: bytes, *, cut: bool, shown: str) -> tuple[str, int]:
    """Decode ``data``; when the read was cut, drop a character split by the cut."""
    try:
        return data.decode("utf-8"), len(data)
    except UnicodeDecodeError as exc:
        # A cut may split the last character (at most 3 bytes of it); that is not an error.
        if cut and exc.reason == "unexpected end of data" and len(data) - exc.start <= 3:
            head = data[: exc.start]
            try:
                return head.decode("utf-8"), len(head)
            except UnicodeDecodeError:
                pass
        raise NotText(
            f"{shown} is not valid UTF-8 at byte {exc.start}; ask again with encoding 'base64'"
        ) from None


def read_file(roots: RootSet, request: ReadRequest) -> dict[str, Any]:
    """Read ``request`` confined to ``roots`` (blocking; run it in a worker thread).

    Returns:
        A result matching ``result.schema.json``.

    Raises:
        FsReadError: the typed reason.
    """
    index, components = split_request_path(request.path, roots.roots)
    fd = open_confined(roots.fd(index), roots.roots[index], components, request.path)
    try:
        size = os.fstat(fd).st_size
        want = max(0, min(request.max_bytes, size - request.offset))
        chunks: list[bytes] = []
        got = 0
        while got < want:
            chunk = os.pread(fd, min(READ_CHUNK_BYTES, want - got), request.offset + got)
            if not chunk:
                break  # the file shrank while we read it
            chunks.append(chunk)
            got += len(chunk)
    except OSError as exc:
        raise from_os_error(exc, request.path) from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    cut = request.offset + len(data) < size
    if request.encoding == "base64":
        content, returned = base64.b64encode(data).decode("ascii"), len(data)
    else:
        content, returned = _cut_utf8(data, cut=cut, shown=request.path)
        data = data[:returned]
    return {
        "content": content,
        "encoding": request.encoding,
        "bytesReturned": returned,
        "fileSize": size,
        "truncated": request.offset + returned < size,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
