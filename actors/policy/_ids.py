"""Ids as every contract writes them (tenants, users, devices, policies)."""

from __future__ import annotations

import re
from typing import Final

#: The ``id`` pattern of the relay and policy schemas.
ID_PATTERN: Final = "^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
_ID = re.compile(ID_PATTERN[:-1] + r"\Z")


def is_id(value: object) -> bool:
    """Whether ``value`` is a valid id (``$`` as JSON Schema means it: the very end)."""
    return isinstance(value, str) and _ID.match(value) is not None
