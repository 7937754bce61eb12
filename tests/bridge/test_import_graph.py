"""The bridge installs on a user's machine: importing it pulls in none of the host's stack."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: Top-level packages the bridge must never import. (The protobuf runtime is allowed: it
#: carries the relay's binary frames, ``zl.relay.v1+proto``; the host's API is not.)
FORBIDDEN_PACKAGES = ("grpc", "grpc_tools", "h2", "httpx", "httpcore", "purerpc")
#: Project modules of other processes and domains.
FORBIDDEN_MODULES = (
    "contracts.generated.agent_pb2",
    "contracts.generated.grpc",
    "supervisors.host",
    # The debug endpoint (h11) is allowed: the bridge serves /metrics with it.
    "supervisors.edges.grpc",
    "actors.session",
    "actors.provider",
    "actors.tools",
    "actors.audit",
)
PROBE = "import json, sys, supervisors.bridge; print(json.dumps(sorted(sys.modules)))"


def imported_by(module_probe: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", module_probe],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    modules: list[str] = json.loads(out.stdout)
    return modules


class TestBridgeImports:
    """``import supervisors.bridge`` in a fresh interpreter loads only what the bridge needs."""

    def test_no_host_stack(self) -> None:
        modules = imported_by(PROBE)
        assert "supervisors.bridge" in modules
        assert "actors.bridge" in modules
        # The bridge verifies the signed policy itself; the policy cache's HTTPS client
        # (httpx, forbidden above) is loaded only on the host.
        assert "actors.policy._bundle" in modules
        bad = [
            m
            for m in modules
            if m.split(".")[0] in FORBIDDEN_PACKAGES
            or any(m == f or m.startswith(f + ".") for f in FORBIDDEN_MODULES)
        ]
        assert bad == []

    def test_probe_sees_forbidden_imports(self) -> None:
        """The probe itself works: importing the host does show up."""
        modules = imported_by(PROBE.replace("supervisors.bridge", "supervisors.host"))
        assert any(m.split(".")[0] in FORBIDDEN_PACKAGES for m in modules)
