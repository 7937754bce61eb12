"""What the debug endpoint answers: routing, content negotiation and the bearer check.

Plain functions from a parsed request to a :class:`Response`; the server (``_server.py``)
only moves bytes. The tree is taken through a callable so these are tested without sockets.
"""

from __future__ import annotations

import hmac
import json
import urllib.parse
from collections.abc import Callable, Sequence

import attrs

from actors.telemetry import PROMETHEUS_CONTENT_TYPE, Telemetry
from zl_actors import ActorSnapshot

from ._config import MAX_REFRESH_S, MIN_REFRESH_S
from ._dashboard import render_dashboard
from ._html import render_html

ACTORS_PATH = "/debug/actors"
HEALTH_PATH = "/debug/health"
#: ``POST /debug/faults?action=crash|hang|slow|clear&path=/host/...[&seconds=S]``: fault
#: injection for chaos runs; it exists only in a process started with faults enabled.
FAULTS_PATH = "/debug/faults"
#: ``GET /debug/runtime``: counts for soak runs and dashboards (live Trio tasks, actors,
#: failures and garbage collections so far), as JSON.
RUNTIME_PATH = "/debug/runtime"
DASHBOARD_PATH = "/debug/dashboard"
METRICS_PATH = "/metrics"
KNOWN_PATHS = frozenset({ACTORS_PATH, HEALTH_PATH, RUNTIME_PATH, DASHBOARD_PATH, METRICS_PATH})
FAULT_ACTIONS = frozenset({"crash", "hang", "slow", "clear"})

#: Injects one fault: (action, actor path, seconds for ``slow``); raises LookupError for a
#: path with no live actor, ValueError for a fault that does not apply there.
FaultControl = Callable[[str, str, float], None]

#: Sent on every answer: nothing here may be cached, sniffed, framed or leak a referrer.
COMMON_HEADERS: tuple[tuple[str, str], ...] = (
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
)
#: The page is self-contained: inline style only, nothing loaded, no script runs.
HTML_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

Headers = Sequence[tuple[bytes, bytes]]


