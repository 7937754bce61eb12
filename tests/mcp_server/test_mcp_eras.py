"""The era rules of a dual-era server (2025-11-25 handshake, 2026-07-28 per-request _meta)."""

from __future__ import annotations

from typing import Any

import pytest

from actors.mcp import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    UNSUPPORTED_PROTOCOL_VERSION,
    CacheHint,
    Era,
    EraGate,
    Implementation,
    JsonRpcError,
    Request,
)

MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}
INIT_PARAMS = {"protocolVersion": "2025-11-25", "capabilities": {}}


def gate() -> EraGate:
    return EraGate(server_info=Implementation(name="s", version="1"), capabilities={"tools": {}})


def request(method: str, params: dict[str, Any] | None = None, id: int = 1) -> Request:
    return Request(id=id, method=method, params=params)


def refusal(g: EraGate, req: Request) -> JsonRpcError:
    with pytest.raises(JsonRpcError) as info:
        g.admit(req)
    assert info.value.request_id == req.id
    return info.value


class TestLegacy:
    """2025-11-25: initialize first, then plain requests; modern claims are refused."""

    def test_request_before_initialize_is_refused(self) -> None:
        assert refusal(gate(), request("tools/list")).code == INVALID_REQUEST

    def test_ping_is_allowed_before_initialize(self) -> None:
        assert gate().admit(request("ping")).era is Era.LEGACY

    def test_handshake_then_requests(self) -> None:
        g = gate()
        admitted = g.admit(request("initialize", INIT_PARAMS))
        result = g.initialize_result(request("initialize", INIT_PARAMS))
        assert result["protocolVersion"] == "2025-11-25"
        assert result["serverInfo"] == {"name": "s", "version": "1"}
        assert g.admit(request("tools/list")).era is Era.LEGACY
        assert g.shape(admitted, {"tools": []}) == {"tools": []}

    def test_unknown_version_gets_our_version(self) -> None:
        params = {"protocolVersion": "2024-01-01", "capabilities": {}}
        assert gate().initialize_result(request("initialize", params))["protocolVersion"] == (
            "2025-11-25"
        )

    def test_second_initialize_and_modern_claim_are_refused(self) -> None:
        g = gate()
        g.initialize_result(request("initialize", INIT_PARAMS))
        assert refusal(g, request("initialize", INIT_PARAMS)).code == INVALID_REQUEST
        modern = request("tools/list", {"_meta": MODERN_META})
        assert refusal(g, modern).code == INVALID_REQUEST

    def test_bad_initialize_params(self) -> None:
        assert refusal(gate(), request("initialize", {})).code == INVALID_PARAMS


class TestModern:
    """2026-07-28: every request carries its version; results are shaped for the era."""

    def test_discover_locks_modern(self) -> None:
        g = gate()
        admitted = g.admit(request("server/discover", {"_meta": MODERN_META}))
        assert (admitted.era, admitted.version, g.era) == (Era.MODERN, "2026-07-28", Era.MODERN)
        result = g.discover_result(CacheHint(ttl_ms=5, scope="public"))
        assert result["supportedVersions"] == ["2026-07-28", "2025-11-25"]
        assert result["resultType"] == "complete"
        assert (result["ttlMs"], result["cacheScope"]) == (5, "public")
        assert result["_meta"]["io.modelcontextprotocol/serverInfo"] == {
            "name": "s",
            "version": "1",
        }

    def test_unsupported_version_names_ours_and_decides_nothing(self) -> None:
        g = gate()
        meta = dict(MODERN_META, **{"io.modelcontextprotocol/protocolVersion": "2099-01-01"})
        error = refusal(g, request("server/discover", {"_meta": meta}))
        assert error.code == UNSUPPORTED_PROTOCOL_VERSION
        assert error.data == {"supported": ["2026-07-28", "2025-11-25"], "requested": "2099-01-01"}
        assert g.era is None  # a dual-era client may still fall back to initialize
        g.initialize_result(request("initialize", INIT_PARAMS))

    def test_missing_capabilities_is_invalid_params(self) -> None:
        meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}
        assert refusal(gate(), request("tools/list", {"_meta": meta})).code == INVALID_PARAMS

    def test_missing_meta_after_modern_is_invalid_params(self) -> None:
        g = gate()
        g.admit(request("tools/list", {"_meta": MODERN_META}))
        assert refusal(g, request("tools/list")).code == INVALID_PARAMS

    def test_initialize_on_modern_names_versions(self) -> None:
        g = gate()
        g.admit(request("tools/list", {"_meta": MODERN_META}))
        error = refusal(g, request("initialize", INIT_PARAMS))
        assert error.code == UNSUPPORTED_PROTOCOL_VERSION
        assert "2025-11-25" in error.data["supported"]

    def test_methods_of_the_other_era(self) -> None:
        assert refusal(gate(), request("ping", {"_meta": MODERN_META})).code == METHOD_NOT_FOUND
        assert refusal(gate(), request("resources/list")).code == METHOD_NOT_FOUND
