"""The Prometheus text format and names, and what the debug endpoint serves from them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData

from actors.telemetry import Exporter, Metrics, Telemetry, TelemetryConfig, prometheus_name
from actors.telemetry._prometheus import ExportingPrometheusReader, PrometheusReader
from supervisors.edges.debug_http._app import answer
from supervisors.edges.debug_http._dashboard import render_dashboard
from zl_actors import ActorSnapshot, MailboxInfo

TREE = ActorSnapshot(
    path="/host",
    name="host",
    kind="supervisor",
    actor_type="",
    state="running",
    mailbox=MailboxInfo(depth=0, capacity=0),
    restarts=0,
    uptime_s=1.0,
    last_failure=None,
    children=(),
)


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    made = Telemetry.from_config(TelemetryConfig(service_name="zl-test", prometheus=True))
    yield made
    made.shutdown()


class TestNames:
    """OpenTelemetry → Prometheus names, as a Collector's prometheus exporter makes them."""

    @pytest.mark.parametrize(
        ("name", "unit", "counter", "expected"),
        [
            (
                "zl.turn.time_to_first_token",
                "ms",
                False,
                "zl_turn_time_to_first_token_milliseconds",
            ),
            ("zl.tool.calls", "{call}", True, "zl_tool_calls_total"),
            ("host_to_device_rtt_ms", "", False, "host_to_device_rtt_ms"),
            (
                "gen_ai.client.operation.time_to_first_chunk",
                "s",
                False,
                "gen_ai_client_operation_time_to_first_chunk_seconds",
            ),
            ("zl.audit.export.pending_bytes", "By", False, "zl_audit_export_pending_bytes"),
            ("x.total.things", "", True, "x_things_total"),
            ("1st", "", False, "_1st"),
        ],
    )
    def test_names(self, name: str, unit: str, counter: bool, expected: str) -> None:
        assert prometheus_name(name, unit, counter=counter) == expected


class TestText:
    """The text exposition: types, cumulative buckets, escaped labels."""

    def test_render(self, telemetry: Telemetry) -> None:
        metrics = telemetry.metrics
        for ms in (0.7, 3, 3, 40, 99999):
            metrics.record_ttft(ms)
        metrics.add_error('we"ird\\code\nx')
        metrics.add_tokens(input_tokens=2, output_tokens=0)
        text = telemetry.prometheus_text()
        assert 'target_info{service_name="zl-test"} 1' in text
        assert "# TYPE zl_turn_time_to_first_token_milliseconds histogram" in text
        assert 'zl_turn_time_to_first_token_milliseconds_bucket{le="1"} 1' in text
        assert 'zl_turn_time_to_first_token_milliseconds_bucket{le="5"} 3' in text
        assert 'zl_turn_time_to_first_token_milliseconds_bucket{le="+Inf"} 5' in text
        assert "zl_turn_time_to_first_token_milliseconds_count 5" in text
        assert 'zl_errors_total{code="we\\"ird\\\\code\\nx"} 1' in text
        assert 'zl_tokens_total{direction="in"} 2' in text
        assert 'direction="out"' not in text  # nothing counted, nothing shown

    def test_quantiles(self, telemetry: Telemetry) -> None:
        for ms in range(1, 101):
            telemetry.metrics.record_ttft(ms)
        (family,) = [
            f for f in telemetry.metric_families() if f.name == "zl.turn.time_to_first_token"
        ]
        (histogram,) = family.histograms
        p50, p99 = histogram.quantile(0.5), histogram.quantile(0.99)
        assert p50 is not None
        assert 25 <= p50 <= 75
        assert p99 is not None
        assert 75 <= p99 <= 150


class TestEndpoint:
    """/metrics and /debug/dashboard answers, with and without telemetry and a token."""

    def test_metrics(self, telemetry: Telemetry) -> None:
        telemetry.metrics.set_active_sessions(3)
        ok = answer(
            method=b"GET",
            target=b"/metrics",
            headers=[],
            token=None,
            snapshot=lambda: TREE,
            telemetry=telemetry,
        )
        assert ok.status == 200
        assert dict(ok.headers)["Content-Type"].startswith("text/plain; version=0.0.4")
        assert b"zl_sessions_active 3" in ok.body
        missing = answer(
            method=b"GET", target=b"/metrics", headers=[], token=None, snapshot=lambda: TREE
        )
        assert missing.status == 404
        token = "t" * 20
        refused = answer(
            method=b"GET",
            target=b"/metrics",
            headers=[],
            token=token,
            snapshot=lambda: TREE,
            telemetry=telemetry,
        )
        assert refused.status == 401
        allowed = answer(
            method=b"GET",
            target=b"/metrics",
            headers=[(b"authorization", f"Bearer {token}".encode())],
            token=token,
            snapshot=lambda: TREE,
            telemetry=telemetry,
        )
        assert allowed.status == 200

    def test_dashboard_is_self_contained_and_escaped(self, telemetry: Telemetry) -> None:
        telemetry.metrics.add_error("<script>alert(1)</script>")
        telemetry.metrics.record_ttft(12)
        page = answer(
            method=b"GET",
            target=b"/debug/dashboard?refresh=9",
            headers=[],
            token=None,
            snapshot=lambda: TREE,
            telemetry=telemetry,
        )
        assert page.status == 200
        headers = dict(page.headers)
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        body = page.body.decode()
        assert "<script" not in body
        assert "&lt;script&gt;" in body
        assert 'content="9"' in body
        assert 'data-metric="zl.turn.time_to_first_token"' in body

    def test_dashboard_without_metrics(self) -> None:
        page = render_dashboard([], title="zl", refresh_s=None)
        assert "telemetry.prometheus is off" in page


