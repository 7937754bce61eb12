"""What the observability tests share: an OTLP/HTTP receiver, the host, relay and bridge as
real processes exporting to it, a real Prometheus scraping them, and a headless Chromium.

Everything listens on loopback with ports the OS picks; each process reports its own
addresses (``--ready-file``) and Prometheus its port in its log.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2

from tests._policy import caller_public_key, make_test_policy
from tests.relay._support import Bridge, Env, make_env

REPO = Path(__file__).resolve().parents[2]
TENANT = "acme"
DEVICE = "laptop-9"
NOTES = "observed on the device\n"
#: Any one wait on a process, a port or a figure.
WAIT_S = 60.0
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


# -- an OTLP/HTTP receiver (protobuf), as a collector would be ---------------------------


@attrs.frozen(kw_only=True)
class ReceivedSpan:
    service: str
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    attributes: dict[str, Any]


def any_value(value: common_pb2.AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, which) if which else None


def attributes_of(items: Sequence[common_pb2.KeyValue]) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in items}


class OtlpReceiver:
    """A real HTTP server decoding OTLP/HTTP protobuf: traces, metrics and logs.

    Start it listening (``up``), or hold its port closed first (``down`` then ``up``): a
    bound socket that does not listen refuses connections, so a client sees an outage.
    """

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.metric_names: set[str] = set()
        self.logs: list[dict[str, Any]] = []
        self.requests: dict[str, int] = {}
        self._changed = threading.Condition()
        self._socket = socket.socket()
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port = int(self._socket.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def up(self) -> OtlpReceiver:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                try:
                    answer = receiver._receive(self.path, body)
                except Exception as exc:  # a malformed export is the sender's bug: say so
                    self.send_error(400, str(exc))
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._socket.listen(64)
        server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", self.port), Handler, bind_and_activate=False
        )
        server.socket.close()
        server.socket = self._socket
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        else:
            self._socket.close()

    def _receive(self, path: str, body: bytes) -> bytes:
        with self._changed:
            self.requests[path] = self.requests.get(path, 0) + 1
            if path == "/v1/traces":
                request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
                for resource in request.resource_spans:
                    service = attributes_of(resource.resource.attributes).get("service.name", "")
                    for scope in resource.scope_spans:
                        for span in scope.spans:
                            self.spans.append(
                                ReceivedSpan(
                                    service=service,
                                    trace_id=span.trace_id.hex(),
                                    span_id=span.span_id.hex(),
                                    parent_span_id=span.parent_span_id.hex(),
                                    name=span.name,
                                    kind=span.kind,
                                    attributes=attributes_of(span.attributes),
                                )
                            )
                answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            elif path == "/v1/metrics":
                metrics = metrics_service_pb2.ExportMetricsServiceRequest.FromString(body)
                for resource_metrics in metrics.resource_metrics:
                    for scope_metrics in resource_metrics.scope_metrics:
                        self.metric_names.update(m.name for m in scope_metrics.metrics)
                answer = metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()
            elif path == "/v1/logs":
                logs = logs_service_pb2.ExportLogsServiceRequest.FromString(body)
                for resource_logs in logs.resource_logs:
                    for scope_logs in resource_logs.scope_logs:
                        for record in scope_logs.log_records:
                            self.logs.append(
                                {
                                    "body": any_value(record.body),
                                    "attributes": attributes_of(record.attributes),
                                }
                            )
                answer = logs_service_pb2.ExportLogsServiceResponse().SerializeToString()
            else:
                raise ValueError(f"unknown OTLP path {path}")
            self._changed.notify_all()
            return answer

    def wait_for(
        self, predicate: Callable[[OtlpReceiver], bool], timeout_s: float = WAIT_S
    ) -> None:
        """Block until ``predicate(self)`` holds (checked as data arrives)."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the OTLP receiver did not get what was expected in time")
                self._changed.wait(left)


# -- the processes -----------------------------------------------------------------------


