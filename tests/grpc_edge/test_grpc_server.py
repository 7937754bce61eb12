"""The edge's server behaviour: binding, deadlines, bounded inbound, TLS, shutdown, limits."""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import trio
from edge_helpers import (
    STEP_TIMEOUT_S,
    Probe,
    RawH2Client,
    chat_callable,
    echo_service,
    make_certs,
    plaintext_config,
    say,
    start,
    start_server,
)

from contracts.generated import agent_pb2
from contracts.generated.grpc.health.v1 import health_pb2
from supervisors.edges.grpc import (
    BindError,
    ConfigError,
    GrpcServerConfig,
    HealthService,
    MessageTooLarge,
    ServerStream,
    ServingStatus,
    service_from_descriptor,
)


class TestBind:
    """Loopback by default; a taken port fails with a clear error naming host:port."""

    async def test_default_host_is_loopback(self, echo_server: Any) -> None:
        assert GrpcServerConfig().host == "127.0.0.1"
        assert echo_server.host == "127.0.0.1"
        assert echo_server.port > 0

    async def test_second_server_on_a_taken_port(self, echo_server: Any, probe: Probe) -> None:
        async with trio.open_nursery() as nursery:
            with pytest.raises(BindError, match=rf"127\.0\.0\.1:{echo_server.port}: .*in use"):
                await start_server(
                    nursery, [echo_service(probe)], config=plaintext_config(port=echo_server.port)
                )

    async def test_plaintext_needs_the_dev_flag(self, probe: Probe) -> None:
        async with trio.open_nursery() as nursery:
            with pytest.raises(ConfigError, match="allow_plaintext"):
                await start_server(nursery, [echo_service(probe)], config=GrpcServerConfig())


class TestDeadline:
    """grpc-timeout cancels the handler at the deadline and the client sees DEADLINE_EXCEEDED."""

    async def test_raw_client_gets_deadline_exceeded_trailers(
        self, echo_server: Any, probe: Probe
    ) -> None:
        with trio.fail_after(STEP_TIMEOUT_S):
            async with await RawH2Client.connect(echo_server.port) as client:
                sent_at = time.monotonic()
                stream_id = await client.open_call(timeout="200m")
                trailers = await client.wait_trailers(stream_id)
        assert trailers["grpc-status"] == "4"
        assert len(probe.cancelled_at) == 1
        assert 0.15 < probe.cancelled_at[0] - sent_at < 2.0

    async def test_grpcio_client_sees_deadline_exceeded(self, echo_server: Any) -> None:
        def client() -> grpc.StatusCode:
            stop = threading.Event()

            def requests() -> Iterator[agent_pb2.ChatRequest]:
                yield start()
                stop.wait(5)

            with grpc.insecure_channel(f"127.0.0.1:{echo_server.port}") as channel:
                try:
                    list(chat_callable(channel)(requests(), timeout=0.3))
                except grpc.RpcError as error:
                    return error.code()  # type: ignore[no-any-return]
                finally:
                    stop.set()
            raise AssertionError("the call did not fail")

        with trio.fail_after(STEP_TIMEOUT_S):
            code = await trio.to_thread.run_sync(client)
        assert code == grpc.StatusCode.DEADLINE_EXCEEDED


class TestBoundedInbound:
    """A flooding client is held back by HTTP/2 flow control; server memory stays bounded."""

    async def test_flood_stalls_then_drains(self) -> None:
        probe = Probe()
        window = 65_535
        payload = say("x" * 1000).SerializeToString()
        async with trio.open_nursery() as nursery:
            handle = await start_server(
                nursery, [echo_service(probe, hold=True)], config=plaintext_config()
            )
            with trio.fail_after(STEP_TIMEOUT_S):
                async with await RawH2Client.connect(handle.port) as client:
                    await client.pump()  # the server's SETTINGS
                    stream_id = await client.open_call()
                    await probe.entered.wait()
                    sent = 0
                    # Send until the server's window for this stream is shut.
                    while client.h2.local_flow_control_window(stream_id) >= len(payload) + 5:
                        await client.send_message(stream_id, payload)
                        sent += 1
                    with trio.move_on_after(0.3):
                        while True:  # any credit the server returned would show up here
                            await client.pump()
                    stalled_window = client.h2.local_flow_control_window(stream_id)
                    (server_stream,) = probe.running.values()
                    buffered = server_stream.buffered_inbound_bytes
                    probe.go.set()
                    while len(probe.received) < sent:
                        await client.pump()
            nursery.cancel_scope.cancel()
        assert stalled_window < len(payload) + 5
        assert sent * (len(payload) + 5) <= window
        assert buffered <= window
        assert len(probe.received) == sent