class TestBoundedExport:
    """A stuck or failing collector costs spans (counted), never a caller's time."""

    def test_full_queue_drops_and_counts(self) -> None:
        import threading
        import time as _time

        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

        from actors.telemetry import BoundedSpanProcessor

        release = threading.Event()
        drops: dict[str, int] = {}

        class Stuck(SpanExporter):
            def export(self, spans: object) -> SpanExportResult:
                release.wait(10)
                return SpanExportResult.FAILURE

        def dropped(count: int, reason: str) -> None:
            drops[reason] = drops.get(reason, 0) + count

        processor = BoundedSpanProcessor(
            Stuck(), on_drop=dropped, max_queue=50, max_batch=10, interval_s=0.01
        )
        provider = TracerProvider()
        provider.add_span_processor(processor)
        tracer = provider.get_tracer("t")
        started = _time.monotonic()
        for n in range(500):
            tracer.start_span(f"s{n}").end()
        # 500 spans ended while the exporter was stuck: no caller waited for it.
        assert _time.monotonic() - started < 5
        assert drops["queue_full"] >= 500 - 50 - 10
        release.set()
        processor.force_flush(10_000)
        assert drops.get("export_failed", 0) >= 10
        provider.shutdown()


class _Collected(MetricExporter):
    """Keeps every export (cumulative, default aggregation, as the OTLP exporter's)."""

    def __init__(self) -> None:
        super().__init__()
        self.exports: list[MetricsData] = []

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: object
    ) -> MetricExportResult:
        self.exports.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
        pass


def _counts(data: MetricsData, name: str) -> list[int]:
    return [
        point.count
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


class TestOneReaderForScrapeAndExport:
    """With /metrics and OTLP both on, one aggregation serves both."""

    def test_scrapes_do_not_export_nor_take_from_exports(self) -> None:
        exporter = _Collected()
        reader = ExportingPrometheusReader(exporter, export_interval_millis=3_600_000)
        provider = MeterProvider(metric_readers=[reader])
        try:
            metrics = Metrics(provider.get_meter("t"))
            metrics.record_ttft(10)
            (family,) = [
                f for f in reader.collect_families() if f.name == "zl.turn.time_to_first_token"
            ]
            assert family.histograms[0].count == 1
            metrics.record_ttft(20)
            assert exporter.exports == []  # a scrape is not an export
            provider.force_flush()
            (exported,) = exporter.exports
            assert _counts(exported, "zl.turn.time_to_first_token") == [2]  # cumulative
            (family,) = [
                f for f in reader.collect_families() if f.name == "zl.turn.time_to_first_token"
            ]
            assert family.histograms[0].count == 2
        finally:
            provider.shutdown()
        # The final collection at shutdown is exported, as by the SDK's periodic reader.
        assert len(exporter.exports) == 2

    def test_the_host_shares_one_reader_when_the_exporter_reads_cumulative(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        config = TelemetryConfig(
            exporter=Exporter.OTLP,
            otlp_endpoint="http://127.0.0.1:9",  # nothing listens: exports fail at once
            otlp_timeout_s=0.2,
            prometheus=True,
        )
        shared = Telemetry.from_config(config)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta")
        separate = Telemetry.from_config(config)
        try:
            assert isinstance(shared._prometheus, ExportingPrometheusReader)
            assert isinstance(separate._prometheus, PrometheusReader)
            shared.metrics.record_ttft(5)
            separate.metrics.record_ttft(5)
            for telemetry in (shared, separate):
                (family,) = [
                    f
                    for f in telemetry.metric_families()
                    if f.name == "zl.turn.time_to_first_token"
                ]
                assert family.histograms[0].count == 1
        finally:
            shared.shutdown()
            separate.shutdown()