def wait_for_file(path: Path, process: subprocess.Popen[bytes], log: Path) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while not (path.exists() and path.stat().st_size):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{process.args!r} did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)
    result: dict[str, Any] = json.loads(path.read_text())
    return result


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@attrs.define
class Stack:
    """Host, relay and bridge (with its fs.read server) as processes, exporting to ``otlp``."""

    tmp: Path
    env: Env
    otlp: OtlpReceiver
    processes: list[subprocess.Popen[bytes]] = attrs.Factory(list)
    host_grpc: str = ""
    host_debug: str = ""
    relay_debug: str = ""
    bridge_debug: str = ""
    audit: Path = attrs.field(default=Path())
    bridge: Bridge | None = None

    def close(self) -> None:
        if self.bridge is not None:
            self.bridge.stop()
        for process in reversed(self.processes):
            stop(process)
        self.otlp.close()


def relay_toml(env: Env, otlp: str, path: Path) -> Path:
    config = env.config(env.shards[0].shard_id)
    shard = env.shards[0]
    lines = [
        f'shard_id = "{config.shard_id}"',
        f'public_keys = ["{env.public_key}"]',
        "[[shards]]",
        f'shard_id = "{shard.shard_id}"',
        f'url = "{shard.url}"',
        f'host_url = "{shard.host_url}"',
        "[devices]",
        f"port = {config.devices.port}",
        "[hosts]",
        f"port = {config.hosts.port}",
        "[tls]",
        f'cert = "{env.cert}"',
        f'key = "{env.cert_key}"',
        "[limits]",
        "heartbeat_s = 0.5",
        "[debug]",
        "port = 0",
        "[telemetry]",
        'exporter = "otlp"',
        f'otlp_endpoint = "{otlp}"',
        "metric_interval_s = 1.0",
        "sample_interval_s = 0.5",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def start_stack(tmp: Path, *, host_env: dict[str, str] | None = None) -> Stack:
    """Relay, host and bridge, each its own process, all exporting to one OTLP receiver."""
    env = make_env(tmp, n_shards=1)
    otlp = OtlpReceiver().up()
    stack = Stack(tmp=tmp, env=env, otlp=otlp, audit=tmp / "audit.jsonl")
    try:
        relay_ready = tmp / "relay.ready"
        relay_log = tmp / "relay.log"
        with open(relay_log, "wb") as log:
            relay = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "supervisors",
                    "relay",
                    "--config",
                    str(relay_toml(env, otlp.url, tmp / "relay.toml")),
                    "--ready-file",
                    str(relay_ready),
                ],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        stack.processes.append(relay)
        token = tmp / "host.jwt"
        token.write_text(env.host_token(TENANT))
        policy = make_test_policy(tmp)  # a permissive signed bundle for the tenant
        root = tmp / "device-files"
        root.mkdir()
        (root / "notes.txt").write_text(NOTES)
        host_ready = tmp / "host.ready"
        host_log = tmp / "host.log"
        settings = {
            "ZL_GRPC__PORT": "0",
            "ZL_GRPC__INSECURE_DEV_PLAINTEXT": "true",
            "ZL_DEBUG__PORT": "0",
            "ZL_AUDIT__PATH": str(stack.audit),
            "ZL_TOOLS__MODE": "relay",
            "ZL_TOOLS__RELAY_SHARDS": f"{env.shards[0].shard_id}={env.shards[0].host_url}",
            "ZL_TOOLS__RELAY_TOKEN_FILE": str(token),
            "ZL_TOOLS__RELAY_CA": str(env.ca),
            "ZL_TOOLS__RELAY_HEARTBEAT_S": "0.5",
            # The default, said here: trace context and audit ids cross binary frames.
            "ZL_TOOLS__RELAY_FRAMES": "binary",
            "ZL_TELEMETRY__EXPORTER": "otlp",
            "ZL_TELEMETRY__OTLP_ENDPOINT": otlp.url,
            "ZL_TELEMETRY__METRIC_INTERVAL_S": "1",
            "ZL_TELEMETRY__SAMPLE_INTERVAL_S": "0.5",
            "ZL_AUTH__TRUSTED_KEYS": str(caller_public_key(tmp)),
            "ZL_POLICY__SOURCE": policy.source,
            "ZL_POLICY__TRUSTED_KEYS": str(policy.public_key),
            "ZL_POLICY__STATE_DIR": str(policy.state_dir),
            "ZL_POLICY__CLOCK_SKEW_S": "0",
            "ZL_AUDIT__EXPORT_ENDPOINT": otlp.url,
            "ZL_AUDIT__EXPORT_INTERVAL_S": "0.2",
            "ZL_PROVIDER__MOCK__FIRST_TOKEN_DELAY_MS": "5",
            "ZL_PROVIDER__MOCK__TOKENS_PER_S": "500",
            "ZL_PROVIDER__MOCK__ANSWER_TOKENS": "8",
            **(host_env or {}),
        }
        with open(host_log, "wb") as log:
            host = subprocess.Popen(
                [sys.executable, "-m", "supervisors", "host", "--ready-file", str(host_ready)],
                cwd=REPO,
                env=dict(os.environ, **settings),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        stack.processes.append(host)
        relay_addresses = wait_for_file(relay_ready, relay, relay_log)
        stack.relay_debug = relay_addresses["debug_url"]
        bridge_ready = tmp / "bridge.ready"
        stack.bridge = Bridge(
            env,
            env.shards[0].url,
            TENANT,
            DEVICE,
            root=root,
            extra=(
                "--otlp-endpoint",
                otlp.url,
                "--debug-port",
                "0",
                "--ready-file",
                str(bridge_ready),
                "--metric-interval-s",
                "1",
            ),
        )
        host_addresses = wait_for_file(host_ready, host, host_log)
        stack.host_grpc = f"127.0.0.1:{host_addresses['grpc_port']}"
        stack.host_debug = host_addresses["debug_url"]
        bridge_addresses = wait_for_file(bridge_ready, stack.bridge.process, stack.bridge.log)
        stack.bridge_debug = bridge_addresses["debug_url"]
    except BaseException:
        stack.close()
        raise
    return stack


# -- Prometheus --------------------------------------------------------------------------

_LISTENING = re.compile(r'msg="Listening on" address=([0-9.]+:[0-9]+)')


@attrs.define
class Prometheus:
    process: subprocess.Popen[bytes]
    url: str

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector (or scalar) of ``promql`` now; raises on a bad expression."""
        query = urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{query}", timeout=10) as answer:
            body = json.loads(answer.read())
        if body["status"] != "success":
            raise AssertionError(f"{promql}: {body}")
        data = body["data"]
        if data["resultType"] == "scalar":
            return [{"value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def wait_for(self, promql: str, timeout_s: float = WAIT_S) -> list[dict[str, Any]]:
        """The result of ``promql`` once it is not empty (scrapes come every second)."""
        deadline = time.monotonic() + timeout_s
        while True:
            result = self.query(promql)
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"{promql} stayed empty for {timeout_s} s")
            time.sleep(0.25)

    def close(self) -> None:
        stop(self.process)


def start_prometheus(tmp: Path, targets: dict[str, str]) -> Prometheus:
    """A real Prometheus scraping each ``job: base URL`` at ``/metrics`` every second."""
    lines = ["global:", "  scrape_interval: 1s", "  evaluation_interval: 1s", "scrape_configs:"]
    for job, base in targets.items():
        address = urllib.parse.urlsplit(base).netloc
        lines += [f"  - job_name: {job}", "    static_configs:", f"      - targets: ['{address}']"]
    config = tmp / "prometheus.yml"
    config.write_text("\n".join(lines) + "\n")
    log = tmp / "prometheus.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'prometheus-data'}",
                "--web.listen-address=127.0.0.1:0",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + WAIT_S
    while True:
        found = _LISTENING.search(log.read_text())
        if found:
            return Prometheus(process=process, url=f"http://{found.group(1)}")
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise RuntimeError(f"prometheus did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


# -- headless Chromium -------------------------------------------------------------------

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    # Nothing but loopback resolves: the browser's own background traffic goes nowhere.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)


def chromium(
    tmp: Path, url: str, *, screenshot: Path | None = None, extra: Sequence[str] = ()
) -> str:
    """Load ``url`` in a fresh headless Chromium; the DOM after load (and a screenshot)."""
    profile = tmp / "chromium-profile"
    profile.mkdir(exist_ok=True)
    base = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1280,2000"]
    dom = subprocess.run(
        [*base, *extra, "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    if screenshot is not None:
        subprocess.run(
            [*base, f"--screenshot={screenshot}", url],
            capture_output=True,
            timeout=120,
            check=True,
        )
    return dom


def iter_exprs(node: Any) -> Iterator[str]:
    """Every ``expr`` of a Grafana dashboard's panel targets, however deep."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from iter_exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from iter_exprs(item)
