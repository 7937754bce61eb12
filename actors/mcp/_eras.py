"""The two MCP protocol eras a peer may speak, and the per-process rules that pick one.

* **2025-11-25** ("legacy"): the client sends ``initialize``, the server answers with the
  negotiated version, capabilities and serverInfo, the client sends
  ``notifications/initialized``; later requests carry no version.
* **2026-07-28** ("modern"): no handshake. Every request carries
  ``io.modelcontextprotocol/protocolVersion`` and ``.../clientCapabilities`` in
  ``params._meta``; ``server/discover`` returns the supported versions, capabilities and
  (in ``_meta``) serverInfo; every result carries ``resultType``; list and discover
  results carry ``ttlMs``/``cacheScope``.

A dual-era stdio server is locked to the era of the first request it *serves*
(``initialize`` → legacy, a valid modern ``_meta`` → modern); a later request from the
other era is refused, as the 2026-07-28 versioning page and the reference SDK do. A
request that is refused (for instance a ``server/discover`` probe at a version we do
not speak) decides nothing, so a dual-era client can still fall back to ``initialize``.

Errors raised here are :class:`~actors.mcp._jsonrpc.JsonRpcError` (see that module's tree).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import attrs

from ._jsonrpc import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    UNSUPPORTED_PROTOCOL_VERSION,
    JsonRpcError,
    Request,
)

LEGACY_VERSION = "2025-11-25"
MODERN_VERSION = "2026-07-28"
LEGACY_VERSIONS: tuple[str, ...] = (LEGACY_VERSION,)
MODERN_VERSIONS: tuple[str, ...] = (MODERN_VERSION,)
SUPPORTED_VERSIONS: tuple[str, ...] = (*MODERN_VERSIONS, *LEGACY_VERSIONS)

PROTOCOL_VERSION_META_KEY = "io.modelcontextprotocol/protocolVersion"
CLIENT_CAPABILITIES_META_KEY = "io.modelcontextprotocol/clientCapabilities"
CLIENT_INFO_META_KEY = "io.modelcontextprotocol/clientInfo"
SERVER_INFO_META_KEY = "io.modelcontextprotocol/serverInfo"
TRACEPARENT_META_KEY = "traceparent"
#: ``_meta`` keys that carry the call's tenant and audit id beside the trace context.
TENANT_META_KEY = "dev.zerolatency/tenant"
AUDIT_ID_META_KEY = "dev.zerolatency/audit_id"


def call_meta(*, tenant: str | None, audit_id: str | None) -> dict[str, str]:
    """The ``_meta`` entries that name a call's tenant and audit id (those that are set)."""
    meta = {}
    if tenant:
        meta[TENANT_META_KEY] = tenant
    if audit_id:
        meta[AUDIT_ID_META_KEY] = audit_id
    return meta


LEGACY_METHODS = frozenset({"initialize", "ping", "tools/list", "tools/call"})
# ping and the handshake are gone in 2026-07-28; server/discover is new and mandatory.
MODERN_METHODS = frozenset({"server/discover", "tools/list", "tools/call"})
CACHEABLE_METHODS = frozenset({"server/discover", "tools/list"})


class Era(enum.Enum):
    """Which protocol family a request is served under."""

    LEGACY = "legacy"
    MODERN = "modern"


@attrs.frozen(kw_only=True)
class Implementation:
    """A peer's self-reported name and version (MCP ``Implementation``)."""

    name: str
    version: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version}


@attrs.frozen(kw_only=True)
class Admitted:
    """A request the era rules accept, with the version it is served at."""

    era: Era
    version: str
    meta: Mapping[str, Any]


@attrs.frozen(kw_only=True)
class CacheHint:
    """``ttlMs``/``cacheScope`` for a cacheable modern result."""

    ttl_ms: int
    scope: str = "private"