class TestTls:
    """TLS with ALPN h2 against the standard grpcio client."""

    async def test_grpcio_secure_channel(self, tmp_path: Path, probe: Probe) -> None:
        certs = make_certs(tmp_path)
        async with trio.open_nursery() as nursery:
            handle = await start_server(
                nursery,
                [echo_service(probe)],
                config=GrpcServerConfig(),
                ssl_context=certs.server_context(),
            )

            def client() -> list[str]:
                credentials = grpc.ssl_channel_credentials(root_certificates=certs.ca.read_bytes())
                with grpc.secure_channel(f"localhost:{handle.port}", credentials) as channel:
                    events = chat_callable(channel)(iter([start(), say("over tls")]), timeout=10)
                    return [event.assistant_delta.text for event in events]

            with trio.fail_after(STEP_TIMEOUT_S):
                texts = await trio.to_thread.run_sync(client)
            nursery.cancel_scope.cancel()
        assert texts == ["", "over tls"]


class TestGracefulShutdown:
    """Shutdown stops accepting, lets calls finish within the grace, then cancels the rest."""

    async def test_drain_then_cancel(self) -> None:
        probe = Probe()
        finished: list[str] = []

        async def slow(stream: ServerStream[agent_pb2.ChatRequest, agent_pb2.ChatEvent]) -> None:
            request = await stream.receive()
            await trio.sleep(float(request.start_session.user))
            await stream.send(agent_pb2.ChatEvent(seq=1))
            finished.append(request.start_session.user)

        service = service_from_descriptor(
            agent_pb2.DESCRIPTOR.services_by_name["Agent"], {"StreamChat": slow}
        )
        async with trio.open_nursery() as nursery:
            handle = await start_server(nursery, [service, echo_service(probe)][:1])
            results: dict[str, Any] = {}

            def call(delay: str) -> None:
                with grpc.insecure_channel(f"127.0.0.1:{handle.port}") as channel:
                    try:
                        results[delay] = len(list(chat_callable(channel)(iter([start(delay)]))))
                    except grpc.RpcError as error:
                        results[delay] = error.code()

            async def run(delay: str) -> None:
                await trio.to_thread.run_sync(call, delay)

            with trio.fail_after(STEP_TIMEOUT_S):
                nursery.start_soon(run, "0.2")
                nursery.start_soon(run, "30")
                await trio.sleep(0.1)
                shutdown_at = trio.current_time()
                handle.shutdown(grace_s=1.0)
                await handle.wait_stopped()
                stopped_after = trio.current_time() - shutdown_at
                while len(results) < 2:
                    await trio.sleep(0.01)
                with pytest.raises(OSError, match="connect"):
                    await trio.open_tcp_stream("127.0.0.1", handle.port)
        assert finished == ["0.2"]
        assert results == {"0.2": 1, "30": grpc.StatusCode.UNAVAILABLE}
        assert 0.9 < stopped_after < 5


