"""Who is asking: a real host refuses a client without a token, with a bad or expired one,
or with one that does not cover the tenant, user or device it names (grpcio over a socket)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import attrs
import grpc
import pytest
import trio

from actors.relay import generate_signing_key
from contracts.generated import agent_pb2
from supervisors.host import AuthSection, GrpcSection, ToolsSection
from supervisors.tls import generate_dev_certs
from tests._policy import bearer, caller_token, with_metadata
from tests.host.conftest import (
    Conversation,
    RunningHost,
    host_config,
    in_thread,
    kind,
    say,
    start_host,
)


def start(tenant: str = "acme", user: str = "u1", device: str = "") -> agent_pb2.ChatRequest:
    return agent_pb2.ChatRequest(
        start_session=agent_pb2.StartSession(tenant=tenant, user=user, device_id=device)
    )


def refused(
    host: RunningHost, request: agent_pb2.ChatRequest, *, token: str | None, **kw: Any
) -> tuple[list[agent_pb2.ChatEvent], grpc.RpcError]:
    """Events before the call ended, and how it ended (it must end with an error status)."""
    channel = host.channel(token=token, anonymous=token is None, **kw)
    with channel:
        talk = Conversation(channel)
        talk.send(request)
        talk.send(say("hello"))
        talk.close()
        events: list[agent_pb2.ChatEvent] = []
        try:
            for event in talk.call:
                events.append(event)
        except grpc.RpcError as error:
            return events, error
    raise AssertionError(f"the call was not refused: {[kind(e) for e in events]}")


@pytest.fixture
async def host(tmp_path: Path, nursery: trio.Nursery) -> Any:
    running = await start_host(
        nursery,
        host_config(tmp_path, tls=False, tools=ToolsSection(mode="stdio", roots=[str(tmp_path)])),
    )
    yield running
    running.shutdown.set()


class TestUnauthenticated:
    """No proven caller, no session: an unauthenticated error event, then grpc-status 16."""

    @pytest.mark.parametrize(
        "make",
        [
            lambda: None,
            lambda: "not-a-token",
            lambda: caller_token(now=time.time() - 7200),
            lambda: caller_token(key=generate_signing_key()),
            lambda: caller_token() + "x",
        ],
        ids=["no token", "garbage", "expired", "unknown key", "bad signature"],
    )
    async def test_refused(self, host: RunningHost, make: Any) -> None:
        events, error = await in_thread(lambda: refused(host, start(), token=make()))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert [kind(e) for e in events] == ["error"]
        assert events[0].error.code == "unauthenticated"
        assert events[0].error.retryable is False
        assert await host.session_count() == 0

    async def test_wrong_audience(self, tmp_path: Path, nursery: trio.Nursery) -> None:
        config = host_config(tmp_path, tls=False)
        config = attrs.evolve(config, auth=attrs.evolve(config.auth, audience="other-host"))
        running = await start_host(nursery, config)
        _, error = await in_thread(lambda: refused(running, start(), token=caller_token()))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "audience" in (error.details() or "")
        running.shutdown.set()


class TestForbidden:
    """A proven caller asking for what its token does not cover: forbidden, grpc-status 7."""

    @pytest.mark.parametrize(
        ("request_", "devices"),
        [
            (start(tenant="globex"), ("*",)),
            (start(user="someone-else"), ("*",)),
            (start(device="laptop-2"), ("laptop-1",)),
            (start(), ("laptop-1",)),  # the stdio host's own device is "local"
        ],
        ids=[
            "tenant A asks for B",
            "another user",
            "device not in the token",
            "default device not in the token",
        ],
    )
    async def test_refused(
        self, host: RunningHost, request_: Any, devices: tuple[str, ...]
    ) -> None:
        token = caller_token(devices=devices)
        events, error = await in_thread(lambda: refused(host, request_, token=token))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert [kind(e) for e in events] == ["error"]
        assert events[0].error.code == "forbidden"
        assert await host.session_count() == 0


class TestAllowed:
    """A covered start goes through; an empty user is the token's."""

    async def test_user_filled_from_the_token(self, host: RunningHost) -> None:
        with host.channel(token=caller_token(devices=["local"])) as channel:
            talk = Conversation(channel)
            talk.send(start(user=""))
            first = await in_thread(talk.next_event)
            assert kind(first) == "session_started"
            talk.close()
            await in_thread(talk.rest)

    async def test_dev_flag_lets_anonymous_callers_in_and_says_so(
        self, tmp_path: Path, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.WARNING):
            running = await start_host(
                nursery,
                host_config(tmp_path, tls=False, auth=AuthSection(insecure_dev_no_auth=True)),
            )
        assert "NO CALLER AUTHENTICATION" in caplog.text
        with running.channel(anonymous=True) as channel:
            talk = Conversation(channel)
            talk.send(start())
            assert kind(await in_thread(talk.next_event)) == "session_started"
            talk.close()
            await in_thread(talk.rest)
        # A token that is sent is still checked.
        _, error = await in_thread(lambda: refused(running, start(), token="bad"))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        running.shutdown.set()


class TestMutualTls:
    """With grpc.client_ca the edge requires a client certificate signed by that CA."""

    async def test_client_certificate_required(self, tmp_path: Path, nursery: trio.Nursery) -> None:
        certs = generate_dev_certs(tmp_path / "certs")
        config = host_config(
            tmp_path,
            tls=True,
            grpc=GrpcSection(
                port=0,
                dev_certs_dir=str(tmp_path / "certs"),
                client_ca=str(certs.ca_cert),
                shutdown_grace_s=2.0,
            ),
        )
        running = await start_host(nursery, config)
        target = f"localhost:{running.addresses.grpc_port}"
        root = certs.ca_cert.read_bytes()

        def chat(credentials: grpc.ChannelCredentials) -> str:
            with with_metadata(
                grpc.secure_channel(target, credentials), bearer(caller_token())
            ) as channel:
                talk = Conversation(channel, timeout_s=10)
                talk.send(start())
                try:
                    return kind(talk.next_event())
                except grpc.RpcError as error:
                    return f"refused: {error.code().name}"
                finally:
                    talk.close()

        without = grpc.ssl_channel_credentials(root_certificates=root)
        with_cert = grpc.ssl_channel_credentials(
            root_certificates=root,
            private_key=certs.client_key.read_bytes(),
            certificate_chain=certs.client_cert.read_bytes(),
        )
        assert (await in_thread(chat, without)).startswith("refused: UNAVAILABLE")
        assert await in_thread(chat, with_cert) == "session_started"
        running.shutdown.set()
