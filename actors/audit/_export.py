"""``AuditExporter``: ships the audit file to a collector as OTLP logs, batch by batch.

The spool is the audit file itself: the exporter keeps a cursor (offset, seq and hash of
the last record the collector accepted) in a small file beside it, reads the records
after it in bounded batches, and moves the cursor only once the collector answered 2xx.
So a collector outage loses nothing (the records wait in the file, which is kept anyway:
no second copy on disk), the host never waits for the exporter (the writer does not know
it exists), and memory is bounded by one batch. After a restart the exporter resumes at
its cursor; a batch that was sent but whose answer was lost is sent again (at least once:
each log record carries ``zl.audit.seq``, so a collector can drop the duplicate).

Every record read is checked (its own hash, and that it chains from the cursor), so the
exporter never ships a file that was edited under it; it stops and says so instead.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import attrs
import httpx
import trio
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.resource.v1 import resource_pb2

from zl_actors import Actor, ActorContext, Backoff

from ._chain import BadRecord, parse_line
from ._digest import GENESIS

log = logging.getLogger("zl.audit.export")

#: Records per OTLP request, and bytes of audit file read for one.
DEFAULT_BATCH_RECORDS: Final = 512
DEFAULT_BATCH_BYTES: Final = 1024 * 1024
#: How often the exporter looks for new records when it is caught up.
DEFAULT_INTERVAL_S: Final = 1.0
#: One request to the collector, connection included.
DEFAULT_TIMEOUT_S: Final = 10.0
CONTENT_TYPE: Final = "application/x-protobuf"


@attrs.frozen(kw_only=True)
class AuditExportConfig:
    """Where and how the audit is exported.

    Args:
        endpoint: the collector's OTLP/HTTP base URL; records go to ``{endpoint}/v1/logs``.
        audit_path: the audit file (the spool).
        cursor_path: where the cursor is kept (default: the audit file + ``.export``).
        service_name: the ``service.name`` of the exported resource.
        batch_records: records per request at most.
        batch_bytes: bytes of audit file per request at most (a larger record goes alone).
        interval_s: how often to look for new records when caught up.
        timeout_s: one request's deadline.
        backoff: between failed attempts (full jitter, capped).
        headers: sent with every request (e.g. an ``authorization`` for the collector).
    """

    endpoint: str
    audit_path: Path = attrs.field(converter=Path)
    cursor_path: Path | None = None
    service_name: str = "zl-host"
    batch_records: int = attrs.field(
        default=DEFAULT_BATCH_RECORDS, validator=attrs.validators.ge(1)
    )
    batch_bytes: int = attrs.field(default=DEFAULT_BATCH_BYTES, validator=attrs.validators.ge(1024))
    interval_s: float = attrs.field(default=DEFAULT_INTERVAL_S, validator=attrs.validators.gt(0))
    timeout_s: float = attrs.field(default=DEFAULT_TIMEOUT_S, validator=attrs.validators.gt(0))
    backoff: Backoff = attrs.field(factory=lambda: Backoff(initial_s=0.5, max_s=30.0, jitter=1.0))
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def cursor(self) -> Path:
        return self.cursor_path or self.audit_path.with_name(self.audit_path.name + ".export")


@attrs.frozen(kw_only=True)
class ExportCursor:
    """The last record the collector accepted: where the next one starts."""

    offset: int = 0
    seq: int = -1
    hash: str = GENESIS


@attrs.frozen(kw_only=True)
class Batch:
    """Records read after a cursor, and the cursor after them."""

    lines: tuple[bytes, ...]
    records: tuple[dict[str, Any], ...]
    end: ExportCursor


class ExportStopped(Exception):
    """The file does not continue from the cursor (replaced or edited): export stops."""


def load_export_cursor(path: Path) -> ExportCursor:
    """The cursor kept at ``path`` (the start of the file if there is none)."""
    try:
        data = json.loads(path.read_text())
        return ExportCursor(
            offset=int(data["offset"]), seq=int(data["seq"]), hash=str(data["hash"])
        )
    except FileNotFoundError:
        return ExportCursor()
    except (ValueError, KeyError, TypeError) as exc:
        raise ExportStopped(f"the export cursor {path} is unreadable: {exc}") from None


def save_export_cursor(path: Path, cursor: ExportCursor) -> None:
    """Write the cursor atomically (a crash leaves the old one or the new one, never half)."""
    tmp = path.with_name(path.name + ".tmp")
    data = json.dumps(attrs.asdict(cursor)).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_batch(path: Path, cursor: ExportCursor, *, max_records: int, max_bytes: int) -> Batch:
    """The complete records after ``cursor`` (at most ``max_records``, about ``max_bytes``).

    Raises:
        ExportStopped: a record does not follow the cursor, or is not a valid record.
        OSError: the file cannot be read.
    """
    with open(path, "rb") as file:
        file.seek(cursor.offset)
        data = file.read(max_bytes)
        while data and b"\n" not in data:  # one record larger than a batch: read it whole
            more = file.read(max_bytes)
            if not more:
                break
            data += more
    end = data.rfind(b"\n")
    lines = [line + b"\n" for line in data[: end + 1].split(b"\n")[:-1]][:max_records]
    records = []
    seq, prev, offset = cursor.seq, cursor.hash, cursor.offset
    for line in lines:
        try:
            record = parse_line(line)
        except BadRecord as exc:
            raise ExportStopped(f"{path} at byte {offset}: {exc}") from None
        if record["seq"] != seq + 1 or record["prev"] != prev:
            raise ExportStopped(
                f"{path} at byte {offset}: record {record['seq']} does not follow the last "
                f"exported record {seq} (the file was replaced or edited)"
            )
        records.append(record)
        seq, prev, offset = record["seq"], record["hash"], offset + len(line)
    return Batch(
        lines=tuple(lines),
        records=tuple(records),
        end=ExportCursor(offset=offset, seq=seq, hash=prev),
    )


def _text(value: str) -> common_pb2.AnyValue:
    return common_pb2.AnyValue(string_value=value)


def _attribute(key: str, value: str | int) -> common_pb2.KeyValue:
    if isinstance(value, int):
        return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(int_value=value))
    return common_pb2.KeyValue(key=key, value=_text(value))


def _nanos(at: str) -> int:
    moment = _dt.datetime.strptime(at.rstrip("Z")[:26], "%Y-%m-%dT%H:%M:%S.%f")
    return int(moment.replace(tzinfo=_dt.UTC).timestamp() * 1e9)


def encode_logs(batch: Batch, *, service_name: str, source: str) -> bytes:
    """``batch`` as an OTLP ``ExportLogsServiceRequest``: one log record per audit record,
    its body the exact line (so the collector side can re-verify the chain)."""
    now = time.time_ns()
    records = []
    for line, record in zip(batch.lines, batch.records, strict=True):
        attributes = [
            _attribute("zl.audit.seq", record["seq"]),
            _attribute("zl.audit.kind", record["kind"]),
            _attribute("zl.audit.hash", record["hash"]),
            _attribute("zl.audit.prev", record["prev"]),
        ]
        tenant = record["payload"].get("tenant")
        if isinstance(tenant, str):
            attributes.append(_attribute("zl.tenant", tenant))
        records.append(
            logs_pb2.LogRecord(
                time_unix_nano=_nanos(record["at"]),
                observed_time_unix_nano=now,
                severity_number=logs_pb2.SEVERITY_NUMBER_INFO,
                severity_text="INFO",
                event_name=f"zl.audit.{record['kind']}",
                body=_text(line.rstrip(b"\n").decode("utf-8")),
                attributes=attributes,
            )
        )
    resource = resource_pb2.Resource(
        attributes=[_attribute("service.name", service_name), _attribute("zl.audit.file", source)]
    )
    request = logs_service_pb2.ExportLogsServiceRequest(
        resource_logs=[
            logs_pb2.ResourceLogs(
                resource=resource,
                scope_logs=[
                    logs_pb2.ScopeLogs(
                        scope=common_pb2.InstrumentationScope(name="zero_latency.audit"),
                        log_records=records,
                    )
                ],
            )
        ]
    )
    return request.SerializeToString()


@attrs.define
class ExportStatus:
    """What the exporter has done (for gauges and the debug endpoint)."""

    cursor: ExportCursor = attrs.Factory(ExportCursor)
    pending_bytes: int = 0
    exported: int = 0
    failures: int = 0
    stopped: str | None = None
    last_error: str | None = None


class AuditExporter(Actor[None]):
    """Exports the audit file from its cursor (see the module docstring).

    Args:
        config: where to and how.
        head_seq: the seq of the last record the writer wrote (for the pending count).
        on_progress: told ``(pending_records, pending_bytes, newly_exported)`` after each
            round (metrics); must not block.
    """

    mailbox_capacity = 1

    def __init__(
        self,
        config: AuditExportConfig,
        *,
        head_seq: Callable[[], int] | None = None,
        on_progress: Callable[[int, int, int], None] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.status = ExportStatus()
        self._head_seq = head_seq
        self._on_progress = on_progress
        self._transport = transport
        self._rng = random.Random()

    async def on_start(self, ctx: ActorContext[None]) -> None:
        self.status.cursor = await trio.to_thread.run_sync(load_export_cursor, self.config.cursor)
        ctx.nursery.start_soon(self._run)

    async def handle(self, message: None, ctx: ActorContext[None]) -> None:
        del message, ctx

    async def _run(self) -> None:
        config = self.config
        url = config.endpoint.rstrip("/") + "/v1/logs"
        headers = {"content-type": CONTENT_TYPE, **dict(config.headers)}
        async with httpx.AsyncClient(
            timeout=config.timeout_s, transport=self._transport, headers=headers
        ) as client:
            attempt = 0
            while True:
                try:
                    sent = await self._round(client, url)
                    attempt = 0
                except ExportStopped as exc:
                    if self.status.stopped is None:
                        # A known condition, not a bug: one line says what, no traceback.
                        log.error("audit export stopped: %s", exc)  # noqa: TRY400
                    self.status.stopped = str(exc)
                    sent = 0
                except (httpx.HTTPError, OSError) as exc:
                    attempt += 1
                    self.status.failures += 1
                    if self.status.last_error is None:
                        log.warning("audit export to %s failing (%s); retrying", url, exc)
                    self.status.last_error = f"{type(exc).__name__}: {exc}"[:300]
                    self._progress(0)
                    await trio.sleep(config.backoff.delay(attempt, self._rng))
                    continue
                self._progress(sent)
                if not sent:
                    await trio.sleep(config.interval_s)

    async def _round(self, client: httpx.AsyncClient, url: str) -> int:
        """Send the next batch, if any; the number of records the collector accepted."""
        config, cursor = self.config, self.status.cursor
        batch = await trio.to_thread.run_sync(
            lambda: read_batch(
                config.audit_path,
                cursor,
                max_records=config.batch_records,
                max_bytes=config.batch_bytes,
            )
        )
        size = await trio.to_thread.run_sync(os.path.getsize, config.audit_path)
        self.status.pending_bytes = max(0, size - cursor.offset)
        if not batch.records:
            return 0
        body = encode_logs(batch, service_name=config.service_name, source=config.audit_path.name)
        response = await client.post(url, content=body)
        if response.status_code // 100 != 2:
            raise httpx.HTTPStatusError(
                f"the collector answered {response.status_code}",
                request=response.request,
                response=response,
            )
        await trio.to_thread.run_sync(save_export_cursor, config.cursor, batch.end)
        if self.status.last_error is not None:
            log.info("audit export works again")
        self.status.last_error = None
        self.status.cursor = batch.end
        self.status.exported += len(batch.records)
        self.status.pending_bytes = max(0, size - batch.end.offset)
        return len(batch.records)

    def _progress(self, sent: int) -> None:
        if self._on_progress is None:
            return
        head = self._head_seq() if self._head_seq is not None else self.status.cursor.seq
        pending = max(0, head - self.status.cursor.seq)
        self._on_progress(pending, self.status.pending_bytes, sent)
