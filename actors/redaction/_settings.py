"""Which classes run and which tenant patterns join them: ``RedactionSettings``.

The policy bundle's ``redaction`` section (``contracts/api/policy/v1/redaction.schema.json``)
arrives verified, as a read-only mapping; ``RedactionSettings.from_bundle`` checks it against
the schema, then compiles each tenant pattern with RE2, whose matching time is linear in
the text whatever the pattern: ``(a+)+$`` costs what ``a+$`` costs. What RE2 cannot
compile (back-references, look-around, possessive or atomic groups, repetition counts over
1000, a program over the memory budget) is refused with RE2's reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import jsonschema
import re2

from actors.strict_json import StrictJsonError, loads
from contracts import load_json

from ._detectors import BUILTIN_CLASSES, Category
from ._errors import RedactionSettingsError
from ._scan import TenantPattern, re2_options

SCHEMA = "api/policy/v1/redaction.schema.json"
#: The largest settings file read (a section holds at most 64 patterns of 1,024 characters).
MAX_SETTINGS_FILE_BYTES = 1024 * 1024
#: Memory budget of one tenant pattern's compiled program (RE2 refuses a bigger one).
TENANT_PATTERN_MAX_MEM = 8 << 20
#: The class names reported for secrets and for personal data (tenant patterns count as
#: secrets: a tenant names what it wants kept from the model).
SECRET_CLASSES = frozenset(n for n, c in BUILTIN_CLASSES.items() if c is Category.SECRET)
PERSONAL_CLASSES = frozenset(n for n, c in BUILTIN_CLASSES.items() if c is Category.PERSONAL)


def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load_json(SCHEMA))


def compile_pattern(name: str, pattern: str, *, where: str = "pattern") -> TenantPattern:
    """Compile one tenant pattern (RE2 syntax).

    Raises:
        RedactionSettingsError: RE2 cannot compile it, or it matches the empty string.
    """
    try:
        regex = re2.compile(pattern, re2_options(TENANT_PATTERN_MAX_MEM))
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid pattern"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise RedactionSettingsError(
            f"{where} ({name}): RE2 cannot compile this pattern: {reason}"
        ) from None
    if regex.fullmatch(b"") is not None:
        raise RedactionSettingsError(
            f"{where} ({name}): the pattern matches the empty string; it must match something"
        )
    value = regex.groupindex.get("value")
    return TenantPattern(name=name, regex=regex, value_group=value)


@attrs.frozen(kw_only=True)
class RedactionSettings:
    """What one tenant's redaction does.

    Args:
        classes: the built-in classes that run (default: all of them).
        patterns: the tenant's own named patterns, compiled.
        pseudonyms: replace each value by a stable per-session name (``[email_1]``)
            instead of ``[REDACTED:email]``.
    """

    classes: frozenset[str] = frozenset(BUILTIN_CLASSES)
    patterns: tuple[TenantPattern, ...] = ()
    pseudonyms: bool = False

    @classmethod
    def default(cls) -> RedactionSettings:
        """Every built-in class on, no tenant pattern, ``[REDACTED:class]`` placeholders."""
        return _DEFAULT

    @classmethod
    def from_bundle(cls, section: Mapping[str, Any]) -> RedactionSettings:
        """The settings a bundle's verified ``redaction`` section describes.

        Raises:
            RedactionSettingsError: the section breaks the schema, names a class that does
                not exist, names a pattern twice or after a built-in class, or holds a
                pattern RE2 cannot compile. The message names the place.
        """
        section = _plain(section)
        error = jsonschema.exceptions.best_match(_validator().iter_errors(section))
        if error is not None:
            where = "".join(
                f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path
            )
            raise RedactionSettingsError(f"redaction{where}: {error.message}")
        switches: Mapping[str, bool] = section.get("classes", {})
        unknown = sorted(set(switches) - set(BUILTIN_CLASSES))
        if unknown:
            raise RedactionSettingsError(
                f"redaction.classes: unknown class {unknown[0]!r}; the classes are "
                + ", ".join(sorted(BUILTIN_CLASSES))
            )
        classes = frozenset(n for n in BUILTIN_CLASSES if switches.get(n, True))
        return cls(
            classes=classes,
            patterns=_patterns(section.get("patterns", ())),
            pseudonyms=bool(section.get("pseudonyms", False)),
        )

    @property
    def kinds(self) -> frozenset[str]:
        """Every class name this tenant's redaction can report."""
        return self.classes | {p.name for p in self.patterns}


def load_settings_file(path: Path) -> RedactionSettings:
    """The settings of a JSON file holding a bundle's ``redaction`` section.

    Raises:
        RedactionSettingsError: the file cannot be read, is not a JSON object, or is not a
            valid section; the message starts with the path.
    """
    try:
        section = loads(path.read_bytes(), max_bytes=MAX_SETTINGS_FILE_BYTES)
    except OSError as exc:
        raise RedactionSettingsError(f"{path}: {exc.strerror}") from None
    except StrictJsonError as exc:
        raise RedactionSettingsError(f"{path}: not JSON: {exc}") from None
    if not isinstance(section, dict):
        raise RedactionSettingsError(f"{path}: expected a JSON object")
    try:
        return RedactionSettings.from_bundle(section)
    except RedactionSettingsError as exc:
        raise RedactionSettingsError(f"{path}: {exc}") from None


def _plain(value: Any) -> Any:
    """JSON as the schema checks read it: dicts and lists.

    A verified bundle's section comes frozen (read-only mappings, tuples for lists), which
    jsonschema's type checks would take for neither objects nor arrays.
    """
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _patterns(entries: Iterable[Mapping[str, str]]) -> tuple[TenantPattern, ...]:
    compiled: list[TenantPattern] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"redaction.patterns[{index}]"
        name = entry["name"]
        if name in BUILTIN_CLASSES:
            raise RedactionSettingsError(
                f"{where}: the name {name!r} is a built-in class; give the pattern its own name"
            )
        if name in seen:
            raise RedactionSettingsError(f"{where}: the name {name!r} is used twice")
        seen.add(name)
        compiled.append(compile_pattern(name, entry["pattern"], where=where))
    return tuple(compiled)


_DEFAULT = RedactionSettings()
