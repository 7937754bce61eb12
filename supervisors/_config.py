"""Process configuration: a TOML file plus ``ZL_*`` environment, parsed into attrs classes.

Environment keys name a setting by its path with ``__`` between sections, e.g.
``ZL_GRPC__PORT=50051`` or ``ZL_SESSIONS__MAX_SESSIONS=200``; they override the file. A list
is a JSON array or comma-separated (``ZL_TOOLS__ROOTS=/srv/a,/srv/b``). A bad value or an
unknown key is a ``ConfigError`` that names the key.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs
import cattrs

T = TypeVar("T")

ENV_PREFIX = "ZL_"
ENV_SEPARATOR = "__"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(Exception):
    """A configuration file or variable is missing, malformed or has a bad value."""


def _structure_bool(value: object, _: type) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"expected a boolean (true/false), got {value!r}")


def _structure_number(kind: type) -> Any:
    def structure(value: object, _: type) -> Any:
        if isinstance(value, bool):
            raise TypeError(f"expected a number, got {value!r}")
        return kind(value)

    return structure


def _structure_str_list(value: object, _: type) -> list[str]:
    # From an environment variable a list arrives as text: a JSON array, or comma-separated.
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            value = json.loads(text)
        else:
            return [part.strip() for part in text.split(",") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TypeError(f"expected a list of strings, got {value!r}")
    return list(value)


_converter = cattrs.Converter(forbid_extra_keys=True)
_converter.register_structure_hook(bool, _structure_bool)
_converter.register_structure_hook(int, _structure_number(int))
_converter.register_structure_hook(float, _structure_number(float))
_converter.register_structure_hook_func(lambda t: t == list[str], _structure_str_list)


def env_overrides(environ: Mapping[str, str], prefix: str = ENV_PREFIX) -> dict[str, Any]:
    """``ZL_A__B=v`` becomes ``{"a": {"b": "v"}}`` (keys lower-cased)."""
    tree: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith(prefix) or ENV_SEPARATOR not in key[len(prefix) :]:
            continue
        parts = key[len(prefix) :].lower().split(ENV_SEPARATOR)
        node = tree
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{key}: {part!r} is a value, not a section")
            node = child
        node[parts[-1]] = value
    return tree


def _merge(base: dict[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(
    cls: type[T],
    path: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> T:
    """Read ``path`` (TOML, optional), apply ``ZL_*`` variables and ``overrides``, structure.

    Raises:
        ConfigError: naming the file, the variable or the key that is wrong.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    data = _merge(data, env_overrides(os.environ if environ is None else environ))
    if overrides:
        data = _merge(data, overrides)
    try:
        return _converter.structure(data, cls)
    except cattrs.BaseValidationError as exc:
        problems = cattrs.transform_error(exc, path="config", format_exception=_describe)
        raise ConfigError("bad configuration: " + "; ".join(map(_key_first, problems))) from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad configuration: {exc}") from None


def _describe(error: BaseException, kind: type | None) -> str:
    """One problem, in words: attrs' validators already name the key and the allowed values."""
    if isinstance(error, cattrs.ForbiddenExtraKeysError):
        known = ", ".join(field.name for field in attrs.fields(error.cl))
        return f"unknown key {', '.join(sorted(error.extra_fields))} (known: {known})"
    if kind is not None and isinstance(error, ValueError | TypeError):
        names = {int: "an integer", float: "a number", bool: "true or false"}
        return f"expected {names.get(kind, getattr(kind, '__name__', str(kind)))}"
    if isinstance(error, ValueError) and error.args and isinstance(error.args[0], str):
        message: str = error.args[0]
        if len(error.args) == 4 and isinstance(error.args[2], list | tuple):
            # ``attrs.validators.in_``: (message, attribute, options, value).
            name, options, value = error.args[1].name, error.args[2], error.args[3]
            return f"'{name}' must be one of {', '.join(map(str, options))} (got {value!r})"
        return message
    if isinstance(error, KeyError):
        return "required but not set"
    if kind is not None:
        return f"expected {getattr(kind, '__name__', kind)} ({error})"
    return str(error)


_NAMED = re.compile(r"^'(?P<name>[a-z_][a-z0-9_]*)' (?P<rest>.*) @ (?P<path>\S+)$")


def _key_first(problem: str) -> str:
    """``"'mode' must be ... @ config.tools"`` as ``"config.tools.mode: must be ..."``."""
    named = _NAMED.match(problem)
    if named is not None:
        return f"{named['path']}.{named['name']}: {named['rest']}"
    message, at, path = problem.rpartition(" @ ")
    return f"{path}: {message}" if at else problem


def unstructure_config(config: object) -> Any:
    """Plain data for printing or writing a config back."""
    return _converter.unstructure(config)
