"""Errors as RFC 9457 problem details, with the error catalog's codes.

Every error response of the BFF is ``application/problem+json``::

    {"type": "/v1/problems/session.not_found", "title": "Not Found", "status": 404,
     "detail": "no session 1f2e... is yours", "code": "session.not_found",
     "retryable": false}

``type`` names the catalog code (``GET /v1/problems/{code}`` describes it); ``retryable``
comes from the catalog, never typed by hand. ``Problem`` is the exception an endpoint
raises; the app turns it into the response in one place.
"""

from __future__ import annotations

import http
import json
from collections.abc import Mapping
from typing import Final

from starlette.responses import Response

from contracts import error_catalog

PROBLEM_MEDIA_TYPE: Final = "application/problem+json"
PROBLEM_TYPE_PREFIX: Final = "/v1/problems/"

#: The HTTP status of each code when it is the answer to a request (not an SSE event).
STATUS_OF_CODE: Final[Mapping[str, int]] = {
    "invalid_request": 400,
    "message.too_large": 413,
    "unauthenticated": 401,
    "forbidden": 403,
    "not_found": 404,
    "session.not_found": 404,
    "session.busy": 409,
    "session.already_started": 409,
    "session.not_started": 409,
    "budget.exhausted": 409,
    "session.limit": 429,
    "overloaded": 503,
    "unavailable": 503,
    "deadline_exceeded": 504,
    "internal": 500,
}
#: Codes whose answers say when to try again (seconds).
RETRY_AFTER_S: Final[Mapping[str, int]] = {"session.limit": 1, "overloaded": 1, "unavailable": 1}


class Problem(Exception):
    """An error answer: a catalog code, a detail for a person, and optionally a status."""

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if code not in error_catalog():
            raise ValueError(f"error code {code!r} is not in the error catalog")
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.status = status if status is not None else STATUS_OF_CODE.get(code, 502)
        self.headers = dict(headers or {})

    @property
    def retryable(self) -> bool:
        return error_catalog()[self.code].retryable

    def body(self) -> dict[str, object]:
        return {
            "type": PROBLEM_TYPE_PREFIX + self.code,
            "title": http.HTTPStatus(self.status).phrase,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
            "retryable": self.retryable,
        }

    def response(self) -> Response:
        headers = dict(self.headers)
        if self.code in RETRY_AFTER_S:
            headers.setdefault("retry-after", str(RETRY_AFTER_S[self.code]))
        if self.status == 401:
            headers.setdefault("www-authenticate", 'Bearer realm="zl"')
        headers.setdefault("cache-control", "no-store")
        return Response(
            json.dumps(self.body()),
            status_code=self.status,
            media_type=PROBLEM_MEDIA_TYPE,
            headers=headers,
        )


def status_for_host_code(code: str) -> int:
    """The HTTP status for an error the host answered with (unknown codes: 502)."""
    return STATUS_OF_CODE.get(code, 502)


def describe_code(code: str) -> dict[str, object] | None:
    """What ``GET /v1/problems/{code}`` answers, or None for an unknown code."""
    spec = error_catalog().get(code)
    if spec is None:
        return None
    return {
        "code": code,
        "retryable": spec.retryable,
        "summary": spec.summary,
        "status": STATUS_OF_CODE.get(code),
    }


def known_code(code: str) -> str:
    """``code`` if the catalog has it, else ``internal`` (a host newer than this BFF)."""
    return code if code in error_catalog() else "internal"
