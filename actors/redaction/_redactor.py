"""``Redactor``: find and replace; ``TenantRedaction``: which redactor each session gets.

A redactor replaces each found value by ``[REDACTED:class]``, or, with pseudonyms on, by a
name that stays the same for the same value within one session (``[email_1]``,
``[email_2]``…), so the model can still tell two addresses apart without seeing either.
The pseudonym table keeps keyed digests of the values, never the values themselves.

Redactors are plain objects with no I/O; one may be used from a worker thread (the
pseudonym table has its own lock).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ._errors import RedactionSettingsError
from ._scan import Found, scan
from ._secrets import key_class
from ._settings import RedactionSettings

#: Distinct values one session's pseudonym table names; past it, values get the plain
#: ``[REDACTED:class]`` (a session cannot grow the host's memory without bound).
PSEUDONYM_CAPACITY = 10_000
loads_json = json.loads
#: Shorter text holds nothing a built-in class finds (the shortest is an address such
#: as ``a@b.io``).
SHORTEST_FIND = 6

#: Tenants with their own settings; a bundle for one more is refused (nothing is evicted:
#: an evicted tenant would silently lose its own patterns).
MAX_TENANTS = 100_000


def placeholder(kind: str) -> str:
    return f"[REDACTED:{kind}]"


class Pseudonyms:
    """Stable names for values within one session: ``[email_1]`` is always the same address."""

    def __init__(self, capacity: int = PSEUDONYM_CAPACITY) -> None:
        self._key = os.urandom(32)
        self._capacity = capacity
        self._names: dict[bytes, str] = {}
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def name(self, kind: str, value: str) -> str:
        """The pseudonym of ``value`` (of class ``kind``) in this session."""
        digest = hashlib.blake2b(
            kind.encode() + b"\0" + value.encode("utf-8", "surrogatepass"),
            key=self._key,
            digest_size=16,
        ).digest()
        with self._lock:
            known = self._names.get(digest)
            if known is not None:
                return known
            if len(self._names) >= self._capacity:
                return placeholder(kind)
            self._counts[kind] += 1
            fresh = f"[{kind}_{self._counts[kind]}]"
            self._names[digest] = fresh
            return fresh

    def __len__(self) -> int:
        return len(self._names)


@attrs.frozen(kw_only=True)
class Redacted:
    """A redacted text, what was found in the original (offsets into it), counts by class."""

    text: str
    spans: tuple[Found, ...]

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(span.kind for span in self.spans))


class Redactor:
    """Finds and replaces secrets and personal data (see the module docstring).

    Args:
        settings: classes, tenant patterns and whether pseudonyms are used.
        pseudonyms: the table to name values with (a fresh one per redactor when the
            settings ask for pseudonyms and none is given).
    """

    def __init__(
        self,
        settings: RedactionSettings | None = None,
        *,
        pseudonyms: Pseudonyms | None = None,
    ) -> None:
        self.settings = settings if settings is not None else RedactionSettings.default()
        if pseudonyms is None and self.settings.pseudonyms:
            pseudonyms = Pseudonyms()
        self.pseudonyms = pseudonyms

    def find(self, text: str) -> list[Found]:
        """What would be removed from ``text``: sorted, not overlapping, character offsets."""
        if len(text) < SHORTEST_FIND and not self.settings.patterns:
            return []  # span attributes, ids, codes: shorter than anything a class finds
        return scan(text, self.settings.classes, self.settings.patterns)

    def redact(self, text: str) -> Redacted:
        """``text`` with every find replaced."""
        spans = self.find(text)
        if not spans:
            return Redacted(text=text, spans=())
        out: list[str] = []
        at = 0
        for span in spans:
            out.append(text[at : span.start])
            out.append(self.replacement(span.kind, text[span.start : span.end]))
            at = span.end
        out.append(text[at:])
        return Redacted(text="".join(out), spans=tuple(spans))

    def replacement(self, kind: str, value: str) -> str:
        if self.pseudonyms is not None:
            return self.pseudonyms.name(kind, value)
        return placeholder(kind)

    def redact_json(self, text: str) -> Redacted:
        """A JSON document's text, redacted string by string; it stays valid JSON.

        Each string is scanned decoded (a file's text as the file holds it, escapes and
        all), and a string under a secret-like name (``"password": "…"``) is scanned with
        its name in front, so that the name gives the context a bare value lacks. Keys,
        numbers and the document's shape are kept. Text that is not JSON is redacted as
        text. The spans' offsets are into the strings they were found in.
        """
        try:
            document = loads_json(text)
        except ValueError:
            return self.redact(text)
        found: list[Found] = []
        cleaned = self._redact_value(document, None, found)
        if not found:
            return Redacted(text=text, spans=())
        return Redacted(text=json.dumps(cleaned), spans=tuple(found))

    def _redact_value(self, value: Any, key: str | None, found: list[Found]) -> Any:
        if isinstance(value, str):
            if key is not None and key_class(key.encode("utf-8", "replace")) is not None:
                # "password": "hunter2" — scanned as password: "hunter2"
                prefix = f"{key}: "
                framed = self.redact(prefix + json.dumps(value))
                if framed.spans:
                    found.extend(framed.spans)
                    inner = framed.text[len(prefix) :]
                    try:
                        decoded = json.loads(inner)
                    except ValueError:
                        decoded = None
                    if isinstance(decoded, str):
                        return decoded
                    return self.replacement(framed.spans[0].kind, value)
            result = self.redact(value)
            found.extend(result.spans)
            return result.text
        if isinstance(value, list):
            return [self._redact_value(item, None, found) for item in value]
        if isinstance(value, dict):
            return {k: self._redact_value(item, k, found) for k, item in value.items()}
        return value


class TenantRedaction:
    """Where every session's redactor comes from: the tenant's settings, or the default.

    The policy engine hands over each verified bundle's ``redaction`` section
    (``update_from_bundle``); a tenant without one gets ``default`` (every built-in class
    on). Each session gets its own ``Redactor``, so pseudonyms never cross sessions.

    Args:
        default: the settings of a tenant that has none of its own.
    """

    def __init__(self, default: RedactionSettings | None = None) -> None:
        self.default = default if default is not None else RedactionSettings.default()
        self._tenants: dict[str, RedactionSettings] = {}
        self._lock = threading.Lock()

    def settings_for(self, tenant: str) -> RedactionSettings:
        """The settings in force for ``tenant`` now."""
        return self._tenants.get(tenant, self.default)

    def update_from_bundle(
        self, tenant: str, section: Mapping[str, Any] | None
    ) -> RedactionSettings:
        """Use a verified bundle's ``redaction`` section for ``tenant`` (None: the default).

        Raises:
            RedactionSettingsError: the section is invalid (the tenant keeps what it had);
                or this would be one tenant more than ``MAX_TENANTS``.
        """
        apply = self.prepare_update(tenant, section)
        apply()
        return self.settings_for(tenant)

    def prepare_update(self, tenant: str, section: Mapping[str, Any] | None) -> Callable[[], None]:
        """Check a bundle's section for ``tenant``; the call returned puts it in force.

        The policy cache checks the section before it accepts the bundle, and applies it
        once the bundle is recorded and current: a bundle is in force whole or not at all.

        Raises:
            RedactionSettingsError: as ``update_from_bundle`` (nothing has changed).
        """
        if section is None:
            return lambda: self.forget(tenant)
        settings = RedactionSettings.from_bundle(section)
        with self._lock:
            if tenant not in self._tenants and len(self._tenants) >= MAX_TENANTS:
                raise RedactionSettingsError(
                    f"redaction: settings for more than {MAX_TENANTS} tenants"
                )
        return lambda: self.set_settings(tenant, settings)

    def set_settings(self, tenant: str, settings: RedactionSettings) -> None:
        with self._lock:
            if tenant not in self._tenants and len(self._tenants) >= MAX_TENANTS:
                raise RedactionSettingsError(
                    f"redaction: settings for more than {MAX_TENANTS} tenants"
                )
            self._tenants[tenant] = settings

    def forget(self, tenant: str) -> None:
        with self._lock:
            self._tenants.pop(tenant, None)

    def session_redactor(self, tenant: str) -> Redactor:
        """A new redactor for one session of ``tenant`` (its own pseudonym table)."""
        return Redactor(self.settings_for(tenant))
