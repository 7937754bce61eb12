"""The operator docs work as written: every ``sh`` block of them is run, in order.

Each document runs in a scratch folder that looks like a clone of the repository (its
top-level entries are symbolic links to this one's, ``.zl`` excepted) with ``.venv/bin``
first on ``PATH``, as after ``. .venv/bin/activate``. Blocks share the folder, so later
blocks use what earlier ones made, as a reader following the page would.

- The well-known ports the docs name (8443, 8444, 8445, 50051, 7081, 7082) are replaced by free
  ports the OS picks for each document, so a run never collides with a server already
  listening there; nothing else in a block is changed.
- A block whose first line is ``# needs podman`` runs where podman is installed (CI
  installs it); elsewhere it is left out, the rest still runs and must pass, and the test
  then reports itself skipped, naming the blocks left out.
- A block whose first line starts with ``# not run here:`` (it needs a Kubernetes cluster,
  or CI runs it) is only checked: ``bash -n``, and each ``zl``/``zl-bridge`` subcommand and
  repository script it names exists.
- Processes a document starts in the background write ``*.pid`` files; whatever is still
  running when the document ends (or fails) is stopped by those ids, and containers the
  document named with ``--name`` are removed.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FENCE = re.compile(r"^```sh\n(.*?)^```", re.M | re.S)
PORTS = (8443, 8444, 8445, 50051, 7081, 7082)
#: A block may build images or install packages on a cold machine.
BLOCK_TIMEOUT_S = 1200
NOT_RUN = "# not run here:"
NEEDS_PODMAN = "# needs podman"
#: What each document's run must have printed: the outcome the page promises.
PROMISES = {
    "docs/runbook.md": [
        "zl health: healthy: gRPC",
        "all checks passed",
        "[tool fs.read@1.0.0 on laptop-1",
        "[tool ok",
        "OK run/audit.jsonl",
        "zl host: stopped",
    ],
    "docs/host.md": [
        "zl health: healthy: gRPC",
        "zl.agent.v0.Agent",
        "[tool ok",
        "OK .zl/audit.jsonl",
    ],
    "docs/relay.md": ["all checks passed", "[tool ok", "read_text_file"],
    "docs/versioning.md": [],
}


@attrs.frozen(kw_only=True)
class Block:
    line: int
    text: str

    @property
    def first(self) -> str:
        return self.text.split("\n", 1)[0].strip()


def blocks(doc: Path) -> list[Block]:
    text = doc.read_text()
    return [
        Block(line=text.count("\n", 0, m.start()) + 2, text=m.group(1))
        for m in FENCE.finditer(text)
    ]


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def workspace(tmp: Path) -> Path:
    clone = tmp / "clone"
    clone.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in (".zl", ".git"):
            (clone / entry.name).symlink_to(entry)
    return clone


def environment(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZL_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(BIN.parent)
    # A pipx install in a document goes to the scratch folder, not the user's own.
    env["PIPX_HOME"] = str(tmp / "pipx" / "home")
    env["PIPX_BIN_DIR"] = str(tmp / "pipx" / "bin")
    env["PIPX_MAN_DIR"] = str(tmp / "pipx" / "man")
    env.setdefault("CONTAINERS_CONF", str(ROOT / "deploy" / "podman" / "containers.conf"))
    return env


def check_only(block: Block, where: str) -> None:
    syntax = subprocess.run(["bash", "-n"], input=block.text, capture_output=True, text=True)
    assert syntax.returncode == 0, f"{where}: {syntax.stderr}"
    # `zl X` as a command: at the start of a line, or after `--` (kubectl exec ... -- zl X).
    for sub in re.findall(r"(?m)(?:^\s*|\s--\s)zl ([a-z][\w-]*)", block.text):
        known = subprocess.run([str(BIN / "zl"), sub, "--help"], capture_output=True, timeout=60)
        assert known.returncode == 0, f"{where}: `zl {sub}` is not a command"
    for script in re.findall(r"\b(deploy/[\w/.-]+\.(?:sh|py))\b", block.text):
        assert (ROOT / script).is_file(), f"{where}: {script} does not exist"


def cleanup(clone: Path, text: str) -> None:
    for pid_file in clone.rglob("*.pid"):
        with contextlib.suppress(ValueError, OSError):
            pid = int(pid_file.read_text().strip())
            # Only a process the document started: its working folder is the scratch clone
            # (an id that ended may since belong to someone else).
            if Path(f"/proc/{pid}/cwd").resolve() == clone.resolve():
                os.kill(pid, signal.SIGKILL)
    names = set(re.findall(r"--name (\S+)", text))
    if names and shutil.which("podman"):
        subprocess.run(
            ["podman", "rm", "--force", "--time", "5", *sorted(names)],
            capture_output=True,
            timeout=120,
            env=environment(clone.parent),
        )


@pytest.mark.parametrize("name", sorted(PROMISES))
def test_doc_commands(name: str, tmp_path: Path) -> None:
    doc = ROOT / name
    found = blocks(doc)
    assert found, f"{name} has no sh blocks"
    clone = workspace(tmp_path)
    env = environment(tmp_path)
    ports = dict(zip(PORTS, free_ports(len(PORTS)), strict=True))
    transcript = tmp_path / "transcript.txt"
    outputs = []
    left_out = []
    cleanup(clone, doc.read_text())  # containers a killed earlier run may have left
    try:
        for block in found:
            where = f"{name}:{block.line}"
            if block.first.startswith(NOT_RUN):
                check_only(block, where)
                continue
            if block.first == NEEDS_PODMAN and shutil.which("podman") is None:
                left_out.append(where)
                continue
            text = re.sub(
                r"\b(" + "|".join(map(str, PORTS)) + r")\b",
                lambda m: str(ports[int(m.group(1))]),
                block.text,
            )
            with transcript.open("w") as out:
                done = subprocess.run(
                    ["bash", "-euo", "pipefail", "-c", text],
                    cwd=clone,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=BLOCK_TIMEOUT_S,
                )
            output = transcript.read_text()
            outputs.append(output)
            assert done.returncode == 0, (
                f"{where} failed ({done.returncode}):\n{text}\n---\n{output}"
            )
    finally:
        cleanup(clone, doc.read_text())
    everything = "\n".join(outputs)
    for promise in PROMISES[name]:
        assert promise in everything, f"{name}: no {promise!r} in what its commands printed"
    if left_out:
        pytest.skip(f"podman is not installed: {', '.join(left_out)} not run (the rest passed)")
