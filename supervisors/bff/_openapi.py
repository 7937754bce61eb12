"""The BFF's OpenAPI document (``contracts/api/bff/openapi.yaml``), loaded once.

The document is the source of truth: request bodies are checked against its schemas here
(JSON Schema 2020-12, as OpenAPI 3.1 uses), so the server cannot accept what the document
does not allow; the tests hold the answers to it.
"""

from __future__ import annotations

import functools
from typing import Any, Final

import jsonschema
import yaml

from contracts import CONTRACTS_ROOT

from ._problems import Problem

OPENAPI_PATH: Final = CONTRACTS_ROOT / "api" / "bff" / "openapi.yaml"


@functools.cache
def openapi_document() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(OPENAPI_PATH.read_text(encoding="utf-8"))
    return document


@functools.cache
def _validator(schema_name: str) -> jsonschema.Draft202012Validator:
    components = openapi_document()["components"]
    if schema_name not in components["schemas"]:
        raise KeyError(f"no schema {schema_name!r} in the OpenAPI document")
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": components}
    return jsonschema.Draft202012Validator(schema)


def _where(path: Any) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in path]
    return "body" + "".join(parts)


def check_body(schema_name: str, value: Any) -> None:
    """Check a request body against the document's schema ``schema_name``.

    Raises:
        Problem: ``invalid_request`` (400) naming the first field that is wrong.
    """
    error = jsonschema.exceptions.best_match(_validator(schema_name).iter_errors(value))
    if error is not None:
        message = error.message if len(error.message) <= 200 else error.message[:200] + "…"
        raise Problem("invalid_request", f"{_where(error.absolute_path)}: {message}")
