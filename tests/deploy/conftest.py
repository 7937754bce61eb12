"""What the shipping tests share: the bridge's own wheel, installed with pipx (session-wide)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
#: Installing from the index may take a while on a cold machine; it never hangs the suite.
INSTALL_TIMEOUT_S = 600


@attrs.frozen(kw_only=True)
class LeanBridge:
    """``zero-latency-bridge`` installed by pipx into a home of its own."""

    bin_dir: Path
    venv: Path

    @property
    def zl_bridge(self) -> Path:
        return self.bin_dir / "zl-bridge"

    def distributions(self) -> set[str]:
        """The distributions in the bridge's virtualenv (normalized names)."""
        out = subprocess.run(
            [str(self.venv / "bin" / "python"), "-I", "-c", LIST_DISTRIBUTIONS],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return set(out.stdout.split())


LIST_DISTRIBUTIONS = (
    "import importlib.metadata as m, re;"
    "print('\\n'.join(sorted({re.sub(r'[-_.]+', '-', d.metadata['Name']).lower()"
    " for d in m.distributions()})))"
)


@pytest.fixture(scope="session")
def bridge_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of ``packages/bridge`` (hatchling from the dev tools, no download)."""
    out = tmp_path_factory.mktemp("bridge-wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(out),
            str(REPO / "packages" / "bridge"),
        ],
        check=True,
        timeout=INSTALL_TIMEOUT_S,
    )
    return next(out.glob("zero_latency_bridge-*.whl"))


@pytest.fixture(scope="session")
def lean_bridge(tmp_path_factory: pytest.TempPathFactory, bridge_wheel: Path) -> LeanBridge:
    """``pipx install`` of the bridge's wheel, its dependencies from the package index."""
    home = tmp_path_factory.mktemp("pipx")
    env = dict(
        os.environ,
        PIPX_HOME=str(home / "home"),
        PIPX_BIN_DIR=str(home / "bin"),
        PIPX_MAN_DIR=str(home / "man"),
    )
    subprocess.run(
        [str(BIN / "pipx"), "install", "--python", sys.executable, str(bridge_wheel)],
        env=env,
        check=True,
        capture_output=True,
        timeout=INSTALL_TIMEOUT_S,
    )
    return LeanBridge(bin_dir=home / "bin", venv=home / "home" / "venvs" / "zero-latency-bridge")
