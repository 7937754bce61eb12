"""Schemathesis against the live BFF, from the committed OpenAPI document: no 5xx, and
every answer conforms to the document (status, content type, headers, body schema)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import trio

from supervisors.bff import SessionsSection
from supervisors.bff._openapi import OPENAPI_PATH

from ._support import open_stack

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "ignored_auth",
        "unsupported_method",
        "missing_required_header",
    ]
)
#: Examples per operation: enough to find a schema the server does not honour, bounded so
#: that the run stays around half a minute on a loaded two-core machine.
MAX_EXAMPLES = 12


class TestSchemathesis:
    """The document is the contract: generated calls find no disagreement."""

    async def test_the_bff_conforms_to_its_openapi_document(self, tmp_path: Path) -> None:
        # Generated sessions stay open until the run ends: give them room (429 and 503 are
        # documented answers, but a run full of them would test little else).
        sessions = SessionsSection(max_sessions=2000, max_sessions_per_user=2000)
        async with open_stack(tmp_path, sessions=sessions) as stack:
            token = stack.keys.token(ttl_s=3000)
            argv = [
                str(Path(sys.executable).with_name("schemathesis")),
                "run",
                str(OPENAPI_PATH),
                "--url",
                stack.bff.url,
                "--header",
                f"Authorization: Bearer {token}",
                "--tls-verify",
                stack.ca,
                "--checks",
                CHECKS,
                "--max-examples",
                str(MAX_EXAMPLES),
                "--phases",
                "examples,coverage,fuzzing",
                "--workers",
                "1",
                "--request-timeout",
                "20",
                "--seed",
                "17",
                "--suppress-health-check",
                "all",
                "--no-color",
            ]
            env = {**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"}
            result = await trio.run_process(
                argv,
                capture_stdout=True,
                stderr=subprocess.STDOUT,
                check=False,
                env=env,
                cwd=tmp_path,
            )
        output = result.stdout.decode(errors="replace")
        (tmp_path / "schemathesis.txt").write_text(output)
        assert result.returncode == 0, output[-6000:]
        assert "passed" in output.lower()
