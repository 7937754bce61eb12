"""The audit record's JSON Schema (contracts/api/audit/v1), compiled once."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jsonschema

from contracts import load_json

RECORD_SCHEMA = "api/audit/v1/record.schema.json"


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load_json(RECORD_SCHEMA))


def record_problem(record: Mapping[str, Any]) -> str | None:
    """What is wrong with ``record`` for the schema, or None if it is valid."""
    error = jsonschema.exceptions.best_match(_validator().iter_errors(record))
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path) or "(record)"
    return f"schema: {where}: {error.message}"
