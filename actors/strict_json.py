"""The one strict JSON reader for every value that enters a process from outside.

The model's tool arguments, relay frames, MCP messages and policy bundles all arrive as
JSON text written by someone we do not trust. ``json.loads`` accepts things that break
code further in: an integer past 2**53 (RFC 8785 digests and JavaScript peers cannot
carry it), a lone UTF-16 surrogate (``"\\ud800"`` decodes to a ``str`` that cannot be
encoded as UTF-8), ``NaN`` and ``Infinity``, duplicate keys (two parsers read two
different objects), and nesting deep enough to exhaust the stack of whatever walks the
value next. ``loads`` refuses all of them where the text enters, so nothing deeper can
fail on them.

Parsing is ``json.loads`` (C) with hooks; the depth and string checks walk the parsed
value once, iteratively, so their cost grows with the number of values, not with the
length of the strings (a 1 MiB file's text is one string).
"""

from __future__ import annotations

import json
from typing import Any, Final, NoReturn

#: The largest integer every JSON peer reads exactly (RFC 7493 I-JSON, RFC 8785).
MAX_SAFE_INTEGER: Final = 2**53 - 1
#: Containers nested deeper than this are refused. Real tool arguments, results, frames
#: and bundles nest a handful of levels; this leaves room and keeps every walker safe.
DEFAULT_MAX_DEPTH: Final = 64


class StrictJsonError(ValueError):
    """The text is not strict JSON; the message says why, without quoting much of it."""


def _refuse_constant(name: str) -> NoReturn:
    raise StrictJsonError(f"{name} is not JSON")


def _safe_int(text: str) -> int:
    # Checked on the text first: int() of a huge digit string is itself costly.
    digits = len(text) - (text[0] == "-")
    if digits > 16:
        raise StrictJsonError(f"integer of {digits} digits is out of range (|n| <= 2**53 - 1)")
    value = int(text)
    if abs(value) > MAX_SAFE_INTEGER:
        raise StrictJsonError(f"integer {text} is out of range (|n| <= 2**53 - 1)")
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise StrictJsonError(f"number {text[:24]} is out of range")
    return value


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise StrictJsonError("duplicate key in object")
    return result


def _check_string(text: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise StrictJsonError("string holds a lone UTF-16 surrogate") from None


def check_value(value: Any, *, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
    """Check a value already in memory against the same rules as :func:`loads`.

    For values that did not come through ``loads`` (built by code, or parsed by a library
    that has no hooks) before they are digested, re-encoded or sent on.

    Raises:
        StrictJsonError: a type JSON cannot carry, an integer out of range, a non-finite
            float, a non-string key, a lone surrogate, or nesting deeper than ``max_depth``.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_string(item)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if abs(item) > MAX_SAFE_INTEGER:
                raise StrictJsonError("integer is out of range (|n| <= 2**53 - 1)")
        elif isinstance(item, float):
            if item != item or item in (float("inf"), float("-inf")):
                raise StrictJsonError("number is not finite")
        elif isinstance(item, dict | list | tuple):
            if depth >= max_depth:
                raise StrictJsonError(f"nesting is deeper than {max_depth} levels")
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise StrictJsonError("object key is not a string")
                    _check_string(key)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
        else:
            raise StrictJsonError(f"{type(item).__name__} is not a JSON value")


def loads(
    data: bytes | bytearray | memoryview | str,
    *,
    max_bytes: int | None = None,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> Any:
    """Parse ``data`` as strict JSON (see the module docstring).

    Args:
        data: UTF-8 bytes or text.
        max_bytes: refuse input longer than this many UTF-8 bytes before parsing it.
        max_depth: refuse containers nested deeper than this.

    Returns:
        The value: dicts, lists, str, int, float, bool and None.

    Raises:
        StrictJsonError: too long, not UTF-8, not JSON, or any value the rules refuse.
    """
    if max_bytes is not None and len(data) > max_bytes:
        raise StrictJsonError(f"{len(data)} bytes exceed the {max_bytes}-byte limit")
    # A lone surrogate cannot be encoded: it counts as the 3 bytes of its surrogatepass form.
    if (
        isinstance(data, str)
        and max_bytes is not None
        and not data.isascii()
        and len(data.encode("utf-8", "surrogatepass")) > max_bytes
    ):
        raise StrictJsonError(f"text exceeds the {max_bytes}-byte limit")
    try:
        text = data if isinstance(data, str) else bytes(data).decode("utf-8")
        value = json.loads(
            text,
            object_pairs_hook=_refuse_duplicates,
            parse_constant=_refuse_constant,
            parse_int=_safe_int,
            parse_float=_finite_float,
        )
    except StrictJsonError:
        raise
    except UnicodeError as exc:
        # Covers text that holds a lone surrogate itself (it cannot be UTF-8 either).
        raise StrictJsonError(f"not UTF-8: {exc}") from None
    except RecursionError:
        raise StrictJsonError(f"nesting is deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise StrictJsonError(f"not JSON: {exc}") from None
    check_value(value, max_depth=max_depth)
    return value


def dumps(value: Any) -> str:
    """Compact JSON text of a value that passed :func:`loads` or :func:`check_value`.

    Non-ASCII characters are written as they are (UTF-8 on the wire), so the text is never
    longer than the input it came from plus the escapes JSON requires.

    Raises:
        StrictJsonError: the value holds something JSON cannot carry.
    """
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise StrictJsonError(f"cannot encode: {exc}") from None
