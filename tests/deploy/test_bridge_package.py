"""The bridge's own distribution: small, complete, and the same bridge as the main one."""

from __future__ import annotations

import re
import subprocess
import time
import tomllib
import zipfile
from pathlib import Path

import trio

from actors.bridge import BRIDGE_VERSION
from actors.relay import mint_device_token
from tests.bridge.test_import_graph import imported_by
from tests.relay._support import Bridge, Env, make_env, open_link, start_relay
from tests.relay.test_relay_e2e import TENANT, call, not_owner, wait_online

from .conftest import REPO, LeanBridge

#: Distributions the bridge must never pull in: the host's stack. (The protobuf runtime is
#: the bridge's too: it carries the relay's binary frames.)
HOST_ONLY = {
    "zero-latency",
    "grpcio",
    "grpcio-tools",
    "h2",
    "hpack",
    "hyperframe",
    "httpx",
    "httpcore",
    "httpx-sse",
    "opentelemetry-api",
    "opentelemetry-sdk",
    "rfc8785",
}
PROBE = (
    "import json, sys, supervisors.bridge, supervisors.bridge._doctor, actors.mcp.fs_server;"
    "print(json.dumps(sorted(sys.modules)))"
)
PROJECT_PACKAGES = ("zl_actors", "actors", "contracts", "supervisors")


def pyproject(path: Path) -> dict[str, object]:
    data: dict[str, object] = tomllib.loads(path.read_text())["project"]
    return data


def requirement_name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower()


class TestBridgeDistribution:
    """``packages/bridge`` follows the main distribution and holds all the bridge imports."""

    def test_version_and_dependencies_are_the_main_ones(self) -> None:
        main = pyproject(REPO / "pyproject.toml")
        bridge = pyproject(REPO / "packages" / "bridge" / "pyproject.toml")
        assert bridge["version"] == main["version"] == BRIDGE_VERSION
        released = re.search(r"^## (\d+\.\d+\.\d+)", (REPO / "CHANGELOG.md").read_text(), re.M)
        assert released is not None
        assert released.group(1) == BRIDGE_VERSION
        main_deps = main["dependencies"]
        assert isinstance(main_deps, list)
        bridge_deps = bridge["dependencies"]
        assert isinstance(bridge_deps, list)
        assert [d for d in bridge_deps if d not in main_deps] == []
        assert not {requirement_name(d) for d in bridge_deps} & HOST_ONLY

    def test_wheel_holds_every_module_the_bridge_imports(self, bridge_wheel: Path) -> None:
        modules = [m for m in imported_by(PROBE) if m.split(".")[0] in PROJECT_PACKAGES]
        names = set(zipfile.ZipFile(bridge_wheel).namelist())
        missing = [
            m
            for m in modules
            if f"{m.replace('.', '/')}.py" not in names
            and f"{m.replace('.', '/')}/__init__.py" not in names
        ]
        # A module the bridge starts importing must be added to packages/bridge/pyproject.toml.
        assert missing == []
        assert not [n for n in names if "__pycache__" in n or n.startswith("tests/")]


class TestLeanInstall:
    """``pipx install`` of the wheel: no host dependencies; --version, doctor and a real call."""

    def test_no_host_dependencies(self, lean_bridge: LeanBridge) -> None:
        installed = lean_bridge.distributions()
        assert "zero-latency-bridge" in installed
        assert installed & HOST_ONLY == set()

    def test_version(self, lean_bridge: LeanBridge) -> None:
        out = subprocess.run(
            [str(lean_bridge.zl_bridge), "--version"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert out.stdout.strip() == f"zl-bridge {BRIDGE_VERSION}"

    async def test_doctor_passes_through_a_redirect(
        self, lean_bridge: LeanBridge, tmp_path: Path, nursery: trio.Nursery
    ) -> None:
        env = make_env(tmp_path)
        scopes = await start_shards(nursery, env)
        token = tmp_path / "device.jwt"
        token.write_text(env.device_token(TENANT, "laptop-1"))
        result = await trio.to_thread.run_sync(
            lambda: doctor(lean_bridge, env, not_owner(env).url, token, tmp_path)
        )
        for scope in scopes:
            scope.cancel()
        assert result.returncode == 0, result.stdout + result.stderr
        lines = result.stdout.splitlines()
        assert [line.split()[:2] for line in lines[1:5]] == [
            ["ok", "token"],
            ["ok", "ca"],
            ["ok", "relay"],
            ["ok", "mcp"],
        ]
        assert "device laptop-1 of tenant acme, audience zl-relay" in lines[1]
        assert "this shard serves tenant acme (redirected:" in lines[3]
        assert "1 tool (fs.read)" in lines[4]
        assert lines[-1] == "all checks passed"

    async def test_doctor_names_what_is_wrong(
        self, lean_bridge: LeanBridge, tmp_path: Path, nursery: trio.Nursery
    ) -> None:
        env = make_env(tmp_path, n_shards=1)
        (_, scope) = await start_relay(nursery, env.config(env.shards[0].shard_id))
        token = tmp_path / "old.jwt"
        token.write_text(
            mint_device_token(
                env.key, tenant=TENANT, device_id="laptop-1", ttl=60, now=time.time() - 7200
            )
        )
        result = await trio.to_thread.run_sync(
            lambda: doctor(lean_bridge, env, env.shards[0].url, token, tmp_path, "--", "false")
        )
        scope.cancel()
        assert result.returncode == 1
        lines = result.stdout.splitlines()
        assert lines[1].startswith("  FAIL  token  expired ")
        assert lines[2].startswith("  ok    ca")
        assert lines[3].startswith("  FAIL  relay")
        assert "relay.unauthenticated: token has expired" in lines[3]
        assert lines[4].startswith("  FAIL  mcp    false did not start")
        assert lines[-1] == "some checks failed"
        assert "Traceback" not in result.stdout + result.stderr

    async def test_fs_read_through_the_lean_bridge(
        self, lean_bridge: LeanBridge, tmp_path: Path, nursery: trio.Nursery
    ) -> None:
        env = make_env(tmp_path)
        scopes = await start_shards(nursery, env)
        root = tmp_path / "root"
        root.mkdir()
        (root / "hello.txt").write_text("hello from the lean bridge\n")
        bridge = Bridge(
            env,
            not_owner(env).url,
            TENANT,
            "laptop-1",
            root=root,
            command=(str(lean_bridge.zl_bridge),),
        )
        try:
            async with open_link(env.link_settings(TENANT)) as link:
                await wait_online(link)
                output = await link.invoke(call("fs.read", {"path": "hello.txt"}))
        finally:
            bridge.stop()
            for scope in scopes:
                scope.cancel()
        assert output.structured is not None
        assert output.structured["content"] == "hello from the lean bridge\n"


async def start_shards(nursery: trio.Nursery, env: Env) -> list[trio.CancelScope]:
    """Every shard of ``env`` running in ``nursery``; cancel the scopes to stop them."""
    return [(await start_relay(nursery, env.config(s.shard_id)))[1] for s in env.shards]


def doctor(
    lean: LeanBridge, env: Env, url: str, token: Path, root: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    argv = [
        str(lean.zl_bridge),
        "doctor",
        "--relay",
        url,
        "--device-id",
        "laptop-1",
        "--token-file",
        str(token),
        "--ca",
        str(env.ca),
    ]
    argv += list(extra) if extra else ["--root", str(root)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)