class TestMessageSize:
    """An oversized message reaches the handler as MessageTooLarge, or ends the call."""

    async def test_handler_turns_it_into_an_error_event_and_goes_on(self) -> None:
        async def chat(stream: ServerStream[agent_pb2.ChatRequest, agent_pb2.ChatEvent]) -> None:
            while True:
                try:
                    request = await stream.receive()
                except MessageTooLarge as error:
                    await stream.send(
                        agent_pb2.ChatEvent(
                            error=agent_pb2.Error(code="message.too_large", message=str(error))
                        )
                    )
                    continue
                await stream.send(
                    agent_pb2.ChatEvent(
                        assistant_delta=agent_pb2.AssistantDelta(text=request.user_message.text)
                    )
                )

        service = service_from_descriptor(
            agent_pb2.DESCRIPTOR.services_by_name["Agent"], {"StreamChat": chat}
        )
        async with trio.open_nursery() as nursery:
            handle = await start_server(
                nursery, [service], config=plaintext_config(max_message_bytes=1000)
            )

            def client() -> list[agent_pb2.ChatEvent]:
                with grpc.insecure_channel(f"127.0.0.1:{handle.port}") as channel:
                    call = chat_callable(channel)(iter([say("a"), say("b" * 5000), say("c")]))
                    return [next(call) for _ in range(3)]

            with trio.fail_after(STEP_TIMEOUT_S):
                events = await trio.to_thread.run_sync(client)
            nursery.cancel_scope.cancel()
        assert [e.WhichOneof("event") for e in events] == [
            "assistant_delta",
            "error",
            "assistant_delta",
        ]
        assert events[1].error.code == "message.too_large"
        assert events[2].assistant_delta.text == "c"

    async def test_uncaught_is_resource_exhausted(self, probe: Probe) -> None:
        async with trio.open_nursery() as nursery:
            handle = await start_server(
                nursery, [echo_service(probe)], config=plaintext_config(max_message_bytes=1000)
            )

            def client() -> grpc.StatusCode:
                with grpc.insecure_channel(f"127.0.0.1:{handle.port}") as channel:
                    try:
                        list(chat_callable(channel)(iter([say("b" * 5000)])))
                    except grpc.RpcError as error:
                        return error.code()  # type: ignore[no-any-return]
                raise AssertionError("the call did not fail")

            with trio.fail_after(STEP_TIMEOUT_S):
                code = await trio.to_thread.run_sync(client)
            nursery.cancel_scope.cancel()
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED


class TestHealth:
    """grpc.health.v1 Check and Watch with the grpcio client; the app sets the status."""

    async def test_check_and_watch(self) -> None:
        health = HealthService()
        health.set_status("zl.agent.v0.Agent", ServingStatus.SERVING)
        async with trio.open_nursery() as nursery:
            handle = await start_server(nursery, [health.service])
            channel = grpc.insecure_channel(f"127.0.0.1:{handle.port}")
            check = channel.unary_unary(
                "/grpc.health.v1.Health/Check",
                request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                response_deserializer=health_pb2.HealthCheckResponse.FromString,
            )
            watch = channel.unary_stream(
                "/grpc.health.v1.Health/Watch",
                request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                response_deserializer=health_pb2.HealthCheckResponse.FromString,
            )
            try:
                with trio.fail_after(STEP_TIMEOUT_S):
                    overall = await trio.to_thread.run_sync(
                        lambda: check(health_pb2.HealthCheckRequest(service=""), timeout=5)
                    )
                    with pytest.raises(grpc.RpcError) as unknown:
                        await trio.to_thread.run_sync(
                            lambda: check(health_pb2.HealthCheckRequest(service="nope"), timeout=5)
                        )
                    updates = watch(health_pb2.HealthCheckRequest(service="zl.agent.v0.Agent"))
                    first = await trio.to_thread.run_sync(lambda: next(updates))
                    health.set_status("zl.agent.v0.Agent", ServingStatus.NOT_SERVING)
                    second = await trio.to_thread.run_sync(lambda: next(updates))
                    updates.cancel()
            finally:
                channel.close()
            nursery.cancel_scope.cancel()
        assert overall.status == health_pb2.HealthCheckResponse.SERVING
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        assert second.status == health_pb2.HealthCheckResponse.NOT_SERVING


