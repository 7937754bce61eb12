"""What the BFF tests share: caller keys and tokens, a host and a BFF on loopback (TLS on
both hops), an httpx client, an SSE reader, and headless Chromium driven by Playwright."""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from actors.policy import mint_caller_token
from actors.provider import ScriptedMockProvider
from actors.relay import generate_signing_key, save_public_key
from supervisors.bff import (
    AuthSection,
    BffAddresses,
    BffConfig,
    HostSection,
    HttpSection,
    SessionsSection,
    run_bff,
)
from supervisors.host import HostAddresses, HostConfig, MockSection, ProviderSection, run_host
from tests._policy import caller_key, caller_public_key
from tests.host.conftest import host_config

TENANT = "acme"
USER = "u1"
STEP_S = 30.0
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class WatchedProvider:
    """The scripted mock, noting when a turn's stream is cancelled (on Trio's clock)."""

    name = "mock"

    def __init__(self, inner: ScriptedMockProvider) -> None:
        self.inner = inner
        self.cancelled = trio.Event()
        self.cancelled_at: float | None = None
        self.streams = 0

    @property
    def tokens_streamed(self) -> int:
        return self.inner.tokens_streamed

    async def stream(self, request: Any, events: Any) -> None:
        self.streams += 1
        try:
            await self.inner.stream(request, events)
        except trio.Cancelled:
            self.cancelled_at = trio.current_time()
            self.cancelled.set()
            raise


@attrs.define
class Keys:
    """A caller-token signing key and its public key file."""

    key: Ed25519PrivateKey
    public: Path

    def token(
        self,
        *,
        tenant: str = TENANT,
        user: str = USER,
        devices: tuple[str, ...] = ("*",),
        ttl_s: float = 600,
        **kw: Any,
    ) -> str:
        return mint_caller_token(
            self.key, tenant=tenant, user=user, devices=devices, ttl_s=ttl_s, **kw
        )


def make_keys(tmp_path: Path) -> Keys:
    """The tests' caller-token key (the one every test host trusts) and its public key file."""
    return Keys(key=caller_key(), public=caller_public_key(tmp_path))


def untrusted_keys(tmp_path: Path) -> Keys:
    """A caller-token key that neither the test hosts nor the BFFs trust."""
    key = generate_signing_key()
    public = tmp_path / "untrusted-caller.pub"
    save_public_key(key.public_key(), public)
    return Keys(key=key, public=public)


@attrs.define
class Stack:
    """A host and a BFF in front of it."""

    host: HostAddresses
    host_config: HostConfig
    provider: WatchedProvider
    bff: BffAddresses
    bff_config: BffConfig
    keys: Keys
    certs: Path

    @property
    def ca(self) -> str:
        assert self.bff.ca_cert is not None
        return self.bff.ca_cert

    def client(self, token: str | None = "default", **kw: Any) -> httpx.AsyncClient:
        headers = {}
        if token == "default":
            token = self.keys.token()
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        return httpx.AsyncClient(
            base_url=self.bff.url, verify=trusting(self.ca), headers=headers, timeout=STEP_S, **kw
        )


