#!/usr/bin/env python3
"""Run a project task on a fresh machine that has only Python >= 3.11 and pip.

    python3 dev.py demo      # see the system work
    python3 dev.py test      # run the test suite
    python3 dev.py <recipe>  # any other recipe of the justfile (check, bench, ...)

On first use (and whenever pyproject.toml changes) it makes `.venv/`, installs the
project with its development tools into it (`just` included, from PyPI as
`rust-just`), then hands the recipe to `just`.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".zl-installed"


def _wanted_stamp() -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def _run(*argv: str | Path) -> None:
    subprocess.run([str(a) for a in argv], check=True, cwd=ROOT)


def ensure_environment() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may be started by an older python3
        sys.exit(f"Python >= 3.11 is required; this is {sys.version.split()[0]}.")
    if not (BIN / "python").exists():
        print(f"dev.py: creating {VENV.relative_to(ROOT)}/ ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    if STAMP.exists() and STAMP.read_text() == _wanted_stamp():
        return
    print("dev.py: installing the project and its dev tools (first run only) ...", flush=True)
    python = BIN / "python"
    # Dependency groups (PEP 735) need pip >= 25.1.
    _run(python, "-m", "pip", "install", "--quiet", "--upgrade", "pip>=25.1")
    _run(python, "-m", "pip", "install", "--quiet", "-e", ".", "--group", "dev")
    STAMP.write_text(_wanted_stamp())


def main() -> None:
    args = sys.argv[1:] or ["--list"]
    ensure_environment()
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    env = dict(os.environ, PATH=path, VIRTUAL_ENV=str(VENV))
    just = BIN / ("just.exe" if os.name == "nt" else "just")
    completed = subprocess.run([str(just), *args], cwd=ROOT, env=env)
    sys.exit(completed.returncode)


if __name__ == "__main__":
    main()
