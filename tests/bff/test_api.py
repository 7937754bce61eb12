"""The BFF's HTTP API against a real host: sessions, SSE turns, cancel, errors, limits."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import httpx
import trio

from actors.telemetry import parse_traceparent
from contracts.generated import agent_pb2
from supervisors.bff import SessionsSection
from supervisors.edges.grpc import (
    GrpcServerConfig,
    ServerStream,
    serve_grpc,
    service_from_descriptor,
)
from supervisors.host import AuthSection as HostAuthSection
from supervisors.tls import DevCerts, generate_dev_certs, server_ssl_context
from tests.host.conftest import host_config

from ._support import (
    STEP_S,
    TENANT,
    USER,
    assert_problem,
    create_session,
    host_sessions,
    make_keys,
    mock_section,
    open_bff,
    open_stack,
    parse_sse,
    run_turn,
    trusting,
    untrusted_keys,
)


async def serve_fake_host(
    nursery: trio.Nursery,
    certs: DevCerts,
    *,
    client_ca: Path | None = None,
    seen: list[dict[str, Any]] | None = None,
    starts: list[agent_pb2.StartSession] | None = None,
    session_id: str = "",
) -> int:
    """A StreamChat server on the gRPC edge that records each call's metadata and
    start_session, answers session.started and then reads until the client is done."""

    async def stream_chat(stream: ServerStream[Any, Any]) -> None:
        if seen is not None:
            seen.append(dict(stream.metadata))
        request = await stream.receive()
        if starts is not None:
            starts.append(request.start_session)
        given = session_id or f"s-{next(numbers)}"
        started = agent_pb2.ChatEvent(session_id=given, seq=1)
        started.session_started.session_id = given
        await stream.send(started)
        async for _ in stream:
            pass

    numbers = itertools.count(1)
    service = service_from_descriptor(
        agent_pb2.DESCRIPTOR.services_by_name["Agent"], {"StreamChat": stream_chat}
    )
    context = server_ssl_context(certs.server_cert, certs.server_key, client_ca=client_ca)
    server = await nursery.start(
        lambda task_status: serve_grpc(
            [service], config=GrpcServerConfig(port=0), ssl_context=context, task_status=task_status
        )
    )
    port: int = server.address[1]
    return port


class TestSessionsAndTurns:
    """A session streams its turns as SSE with the host's sequence numbers as ids."""

    async def test_session_lifecycle_and_two_turns(self, tmp_path: Path) -> None:
        async with open_stack(tmp_path) as stack, stack.client() as client:
            health = await client.get("/v1/health")
            assert health.status_code == 200
            assert health.json() == {"status": "ok", "host": "SERVING"}
            created = await client.post("/v1/sessions", json={"limits": {"max_turn_ms": 5000}})
            assert created.status_code == 201, created.text
            session = created.json()
            assert session["tenant"] == TENANT
            assert session["user"] == USER
            assert session["limits"]["max_turn_ms"] == 5000
            assert created.headers["location"] == f"/v1/sessions/{session['session_id']}"
            sid = session["session_id"]
            first = await run_turn(client, sid, "hello")
            second = await run_turn(client, sid, "again")
            for events in (first, second):
                assert [name for name, _, _ in events][-1] == "assistant.done"
                assert all(data["session_id"] == sid for _, _, data in events)
                assert {name for name, _, _ in events} <= {"assistant.delta", "assistant.done"}
            ids = [event_id for _, event_id, _ in first + second]
            assert ids == sorted(ids)
            assert len(set(ids)) == len(ids)
            assert ids[0] == 2  # seq 1 is session.started, consumed by the BFF
            text = "".join(d["text"] for n, _, d in first if n == "assistant.delta")
            assert text.startswith('You said: "hello".')
            assert first[0][2]["turn_id"] != second[0][2]["turn_id"]
            info = await client.get(f"/v1/sessions/{sid}")
            assert info.status_code == 200
            assert info.json()["turn_running"] is False
            deleted = await client.delete(f"/v1/sessions/{sid}")
            assert deleted.status_code == 204
            assert_problem(await client.get(f"/v1/sessions/{sid}"), 404, "session.not_found")

    async def test_cancel_ends_the_turn_and_busy_is_refused(self, tmp_path: Path) -> None:
        # 150 tokens at 100/s: the answer is still streaming when we cancel it.
        async with (
            open_stack(tmp_path, mock={"tokens_per_s": 100, "answer_tokens": 150}) as stack,
            stack.client() as client,
        ):
            sid = await create_session(client)
            async with client.stream(
                "POST", "/v1/chat/stream", json={"session_id": sid, "message": "talk"}
            ) as response:
                assert response.status_code == 200
                lines = response.aiter_lines()
                async for line in lines:
                    if line.startswith("event: assistant.delta"):
                        break
                busy = await client.post(
                    "/v1/chat/stream", json={"session_id": sid, "message": "more"}
                )
                assert_problem(busy, 409, "session.busy")
                cancelled = await client.post(f"/v1/sessions/{sid}/cancel")
                assert cancelled.json() == {"session_id": sid, "cancelled": True}
                rest = "\n".join([line async for line in lines])
            events = parse_sse(rest + "\n\n")
            name, _, data = events[-1]
            assert name == "assistant.done"
            assert data["finish_reason"] == "cancelled"
            assert stack.provider.cancelled.is_set()
            # The session takes a new turn after the cancelled one.
            assert (await run_turn(client, sid, "next"))[-1][0] == "assistant.done"
            nothing = await client.post(f"/v1/sessions/{sid}/cancel")
            assert nothing.json()["cancelled"] is False