def trusting(ca: str | Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def mock_section(**values: Any) -> ProviderSection:
    mock = {"first_token_delay_ms": 5, "tokens_per_s": 1000, "answer_tokens": 8, **values}
    return ProviderSection(mock=MockSection(**mock))


@asynccontextmanager
async def open_bff(
    tmp_path: Path,
    *,
    target: str,
    ca: str,
    keys: Keys,
    sessions: SessionsSection | None = None,
    http: dict[str, Any] | None = None,
    upstream: dict[str, Any] | None = None,
) -> AsyncIterator[tuple[BffAddresses, BffConfig]]:
    """A TLS BFF (development certificates in ``tmp_path/certs``) in front of ``target``."""
    config = BffConfig(
        http=HttpSection(
            port=0, dev_certs_dir=str(tmp_path / "certs"), shutdown_grace_s=1.0, **(http or {})
        ),
        host=HostSection(target=target, ca=ca, **(upstream or {})),
        auth=AuthSection(public_keys=[str(keys.public)]),
        sessions=sessions or SessionsSection(),
    )
    async with trio.open_nursery() as nursery:
        shutdown = trio.Event()
        bff: BffAddresses = await nursery.start(
            lambda task_status: run_bff(config, shutdown=shutdown, task_status=task_status)
        )
        try:
            yield bff, config
        finally:
            shutdown.set()


@asynccontextmanager
async def open_stack(
    tmp_path: Path,
    *,
    host: HostConfig | None = None,
    mock: dict[str, Any] | None = None,
    sessions: SessionsSection | None = None,
    http: dict[str, Any] | None = None,
    upstream: dict[str, Any] | None = None,
    keys: Keys | None = None,
) -> AsyncIterator[Stack]:
    """A TLS host (in this process, the scripted mock) and a TLS BFF, for the block."""
    keys = keys or make_keys(tmp_path)
    config = host or host_config(tmp_path, tls=True, provider=mock_section(**(mock or {})))
    provider = WatchedProvider(ScriptedMockProvider(config.provider.mock.to_provider_config()))
    async with trio.open_nursery() as nursery:
        host_shutdown = trio.Event()
        addresses: HostAddresses = await nursery.start(
            lambda task_status: run_host(
                config, shutdown=host_shutdown, provider=provider, task_status=task_status
            )
        )
        assert addresses.ca_cert is not None
        try:
            async with open_bff(
                tmp_path,
                target=f"localhost:{addresses.grpc_port}",
                ca=addresses.ca_cert,
                keys=keys,
                sessions=sessions,
                http=http,
                upstream=upstream,
            ) as (bff, bff_config):
                yield Stack(
                    host=addresses,
                    host_config=config,
                    provider=provider,
                    bff=bff,
                    bff_config=bff_config,
                    keys=keys,
                    certs=tmp_path / "certs",
                )
        finally:
            host_shutdown.set()


async def host_sessions(stack: Stack) -> int:
    """How many sessions the host's actor tree holds (its debug endpoint)."""
    assert stack.host.debug_url is not None
    async with httpx.AsyncClient(timeout=STEP_S) as client:
        response = await client.get(f"{stack.host.debug_url}/debug/actors?format=json")
        tree: dict[str, Any] = response.json()
    sessions = next(c for c in tree["children"] if c["name"] == "sessions")
    return len(sessions["children"])


def parse_sse(text: str) -> list[tuple[str, int | None, dict[str, Any]]]:
    """(event, id, data) of each SSE message in ``text`` (comments skipped)."""
    out = []
    for block in text.split("\n\n"):
        name, event_id, data = "message", None, ""
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("data: "):
                data += line[6:]
        if data:
            out.append((name, event_id, json.loads(data)))
    return out


async def create_session(client: httpx.AsyncClient, **body: Any) -> str:
    response = await client.post("/v1/sessions", json=body)
    assert response.status_code == 201, response.text
    session_id: str = response.json()["session_id"]
    return session_id


async def run_turn(
    client: httpx.AsyncClient, session_id: str, message: str
) -> list[tuple[str, int | None, dict[str, Any]]]:
    response = await client.post(
        "/v1/chat/stream", json={"session_id": session_id, "message": message}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return parse_sse(response.text)


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem with ``status`` and catalog ``code``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    assert body["type"] == f"/v1/problems/{code}"
    assert isinstance(body["retryable"], bool)
    return body


async def wait_for(predicate: Callable[[], bool], *, timeout_s: float = STEP_S) -> None:
    with trio.fail_after(timeout_s):
        while not predicate():
            await trio.sleep(0.02)


# --- the browser ----------------------------------------------------------------------


def spki_pin(cert_path: str | Path) -> str:
    """Chromium's ``--ignore-certificate-errors-spki-list`` value for one certificate."""
    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@contextmanager
def chromium_page(tmp_path: Path, *, trust_cert: str | Path) -> Iterator[Any]:
    """A page of Debian's headless Chromium (Playwright, no browser download), trusting
    exactly ``trust_cert`` (the BFF's development certificate, pinned by its key)."""
    from playwright.sync_api import sync_playwright

    profile = tmp_path / "chromium-profile"
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=[*CHROMIUM_FLAGS, f"--ignore-certificate-errors-spki-list={spki_pin(trust_cert)}"],
        )
        try:
            page = context.new_page()
            page.set_default_timeout(STEP_S * 1000)
            yield page
        finally:
            context.close()
