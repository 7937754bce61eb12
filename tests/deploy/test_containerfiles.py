"""The Containerfiles pass hadolint and follow one pattern (no podman needed)."""

from __future__ import annotations

import re
import subprocess

import pytest

from .conftest import BIN, REPO

DEPLOY = REPO / "deploy"
CONTAINERFILES = sorted(DEPLOY.glob("*.Containerfile"))
SHARED_STAGES = re.compile(r"^ARG BASE_IMAGE=.*?(?=^# --- runtime)", re.S | re.M)


def stages(text: str) -> str:
    found = SHARED_STAGES.search(text)
    assert found is not None
    return found.group(0)


class TestContainerfiles:
    """Lint, the shared build stages, and what every runtime stage must say."""

    def test_there_is_one_per_process(self) -> None:
        assert [p.name for p in CONTAINERFILES] == [
            "bff.Containerfile",
            "host.Containerfile",
            "relay.Containerfile",
        ]

    @pytest.mark.parametrize("path", CONTAINERFILES, ids=lambda p: p.name)
    def test_hadolint(self, path: object) -> None:
        out = subprocess.run(
            [str(BIN / "hadolint"), str(path)], capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stdout + out.stderr

    def test_build_stages_are_shared(self) -> None:
        # Identical text means the builds reuse each other's cached layers.
        texts = {p.name: stages(p.read_text()) for p in CONTAINERFILES}
        assert len(set(texts.values())) == 1, sorted(texts)

    @pytest.mark.parametrize("path", CONTAINERFILES, ids=lambda p: p.name)
    def test_runtime_stage(self, path: object) -> None:
        text = path.read_text()  # type: ignore[attr-defined]
        assert "ARG BASE_IMAGE=docker.io/library/python:3.12-slim-bookworm" in text
        runtime = text.partition("# --- runtime")[2]
        assert runtime.count("FROM ") == 1
        assert "FROM python AS runtime" in runtime  # not the build stage: no pip, no wheels
        assert "USER 10001:10001" in runtime
        assert "STOPSIGNAL SIGTERM" in runtime
        assert re.search(r'HEALTHCHECK .*\n\s+CMD \["zl", "health"', runtime)
        assert 'ENTRYPOINT ["zl"]' in runtime

    def test_context_leaves_out_the_working_tree(self) -> None:
        ignored = (REPO / ".containerignore").read_text().split()
        for entry in (".git", ".venv", ".zl", "tests", "**/__pycache__"):
            assert entry in ignored
