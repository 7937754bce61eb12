"""The roadmap's metrics in a real Prometheus: Debian's ``prometheus`` scrapes ``/metrics`` of
a running host, relay and bridge after a chat with a tool call, and PromQL finds each one.
The Grafana dashboard's every expression is evaluated against the same Prometheus."""

from __future__ import annotations

import json
import re
import urllib.request

from ._support import REPO, Prometheus, Stack, iter_exprs

DASHBOARD = REPO / "deploy" / "grafana" / "zero-latency.json"
#: Grafana's interval variables, as a panel over the last few minutes would resolve them.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}

#: The roadmap's figures, each as a PromQL expression that must find data after the chat.
ROADMAP = {
    "plan latency": 'zl_turn_phase_duration_milliseconds_count{job="zl-host",phase="plan"}',
    "act latency": 'zl_turn_phase_duration_milliseconds_count{job="zl-host",phase="act"}',
    "respond latency": 'zl_turn_phase_duration_milliseconds_count{job="zl-host",phase="respond"}',
    "time to first token": "zl_turn_time_to_first_token_milliseconds_count > 0",
    "tool success ratio (denials excluded)": (
        'sum(zl_tool_calls_total{outcome="ok"}) / sum(zl_tool_calls_total{outcome!="denied"}) > 0'
    ),
    "tokens in": 'zl_tokens_total{direction="in"} > 0',
    "tokens out": 'zl_tokens_total{direction="out"} > 0',
    "host_to_device_rtt_ms": "host_to_device_rtt_ms_count > 0",
    "relay queue depth per shard": 'zl_relay_queue_depth{job="zl-relay",shard="relay-1"}',
    "relay calls in flight per shard": 'zl_relay_calls_in_flight{job="zl-relay",shard="relay-1"}',
    "relay devices connected": 'zl_relay_devices_connected{job="zl-relay"} > 0',
    "active sessions": 'zl_sessions_active{job="zl-host"}',
    "mailbox depth of the busiest actors": 'zl_actor_mailbox_depth{job="zl-host"}',
    "provider breaker state": 'zl_provider_breaker_state{upstream="mock"}',
    "audit records (receipts)": 'zl_audit_records_total{kind="tool.receipt"} > 0',
    "audit records (turns)": 'zl_audit_records_total{kind="turn.summary"} > 0',
    "audit spool": "zl_audit_export_pending",
    "errors by code": 'zl_errors_total{code="invalid_request"} > 0',
    "model time to first chunk": "gen_ai_client_operation_time_to_first_chunk_seconds_count > 0",
    "bridge calls": 'zl_bridge_calls_total{job="zl-bridge",outcome="ok"} > 0',
    "bridge connected": 'zl_bridge_connected{job="zl-bridge"} == 1',
    "policy bundle age": "zl_policy_bundle_age_seconds_count > 0",
}


def _promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


class TestPrometheus:
    """Each roadmap metric is in Prometheus, with low-cardinality labels only."""

    def test_every_roadmap_metric_has_data(self, prometheus: Prometheus) -> None:
        missing = {}
        for figure, expr in ROADMAP.items():
            try:
                prometheus.wait_for(expr, timeout_s=20)
            except AssertionError as exc:
                missing[figure] = str(exc)
        assert missing == {}

    def test_all_three_processes_are_scraped(self, prometheus: Prometheus) -> None:
        up = prometheus.wait_for("up == 1")
        assert {series["metric"]["job"] for series in up} >= {"zl-host", "zl-relay", "zl-bridge"}

    def test_no_tenant_or_id_is_a_label(self, prometheus: Prometheus) -> None:
        prometheus.wait_for('zl_tool_calls_total{job="zl-host"}')
        names = prometheus.query('count by (__name__) ({__name__=~"zl_.+|host_.+|gen_ai_.+"})')
        assert names
        for label in (
            "tenant",
            "zl_tenant",
            "session",
            "zl_audit_id",
            "device_id",
            "zl_tool_call_id",
        ):
            assert prometheus.query(f'{{{label}=~".+"}}') == [], label

    def test_scrape_is_prometheus_text(self, stack: Stack) -> None:
        with urllib.request.urlopen(f"{stack.host_debug}/metrics", timeout=10) as answer:
            assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = answer.read().decode()
        assert "# TYPE zl_tool_calls_total counter" in text
        assert "# TYPE zl_turn_time_to_first_token_milliseconds histogram" in text
        assert re.search(
            r'^zl_turn_time_to_first_token_milliseconds_bucket\{le="\+Inf"\} \d+$', text, re.M
        )


class TestDashboard:
    """Every PromQL expression of deploy/grafana/zero-latency.json finds data."""

    def test_every_panel_expression_finds_data(self, prometheus: Prometheus) -> None:
        dashboard = json.loads(DASHBOARD.read_text())
        exprs = list(iter_exprs(dashboard["panels"]))
        assert len(exprs) >= 16
        empty = {}
        for expr in exprs:
            # A fallback such as `or vector(0)` would hide a misspelled metric.
            assert "vector(" not in expr, expr
            try:
                prometheus.wait_for(_promql(expr), timeout_s=20)
            except AssertionError as exc:
                empty[expr] = str(exc)
        assert empty == {}

    def test_the_dashboard_covers_the_issue(self) -> None:
        dashboard = json.loads(DASHBOARD.read_text())
        titles = " | ".join(panel["title"] for panel in dashboard["panels"]).lower()
        for topic in (
            "first token",
            "phase",
            "tool success",
            "round trip",
            "relay queue",
            "sessions",
            "tokens per second",
            "errors by code",
        ):
            assert topic in titles, topic
        assert dashboard["__inputs"][0]["pluginId"] == "prometheus"
