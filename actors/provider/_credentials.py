"""The upstream API key: where it comes from, and a wrapper that will not print it.

The key is read from an environment variable or a file that the configuration names (or
passed in directly by a process that got it from a secret store). Once read it lives only in
an :class:`ApiKey`, whose ``repr`` and ``str`` are masked, so it cannot reach a log line, an
error message or the debug endpoint by being formatted by accident.

Errors: a configured source that yields no key raises ``ProviderError("provider.unavailable")``
naming the source (never the value).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from actors.errors import ProviderError

_MASK = "***"


class ApiKey:
    """A secret string whose only way out is :meth:`reveal`.

    Args:
        value: the key; surrounding whitespace (a file's trailing newline) is dropped.

    Raises:
        ValueError: if the key is empty.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        value = value.strip()
        if not value:
            raise ValueError("an API key cannot be empty")
        self._value = value

    def reveal(self) -> str:
        """The key itself, for the Authorization header and for redaction; nowhere else."""
        return self._value

    def redact(self, text: str) -> str:
        """``text`` with every occurrence of the key replaced by a mask."""
        return text.replace(self._value, _MASK)

    def __repr__(self) -> str:
        return f"ApiKey({_MASK!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ApiKey) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("ApiKey", self._value))

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would copy the secret into places (caches, queues) nobody audits.
        raise TypeError("ApiKey cannot be pickled")


def load_api_key(
    *,
    key: ApiKey | None,
    env_var: str | None,
    file: str | None,
    environ: Mapping[str, str] | None = None,
) -> ApiKey | None:
    """Resolve the API key: a given key first, then the environment variable, then the file.

    Args:
        key: a key already in hand (from a secret store); wins over the other sources.
        env_var: the name of an environment variable that holds the key.
        file: the path of a file whose content is the key.
        environ: the environment to read (``os.environ`` when None).

    Returns:
        The key, or None when no source is configured (a keyless local server).

    Raises:
        ProviderError: ``provider.unavailable`` when a configured source is missing or empty.
    """
    if key is not None:
        return key
    env = os.environ if environ is None else environ
    if env_var is not None:
        value = env.get(env_var, "")
        if not value.strip():
            raise ProviderError(
                "provider.unavailable", f"API key environment variable {env_var!r} is not set"
            )
        return ApiKey(value)
    if file is not None:
        try:
            value = Path(file).read_text(encoding="utf-8")
        except OSError as exc:
            raise ProviderError(
                "provider.unavailable",
                f"API key file {file!r} cannot be read ({type(exc).__name__})",
            ) from None
        if not value.strip():
            raise ProviderError("provider.unavailable", f"API key file {file!r} is empty")
        return ApiKey(value)
    return None