@attrs.frozen(kw_only=True)
class Response:
    """One answer: status, headers (without framing headers) and the whole body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def _text(status: int, text: str, *extra: tuple[str, str]) -> Response:
    return Response(
        status=status,
        headers=(("Content-Type", "text/plain; charset=utf-8"), *extra, *COMMON_HEADERS),
        body=(text + "\n").encode(),
    )


def plain_error(status: int, text: str, *extra: tuple[str, str]) -> Response:
    """A short plain-text answer (used for 4xx/5xx, also by the server on protocol errors)."""
    return _text(status, text, *extra)


def header(headers: Headers, name: bytes) -> bytes | None:
    """The value of header ``name`` (lower-case, as h11 gives them), or None; the first wins."""
    return next((value for key, value in headers if key == name), None)


def bearer_ok(authorization: bytes | None, token: str) -> bool:
    """Whether an ``Authorization`` value is ``Bearer <token>``, compared in constant time.

    The scheme is case-insensitive (RFC 9110); the token is compared with
    ``hmac.compare_digest`` so the time taken does not reveal how much of it matched.
    """
    if authorization is None:
        return False
    scheme, _, credentials = authorization.strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return False
    return hmac.compare_digest(credentials.strip(), token.encode("ascii"))


def _accept_quality(accept: str, media_type: str) -> float:
    """The q-value ``accept`` gives ``media_type`` (exact match, then type/*, then */*)."""
    main = media_type.split("/")[0]
    best: tuple[int, float] = (-1, 0.0)  # (specificity, q)
    for item in accept.split(","):
        parts = [part.strip() for part in item.split(";")]
        rng = parts[0].lower()
        quality = 1.0
        for param in parts[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if rng == media_type:
            specificity = 2
        elif rng == f"{main}/*":
            specificity = 1
        elif rng == "*/*":
            specificity = 0
        else:
            continue
        if specificity > best[0]:
            best = (specificity, quality)
    return best[1]


def wants_json(accept: str | None, format_param: str | None) -> bool:
    """Whether to answer JSON: ``?format=json``, or an Accept that prefers JSON to HTML.

    Raises:
        ValueError: ``format_param`` is neither ``json`` nor ``html``.
    """
    if format_param is not None:
        if format_param not in ("json", "html"):
            raise ValueError(f"unknown format {format_param!r} (use json or html)")
        return format_param == "json"
    if not accept:
        return False
    json_q = _accept_quality(accept, "application/json")
    return json_q > 0 and json_q > _accept_quality(accept, "text/html")


def parse_refresh(value: str | None) -> int | None:
    """The page's ``?refresh=SECONDS``, clamped to a sane range.

    Raises:
        ValueError: not a whole number.
    """
    if value is None:
        return None
    seconds = int(value)
    return max(MIN_REFRESH_S, min(MAX_REFRESH_S, seconds))


def answer(
    *,
    method: bytes,
    target: bytes,
    headers: Headers,
    token: str | None,
    snapshot: Callable[[], ActorSnapshot],
    faults: FaultControl | None = None,
    label: str = "",
    runtime: Callable[[], dict[str, int]] | None = None,
    telemetry: Telemetry | None = None,
    title: str = "zl",
) -> Response:
    """The response to one request.

    Args:
        method: the request method as sent.
        target: the request target (path and query).
        headers: the request headers, names lower-case.
        token: the bearer token every request must carry, or None when none is needed.
        snapshot: takes the live tree (called only for an authorised ``GET /debug/actors``).
        faults: injects faults (``POST /debug/faults``); None where faults are off, and
            the path is then unknown.
        label: which process this is, for the page's title and an ``X-Zl-Process`` header.
        runtime: counts for ``GET /debug/runtime`` (live tasks, actors, failures so far).
        telemetry: the process's metrics, for ``/metrics`` (404 when None or when it keeps
            no pull reader) and ``/debug/dashboard``.
        title: the process's name on the dashboard.

    Returns:
        401 without the right token (before anything else, so a stranger learns nothing,
        not even which paths exist); 404 for an unknown path; 405 for a method other than
        GET on a known one; 400 for a bad query; else the health text or the tree.
    """
    if token is not None and not bearer_ok(header(headers, b"authorization"), token):
        return _text(401, "unauthorised", ("WWW-Authenticate", 'Bearer realm="zl-debug"'))
    url = urllib.parse.urlsplit(target.decode("latin-1"))
    if url.path == FAULTS_PATH and faults is not None:
        return _fault(method, url.query, faults)
    if url.path not in KNOWN_PATHS:
        return _text(404, "not found")
    if method != b"GET":
        return _text(405, "method not allowed", ("Allow", "GET"))
    if url.path == HEALTH_PATH:
        return _text(200, "ok")
    if url.path == RUNTIME_PATH:
        counts = {} if runtime is None else runtime()
        return Response(
            status=200,
            headers=(("Content-Type", "application/json"), *COMMON_HEADERS),
            body=json.dumps(counts).encode(),
        )
    if url.path == METRICS_PATH:
        if telemetry is None or not telemetry.scrapable:
            return _text(404, "metrics are not kept here (telemetry.prometheus = false)")
        return Response(
            status=200,
            headers=(("Content-Type", PROMETHEUS_CONTENT_TYPE), *COMMON_HEADERS),
            body=telemetry.prometheus_text().encode(),
        )
    query = dict(urllib.parse.parse_qsl(url.query))
    accept = header(headers, b"accept")
    try:
        as_json = wants_json(
            None if accept is None else accept.decode("latin-1"), query.get("format")
        )
        refresh = parse_refresh(query.get("refresh"))
    except ValueError as error:
        return _text(400, str(error))
    if url.path == DASHBOARD_PATH:
        families = telemetry.metric_families() if telemetry is not None else []
        return Response(
            status=200,
            headers=(
                ("Content-Type", "text/html; charset=utf-8"),
                ("Content-Security-Policy", HTML_CSP),
                *COMMON_HEADERS,
            ),
            body=render_dashboard(families, title=title, refresh_s=refresh).encode(),
        )
    tree = snapshot()
    if as_json:
        return Response(
            status=200,
            headers=(
                ("Content-Type", "application/json"),
                ("Vary", "Accept"),
                *((("X-Zl-Process", label),) if label else ()),
                *COMMON_HEADERS,
            ),
            body=json.dumps(tree.to_json(), ensure_ascii=False).encode(),
        )
    return Response(
        status=200,
        headers=(
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Security-Policy", HTML_CSP),
            ("Vary", "Accept"),
            *COMMON_HEADERS,
        ),
        body=render_html(tree, refresh_s=refresh, label=label).encode(),
    )


def _fault(method: bytes, query: str, faults: FaultControl) -> Response:
    if method != b"POST":
        return _text(405, "method not allowed", ("Allow", "POST"))
    params = dict(urllib.parse.parse_qsl(query))
    action, path = params.get("action", ""), params.get("path", "")
    if action not in FAULT_ACTIONS or not path:
        return _text(400, f"give action={'|'.join(sorted(FAULT_ACTIONS))} and path=/actor/path")
    try:
        seconds = float(params.get("seconds", "0"))
        faults(action, path, seconds)
    except LookupError:
        return _text(404, f"no actor at {path}")
    except ValueError as error:
        return _text(400, str(error))
    return _text(200, f"{action} {path}")