class TestProblems:
    """Every refusal is an RFC 9457 problem with a catalog code."""

    async def test_authentication_and_ownership(self, tmp_path: Path) -> None:
        async with open_stack(tmp_path) as stack:
            async with stack.client(token=None) as anonymous:
                response = await anonymous.post("/v1/sessions", json={})
                assert_problem(response, 401, "unauthenticated")
                assert response.headers["www-authenticate"].startswith("Bearer")
            (tmp_path / "other").mkdir()
            forged = untrusted_keys(tmp_path / "other").token()
            async with stack.client(token=forged) as client:
                body = assert_problem(
                    await client.post("/v1/sessions", json={}), 401, "unauthenticated"
                )
                assert "unknown key" in body["detail"]
            expired = stack.keys.token(ttl_s=60, now=1_000_000)
            async with stack.client(token=expired) as client:
                body = assert_problem(
                    await client.post("/v1/sessions", json={}), 401, "unauthenticated"
                )
                assert "expired" in body["detail"]
            wrong_audience = stack.keys.token(audience="someone-else")
            async with stack.client(token=wrong_audience) as client:
                assert_problem(await client.post("/v1/sessions", json={}), 401, "unauthenticated")
            limited = stack.keys.token(devices=("laptop-1",))
            async with stack.client(token=limited) as client:
                denied = await client.post("/v1/sessions", json={"device_id": "laptop-2"})
                assert_problem(denied, 403, "forbidden")
                mine = await create_session(client, device_id="laptop-1")
            # Another user of the same tenant cannot see, use or end that session.
            async with stack.client(token=stack.keys.token(user="u2")) as other:
                assert_problem(await other.get(f"/v1/sessions/{mine}"), 404, "session.not_found")
                stream = await other.post(
                    "/v1/chat/stream", json={"session_id": mine, "message": "hi"}
                )
                assert_problem(stream, 404, "session.not_found")
                assert_problem(await other.delete(f"/v1/sessions/{mine}"), 404, "session.not_found")

    async def test_bad_bodies(self, tmp_path: Path) -> None:
        async with (
            open_stack(tmp_path, http={"max_body_bytes": 4096}) as stack,
            stack.client() as client,
        ):
            not_json = await client.post(
                "/v1/sessions", content=b"{", headers={"content-type": "application/json"}
            )
            assert_problem(not_json, 400, "invalid_request")
            duplicate = await client.post(
                "/v1/sessions",
                content=b'{"model": "a", "model": "b"}',
                headers={"content-type": "application/json"},
            )
            assert_problem(duplicate, 400, "invalid_request")
            schema = await client.post("/v1/sessions", json={"limits": {"max_turn_ms": -1}})
            body = assert_problem(schema, 400, "invalid_request")
            assert "body.limits.max_turn_ms" in body["detail"]
            unknown = await client.post("/v1/sessions", json={"tenant": "evil"})
            assert_problem(unknown, 400, "invalid_request")
            text = await client.post(
                "/v1/sessions", content=b"{}", headers={"content-type": "text/plain"}
            )
            assert_problem(text, 415, "invalid_request")
            large = await client.post("/v1/sessions", json={"model": "x" * 5000})
            assert_problem(large, 413, "message.too_large")
            assert_problem(await client.get("/nowhere"), 404, "not_found")
            method = await client.put("/v1/sessions")
            assert_problem(method, 405, "invalid_request")
            described = await client.get("/v1/problems/session.busy")
            assert described.json()["retryable"] is True
            assert_problem(await client.get("/v1/problems/nope"), 404, "not_found")

    async def test_a_token_the_host_refuses_is_a_401(self, tmp_path: Path) -> None:
        """The host checks the forwarded token again: its refusal reaches the client as is."""
        other = untrusted_keys(tmp_path)
        host = host_config(
            tmp_path,
            tls=True,
            provider=mock_section(),
            auth=HostAuthSection(trusted_keys=[str(other.public)]),
        )
        async with open_stack(tmp_path, host=host) as stack, stack.client() as client:
            body = assert_problem(
                await client.post("/v1/sessions", json={}), 401, "unauthenticated"
            )
            assert body["detail"].startswith("the host refused the session: caller token")
            assert "not trusted" in body["detail"]

    async def test_limits_are_typed_429_and_503(self, tmp_path: Path) -> None:
        sessions = SessionsSection(max_sessions=3, max_sessions_per_user=2)
        async with open_stack(tmp_path, sessions=sessions) as stack:
            async with stack.client() as first:
                await create_session(first)
                await create_session(first)
                refused = await first.post("/v1/sessions", json={})
                body = assert_problem(refused, 429, "session.limit")
                assert body["retryable"] is True
                assert refused.headers["retry-after"] == "1"
            async with stack.client(token=stack.keys.token(user="u2")) as second:
                await create_session(second)
                full = await second.post("/v1/sessions", json={})
                assert_problem(full, 503, "overloaded")
                assert full.headers["retry-after"] == "1"


