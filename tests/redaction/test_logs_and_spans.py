"""Before every log line and every exported span: messages, exceptions, tracebacks, extra
fields and span attributes reach no output with a secret in them.

The process tests run each real program (host, relay, bridge, MCP fs server) as a
subprocess: each one's entry point installs the filter; the fs server is also made to log
what a client sent it, through its own code.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from actors.redaction import LogRedaction, install_log_redaction
from actors.telemetry import Telemetry, TelemetryConfig

GITHUB = "ghp_R8kT2mVq9XwL4pZs7NbC1dFh6JyG3aEo5uIt"
STRIPE = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"
EMAIL = "maria.rossi@example-bank.it"
PASSWORD = "Tr0ub4dor&3"
ALL = [GITHUB, STRIPE, EMAIL, PASSWORD]


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """The root logger writing to a buffer, with the process's log redaction installed."""
    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s %(ctx)s"))
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    installed: LogRedaction = install_log_redaction()
    try:
        yield stream
    finally:
        installed.uninstall()
        root.removeHandler(handler)
        root.setLevel(level)


class TestLogFilter:
    """One filter for the process: every logger, every handler."""

    def test_a_log_call(self, log_output: io.StringIO) -> None:
        logging.getLogger("zl.session.deep").info(
            "calling with token %s for %s", GITHUB, EMAIL, extra={"ctx": f"password={PASSWORD}"}
        )
        text = log_output.getvalue()
        assert "calling with token [REDACTED:github_token] for [REDACTED:email]" in text
        assert "password=[REDACTED:password]" in text
        assert not [s for s in ALL if s in text]

    def test_an_exception_message_and_its_traceback(self, log_output: io.StringIO) -> None:
        def charge() -> None:
            raise ValueError(f"gateway refused key {STRIPE} for {EMAIL}")

        try:
            charge()
        except ValueError:
            logging.getLogger("zl.tools").exception("charge failed", extra={"ctx": ""})
        text = log_output.getvalue()
        assert "Traceback (most recent call last)" in text
        assert "ValueError: gateway refused key [REDACTED:stripe_key] for [REDACTED:email]" in text
        assert not [s for s in ALL if s in text]

    def test_a_bad_format_string_is_still_logged_redacted(self, log_output: io.StringIO) -> None:
        logging.getLogger("zl").info("two %s %s", GITHUB, extra={"ctx": ""})
        text = log_output.getvalue()
        assert "[REDACTED:github_token]" in text
        assert GITHUB not in text

    def test_a_handler_added_later(self, log_output: io.StringIO) -> None:
        stream = io.StringIO()
        late = logging.StreamHandler(stream)
        logging.getLogger("zl.late").addHandler(late)
        try:
            logging.getLogger("zl.late").warning("mail %s", EMAIL, extra={"ctx": ""})
        finally:
            logging.getLogger("zl.late").removeHandler(late)
        assert EMAIL not in stream.getvalue()
        assert "[REDACTED:email]" in stream.getvalue()


class TestSpans:
    """Span attributes, events and status go through the redactor before any exporter."""

    def test_a_secret_in_a_span_never_reaches_the_exporter(self) -> None:
        exporter = InMemorySpanExporter()
        reader = InMemoryMetricReader()
        telemetry = Telemetry.from_config(
            TelemetryConfig(), span_exporter=exporter, metric_readers=[reader]
        )
        try:
            with telemetry.tracer.start_as_current_span("call") as span:
                span.set_attribute("zl.note", f"user pasted {GITHUB}")
                span.set_attribute("zl.list", [EMAIL, "plain"])
                span.set_attribute("zl.session.id", "s1")
                span.record_exception(ValueError(f"bad password={PASSWORD}"))
            (exported,) = exporter.get_finished_spans()
            dumped = exported.to_json()
            assert not [s for s in ALL if s in dumped]
            assert exported.attributes is not None
            assert exported.attributes["zl.note"] == "user pasted [REDACTED:github_token]"
            assert tuple(exported.attributes["zl.list"]) == ("[REDACTED:email]", "plain")
            assert exported.attributes["zl.session.id"] == "s1"
            assert "[REDACTED:password]" in exported.events[0].attributes["exception.message"]
            data = reader.get_metrics_data()
            points = [
                p
                for rm in data.resource_metrics
                for sm in rm.scope_metrics
                for m in sm.metrics
                if m.name == "zl.redaction.count"
                for p in m.data.data_points
            ]
            by_class = {p.attributes["class"]: p.value for p in points}
            assert by_class["github_token"] >= 1
            assert {p.attributes["site"] for p in points} == {"span"}
        finally:
            telemetry.shutdown()


# Each program's entry point, called as its console script calls it, with arguments that
# make it stop early; then the same process logs a secret and raises one.
PROGRAMS = {
    "host": ("supervisors.host", "host_main", ["--config", "/nonexistent/host.toml"]),
    "bff": ("supervisors.bff", "bff_main", ["--config", "/nonexistent/bff.toml"]),
    "relay": ("supervisors.relay", "relay_main", ["--config", "/nonexistent/relay.toml"]),
    "bridge": (
        "supervisors.bridge",
        "bridge_main",
        ["--relay", "not-a-url", "--device-id", "d1", "--insecure-dev"],
    ),
    "mcp-fs": ("actors.mcp.fs_server", "main", ["/nonexistent/root"]),
}
AFTER = f"""
import logging
log = logging.getLogger("zl.after")
log.error("leaked %s", {GITHUB!r})
def fail():
    raise RuntimeError("uncaught with {STRIPE}")
try:
    fail()
except RuntimeError:
    log.exception("caught")
fail()
"""


class TestEveryProcess:
    """The filter is in place in every program, not only in this test process."""

    @pytest.mark.parametrize("program", sorted(PROGRAMS))
    def test_entry_point_installs_the_filter(self, program: str) -> None:
        module, function, args = PROGRAMS[program]
        code = f"import {module} as m\nm.{function}({args!r})\n" + AFTER
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
        )
        output = done.stdout + done.stderr
        assert done.returncode == 1, output  # the uncaught exception at the end
        assert "[REDACTED:github_token]" in output, output
        assert "uncaught with [REDACTED:stripe_key]" in output, output
        assert GITHUB not in output, output
        assert STRIPE not in output, output

    def test_the_fs_server_logs_what_a_client_sent_redacted(self, tmp_path: Path) -> None:
        """The server logs the id of a response it did not expect: the client chose it."""
        line = json.dumps({"jsonrpc": "2.0", "id": f"{GITHUB}", "result": {}})
        done = subprocess.run(
            [sys.executable, "-m", "actors.mcp.fs_server", str(tmp_path)],
            input=line + "\n",
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "ignored a response" in done.stderr, done.stderr
        assert "[REDACTED:github_token]" in done.stderr
        assert GITHUB not in done.stderr
