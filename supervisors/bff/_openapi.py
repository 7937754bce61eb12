"""The BFF's OpenAPI document (``contracts/api/bff/openapi.yaml``), loaded once.

The document is the source of truth: request bodies are checked against its schemas here,
so the server cannot accept what the document does not allow; the tests hold the answers
to it. The request schemas use only keywords that JSON Schema draft 7 and 2020-12 (which
OpenAPI 3.1 uses) read alike, so they are compiled with ``fastjsonschema`` (generated
Python, about 50 times faster here than interpreting them per request); a test checks
every request schema with ``jsonschema``'s 2020-12 validator as well.
"""

from __future__ import annotations

import functools
from typing import Any, Final

import fastjsonschema
import yaml

from contracts import CONTRACTS_ROOT

from ._problems import Problem

OPENAPI_PATH: Final = CONTRACTS_ROOT / "api" / "bff" / "openapi.yaml"


@functools.cache
def openapi_document() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(OPENAPI_PATH.read_text(encoding="utf-8"))
    return document


@functools.cache
def _validator(schema_name: str) -> Any:
    components = openapi_document()["components"]
    if schema_name not in components["schemas"]:
        raise KeyError(f"no schema {schema_name!r} in the OpenAPI document")
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$ref": f"#/components/schemas/{schema_name}",
        "components": components,
    }
    return fastjsonschema.compile(schema, use_formats=False)


def check_body(schema_name: str, value: Any) -> None:
    """Check a request body against the document's schema ``schema_name``.

    Raises:
        Problem: ``invalid_request`` (400) naming the first field that is wrong.
    """
    try:
        _validator(schema_name)(value)
    except fastjsonschema.JsonSchemaValueException as error:
        message = error.message if len(error.message) <= 200 else error.message[:200] + "…"
        raise Problem("invalid_request", message.replace("data", "body", 1)) from None


def load_validators() -> None:
    """Read the document and compile every request schema now (at start-up, not on the
    first request, where the YAML parse and compilation would cost that caller ~0.3 s)."""
    for name in REQUEST_SCHEMAS:
        _validator(name)


#: The schemas request bodies are checked against.
REQUEST_SCHEMAS: Final = ("CreateSession", "ChatStreamRequest", "ChatCompletionRequest")