class TestWhatTheHostSees:
    """The caller's token and traceparent reach the host in the StreamChat metadata."""

    async def test_token_traceparent_and_identity_are_forwarded(self, tmp_path: Path) -> None:
        seen: list[dict[str, Any]] = []
        starts: list[agent_pb2.StartSession] = []
        certs = generate_dev_certs(tmp_path / "certs")
        keys = make_keys(tmp_path)
        token = keys.token(devices=("laptop-7",))
        parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        async with trio.open_nursery() as nursery:
            port = await serve_fake_host(nursery, certs, seen=seen, starts=starts)
            async with (
                open_bff(
                    tmp_path,
                    target=f"localhost:{port}",
                    ca=str(certs.ca_cert),
                    keys=keys,
                ) as (bff, _),
                httpx.AsyncClient(
                    base_url=bff.url,
                    verify=trusting(certs.ca_cert),
                    headers={"authorization": f"Bearer {token}"},
                ) as client,
            ):
                created = await client.post(
                    "/v1/sessions", json={"device_id": "laptop-7"}, headers={"traceparent": parent}
                )
                assert created.status_code == 201, created.text
                again = await client.post(
                    "/v1/sessions", json={}, headers={"traceparent": "not-a-traceparent"}
                )
                assert again.status_code == 201, again.text
            nursery.cancel_scope.cancel()
        assert seen[0]["authorization"] == f"Bearer {token}"
        assert seen[0]["traceparent"] == parent
        replaced = seen[1]["traceparent"]
        assert parse_traceparent(replaced) is not None
        assert replaced != "not-a-traceparent"
        assert (starts[0].tenant, starts[0].user, starts[0].device_id) == (TENANT, USER, "laptop-7")
        assert starts[1].device_id == ""