def request_meta(params: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """``params._meta`` as a mapping (empty when absent or not an object)."""
    if params is None:
        return {}
    meta = params.get("_meta")
    return meta if isinstance(meta, dict) else {}


def has_modern_envelope(params: Mapping[str, Any] | None) -> bool:
    """Whether the request claims a per-request protocol version (the modern envelope)."""
    return PROTOCOL_VERSION_META_KEY in request_meta(params)


class EraGate:
    """Decides, request by request, whether and in which era a server serves it.

    Args:
        server_info: the identity reported in ``initialize`` and modern results.
        capabilities: the server capabilities object for both eras.
        instructions: optional guidance text for the model.
    """

    def __init__(
        self,
        *,
        server_info: Implementation,
        capabilities: Mapping[str, Any],
        instructions: str | None = None,
    ) -> None:
        self.server_info = server_info
        self.capabilities = dict(capabilities)
        self.instructions = instructions
        self.era: Era | None = None
        self.initialized_notified = False

    def admit(self, request: Request) -> Admitted:
        """Check ``request`` against the era rules and lock the era on first success.

        Returns:
            The era and version to serve it at.

        Raises:
            JsonRpcError: ``METHOD_NOT_FOUND`` for a method neither era has (or not in the
                era it is sent in); ``UNSUPPORTED_PROTOCOL_VERSION`` for a modern version we
                do not speak, or ``initialize`` after the process went modern;
                ``INVALID_PARAMS`` for a modern request missing required ``_meta`` fields;
                ``INVALID_REQUEST`` for a request before ``initialize``, a second
                ``initialize``, or a modern request on a legacy process.
        """
        method = request.method
        if method not in LEGACY_METHODS and method not in MODERN_METHODS:
            raise JsonRpcError(
                METHOD_NOT_FOUND, f"method not found: {method}", request_id=request.id
            )
        if method == "initialize":
            return self._admit_initialize(request)
        meta = request_meta(request.params)
        if has_modern_envelope(request.params):
            return self._admit_modern(request, meta)
        if self.era is Era.MODERN or method == "server/discover":
            raise JsonRpcError(
                INVALID_PARAMS,
                f"missing params._meta[{PROTOCOL_VERSION_META_KEY!r}]: protocol {MODERN_VERSION} "
                "requires the protocol version on every request",
                request_id=request.id,
            )
        if self.era is None and method != "ping":
            raise JsonRpcError(
                INVALID_REQUEST,
                f"server not initialized: send initialize first ({LEGACY_VERSION}), or put "
                f"{PROTOCOL_VERSION_META_KEY} in params._meta ({MODERN_VERSION})",
                request_id=request.id,
            )
        if method not in LEGACY_METHODS:
            raise JsonRpcError(
                METHOD_NOT_FOUND, f"method not found: {method}", request_id=request.id
            )
        return Admitted(era=Era.LEGACY, version=LEGACY_VERSION, meta=meta)

    def _admit_initialize(self, request: Request) -> Admitted:
        if self.era is Era.MODERN:
            requested = (request.params or {}).get("protocolVersion")
            raise JsonRpcError(
                UNSUPPORTED_PROTOCOL_VERSION,
                f"this server process speaks {MODERN_VERSION} without a handshake; "
                f"initialize is not available (supported: {', '.join(SUPPORTED_VERSIONS)})",
                data={"supported": list(SUPPORTED_VERSIONS), "requested": requested},
                request_id=request.id,
            )
        if self.era is Era.LEGACY:
            raise JsonRpcError(INVALID_REQUEST, "already initialized", request_id=request.id)
        params = request.params or {}
        if not isinstance(params.get("protocolVersion"), str) or not isinstance(
            params.get("capabilities"), dict
        ):
            raise JsonRpcError(
                INVALID_PARAMS,
                "initialize needs params.protocolVersion (string) and params.capabilities (object)",
                request_id=request.id,
            )
        return Admitted(era=Era.LEGACY, version=LEGACY_VERSION, meta=request_meta(params))

    def _admit_modern(self, request: Request, meta: Mapping[str, Any]) -> Admitted:
        version = meta.get(PROTOCOL_VERSION_META_KEY)
        if self.era is Era.LEGACY:
            raise JsonRpcError(
                INVALID_REQUEST,
                f"this server process was initialized for {LEGACY_VERSION}; "
                "per-request protocol versions are not accepted on it",
                request_id=request.id,
            )
        if version not in MODERN_VERSIONS:
            raise JsonRpcError(
                UNSUPPORTED_PROTOCOL_VERSION,
                "Unsupported protocol version",
                data={"supported": list(SUPPORTED_VERSIONS), "requested": version},
                request_id=request.id,
            )
        if not isinstance(meta.get(CLIENT_CAPABILITIES_META_KEY), dict):
            raise JsonRpcError(
                INVALID_PARAMS,
                f"missing params._meta[{CLIENT_CAPABILITIES_META_KEY!r}] (an object)",
                request_id=request.id,
            )
        if request.method not in MODERN_METHODS:
            raise JsonRpcError(
                METHOD_NOT_FOUND,
                f"method not found in {MODERN_VERSION}: {request.method}",
                request_id=request.id,
            )
        self.era = Era.MODERN
        assert isinstance(version, str)  # checked against MODERN_VERSIONS above
        return Admitted(era=Era.MODERN, version=version, meta=meta)

    def initialize_result(self, request: Request) -> dict[str, Any]:
        """Answer an admitted ``initialize`` and lock the process to the legacy era.

        The version is the client's if we speak it, else our newest legacy one (the
        client then decides whether to continue), as the 2025-11-25 lifecycle says.
        """
        requested = (request.params or {}).get("protocolVersion")
        version = requested if requested in LEGACY_VERSIONS else LEGACY_VERSION
        self.era = Era.LEGACY
        result: dict[str, Any] = {
            "protocolVersion": version,
            "capabilities": self.capabilities,
            "serverInfo": self.server_info.to_json(),
        }
        if self.instructions:
            result["instructions"] = self.instructions
        return result

    def note_initialized(self) -> None:
        """Record ``notifications/initialized`` (requests are served either way)."""
        self.initialized_notified = True

    def discover_result(self, hint: CacheHint) -> dict[str, Any]:
        """The body of a ``server/discover`` result (shaped later by :meth:`shape`)."""
        result: dict[str, Any] = {
            "supportedVersions": list(SUPPORTED_VERSIONS),
            "capabilities": self.capabilities,
        }
        if self.instructions:
            result["instructions"] = self.instructions
        return self.shape(Admitted(era=Era.MODERN, version=MODERN_VERSION, meta={}), result, hint)

    def shape(
        self, admitted: Admitted, result: dict[str, Any], hint: CacheHint | None = None
    ) -> dict[str, Any]:
        """Add the era's mandatory result fields.

        Modern results get ``resultType: "complete"`` and serverInfo in ``_meta``;
        cacheable ones also ``ttlMs``/``cacheScope``. Legacy results are returned as is.
        """
        if admitted.era is Era.LEGACY:
            return result
        shaped = dict(result)
        shaped["resultType"] = "complete"
        meta = dict(shaped.get("_meta") or {})
        meta[SERVER_INFO_META_KEY] = self.server_info.to_json()
        shaped["_meta"] = meta
        if hint is not None:
            shaped["ttlMs"] = hint.ttl_ms
            shaped["cacheScope"] = hint.scope
        return shaped