class TestTrySend:
    """``ServerStream.try_send`` sends at once what needs no waiting, and nothing else."""

    async def test_stops_at_the_window_then_send_waits_for_it(self) -> None:
        text = "x" * 1000
        accepted: list[int] = []
        refused = trio.Event()

        def event(seq: int) -> agent_pb2.ChatEvent:
            return agent_pb2.ChatEvent(seq=seq, assistant_delta=agent_pb2.AssistantDelta(text=text))

        async def stream_chat(stream: ServerStream[Any, Any]) -> None:
            await stream.receive()
            seq = 1  # (seq 0 would encode shorter: proto3 leaves defaults out)
            while stream.try_send(event(seq)):
                accepted.append(seq)
                seq += 1
            refused.set()
            await stream.send(event(seq))  # waits until the client opens its window
            accepted.append(seq)

        service = service_from_descriptor(
            agent_pb2.DESCRIPTOR.services_by_name["Agent"], {"StreamChat": stream_chat}
        )
        frame_bytes = 5 + len(event(1).SerializeToString())
        window = 65_535  # the client's initial window: it acknowledges nothing until pump()
        async with trio.open_nursery() as nursery:
            handle = await start_server(nursery, [service])
            with trio.fail_after(STEP_TIMEOUT_S):
                async with await RawH2Client.connect(handle.port) as client:
                    stream_id = await client.open_call()
                    await client.send_message(stream_id, start().SerializeToString())
                    await refused.wait()
                    await trio.sleep(0.1)
                    assert len(accepted) == window // frame_bytes, "stopped at the window"
                    expected_bytes = (len(accepted) + 1) * frame_bytes
                    while len(client.data.get(stream_id, b"")) < expected_bytes:
                        await client.pump()  # acknowledges: the window opens, send() goes on
            nursery.cancel_scope.cancel()
        data = client.data[stream_id]
        received = [
            agent_pb2.ChatEvent.FromString(data[at + 5 : at + frame_bytes]).seq
            for at in range(0, len(data), frame_bytes)
        ]
        assert received == accepted == list(range(1, window // frame_bytes + 2))


class TestDeliverTo:
    """``ServerStream.deliver_to`` hands messages over in the connection's task, in order."""

    @staticmethod
    async def converse(
        accept: Any, batches: list[list[str]], log: list[tuple[str, str]], *, held: int
    ) -> None:
        """Send each batch of user messages in one write; the handler logs what it receives.

        The handler starts receiving only once ``held`` messages wait in the stream (the
        rest went to ``accept``), so the outcome does not depend on how the first batch is
        split between reads.
        """
        done = trio.Event()
        go = trio.Event()
        streams: list[ServerStream[Any, Any]] = []

        async def stream_chat(stream: ServerStream[Any, Any]) -> None:
            stream.deliver_to(accept)
            streams.append(stream)
            await go.wait()
            async for request in stream:
                log.append(("received", request.user_message.text))
            done.set()

        service = service_from_descriptor(
            agent_pb2.DESCRIPTOR.services_by_name["Agent"], {"StreamChat": stream_chat}
        )
        message_bytes = len(say("1").SerializeToString())  # every text here is one character
        async with trio.open_nursery() as nursery:
            handle = await start_server(nursery, [service])
            with trio.fail_after(STEP_TIMEOUT_S):
                async with await RawH2Client.connect(handle.port) as client:
                    stream_id = await client.open_call()
                    while not streams:  # what comes before deliver_to waits for receive()
                        await trio.sleep(0.01)
                    sent = 0
                    for batch in batches:
                        for text in batch:
                            payload = say(text).SerializeToString()
                            client.h2.send_data(
                                stream_id, struct.pack(">BI", 0, len(payload)) + payload
                            )
                        await client.flush()
                        sent += len(batch)
                        if not go.is_set():
                            while (
                                streams[0].buffered_inbound_bytes < held * message_bytes
                                or len(log) < sent - held
                            ):
                                await trio.sleep(0.01)
                            go.set()
                        while len(log) < sent:
                            await trio.sleep(0.01)
                    client.h2.end_stream(stream_id)
                    await client.flush()
                    await done.wait()
            nursery.cancel_scope.cancel()

    async def test_a_refusal_queues_the_rest_until_the_handler_caught_up(self) -> None:
        log: list[tuple[str, str]] = []
        refuse = {"3"}

        def accept(request: agent_pb2.ChatRequest) -> bool:
            text = request.user_message.text
            if text in refuse:
                refuse.discard(text)
                return False
            log.append(("direct", text))
            return True

        await self.converse(accept, [["1", "2", "3", "4"], ["5"]], log, held=2)
        assert log == [
            ("direct", "1"),
            ("direct", "2"),
            ("received", "3"),
            ("received", "4"),
            ("direct", "5"),
        ]

    async def test_a_failing_accept_falls_back_to_receive(self) -> None:
        log: list[tuple[str, str]] = []

        def accept(request: agent_pb2.ChatRequest) -> bool:
            raise RuntimeError("a bug")

        await self.converse(accept, [["1", "2"], ["3"]], log, held=2)
        assert log == [("received", "1"), ("received", "2"), ("received", "3")]