class TestAHostThatMisbehaves:
    """What a host sends is not trusted blindly."""

    async def test_a_reused_session_id_is_a_502(self, tmp_path: Path) -> None:
        certs = generate_dev_certs(tmp_path / "certs")
        keys = make_keys(tmp_path)
        async with trio.open_nursery() as nursery:
            port = await serve_fake_host(nursery, certs, session_id="same")
            async with (
                open_bff(
                    tmp_path, target=f"localhost:{port}", ca=str(certs.ca_cert), keys=keys
                ) as (bff, _),
                httpx.AsyncClient(
                    base_url=bff.url,
                    verify=trusting(certs.ca_cert),
                    headers={"authorization": f"Bearer {keys.token()}"},
                ) as client,
            ):
                assert (await client.post("/v1/sessions", json={})).status_code == 201
                assert_problem(await client.post("/v1/sessions", json={}), 502, "internal")
            nursery.cancel_scope.cancel()


class TestHostReachability:
    """Health follows the host; a host that is down is a typed 503, never a hang or a 500."""

    async def test_host_down_and_mutual_tls(self, tmp_path: Path) -> None:
        certs = generate_dev_certs(tmp_path / "certs")
        keys = make_keys(tmp_path)
        # A port with nothing behind it.
        with trio.socket.socket() as probe:
            await probe.bind(("127.0.0.1", 0))
            dead_port = probe.getsockname()[1]
        async with (
            open_bff(
                tmp_path, target=f"localhost:{dead_port}", ca=str(certs.ca_cert), keys=keys
            ) as (bff, _),
            httpx.AsyncClient(
                base_url=bff.url,
                verify=trusting(certs.ca_cert),
                headers={"authorization": f"Bearer {keys.token()}"},
            ) as client,
        ):
            health = await client.get("/v1/health")
            assert health.status_code == 503
            assert health.json()["host"] == "UNREACHABLE"
            assert_problem(await client.post("/v1/sessions", json={}), 503, "unavailable")

    async def test_mutual_tls_to_the_host(self, tmp_path: Path) -> None:
        """A host that asks for a client certificate gets the BFF's (host.client_cert)."""
        certs = generate_dev_certs(tmp_path / "certs")
        keys = make_keys(tmp_path)
        async with trio.open_nursery() as nursery:
            port = await serve_fake_host(nursery, certs, client_ca=certs.ca_cert)
            target = f"localhost:{port}"
            for upstream, expected in (
                ({}, 503),
                ({"client_cert": str(certs.client_cert), "client_key": str(certs.client_key)}, 201),
            ):
                async with (
                    open_bff(
                        tmp_path, target=target, ca=str(certs.ca_cert), keys=keys, upstream=upstream
                    ) as (bff, _),
                    httpx.AsyncClient(
                        base_url=bff.url,
                        verify=trusting(certs.ca_cert),
                        headers={"authorization": f"Bearer {keys.token()}"},
                    ) as client,
                ):
                    created = await client.post("/v1/sessions", json={})
                    assert created.status_code == expected, created.text
            nursery.cancel_scope.cancel()


class TestIdleSessions:
    """A session nobody uses is closed, on the host too."""

    async def test_idle_session_is_closed(self, tmp_path: Path) -> None:
        sessions = SessionsSection(idle_timeout_s=1.0)
        async with open_stack(tmp_path, sessions=sessions) as stack, stack.client() as client:
            sid = await create_session(client)
            assert await host_sessions(stack) == 1
            with trio.fail_after(STEP_S):
                while (await client.get(f"/v1/sessions/{sid}")).status_code == 200:
                    await trio.sleep(0.1)
                while await host_sessions(stack):
                    await trio.sleep(0.05)
