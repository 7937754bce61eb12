"""The processes a chaos scenario breaks: a host, a relay shard, a bridge, their keys and
certificates, a fake upstream and a fault proxy, all on loopback, and a StreamChat client.

Each scenario gets a fresh :class:`World` (``open_world``) so that one scenario's damage
never reaches the next; the world stops every process it started, and says whether any
session was left behind (a hung session is a failure whatever else happened).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import attrs
import grpc
import httpx
import trio

from actors.policy import mint_caller_token, sign_bundle, unverified_claims
from actors.provider.fake_upstream import FakeUpstream, open_fake_upstream
from actors.relay import (
    generate_signing_key,
    mint_device_token,
    mint_host_token,
    save_public_key,
)
from contracts.generated import agent_pb2
from supervisors.tls import DevCerts, generate_dev_certs

from ._fault_proxy import FaultProxy, open_fault_proxy

REPO = Path(__file__).resolve().parents[1]
TENANT = "chaos"
DEVICE = "laptop-1"
#: How long a process may take to start, and to stop when asked.
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
#: How long the host may take to forget a session once its client is gone.
SESSION_GONE_S = 10.0
#: The relay's and the host link's heartbeat: a silent peer is found within a few of these.
HEARTBEAT_S = 0.5
#: The longest a streaming session of a scenario may stay open.
STREAM_TIMEOUT_S = 120.0
STREAM_CHAT = "/zl.agent.v0.Agent/StreamChat"


@attrs.define
class TurnResult:
    """What one turn showed the client."""

    kinds: list[str]
    error_code: str | None
    delta_status: str | None
    delta_code: str | None
    elapsed_s: float
    rpc_error: str | None = None
    #: Wall-clock (Unix) times the turn's message was sent and its last event came.
    sent_at: float = 0.0
    ended_at: float = 0.0

    @property
    def ok(self) -> bool:
        return self.kinds[-1:] == ["assistant_done"] and self.delta_code is None

    @property
    def typed_code(self) -> str | None:
        """The first typed error the client saw: the tool's, else the turn's."""
        return self.delta_code or self.error_code


def chat_session(
    port: int,
    texts: Iterable[str],
    *,
    device: str,
    timeout_s: float,
    token: str,
    tenant: str = TENANT,
    between: Callable[[], None] | None = None,
    results: list[TurnResult] | None = None,
) -> list[TurnResult]:
    """One session over grpcio, a turn per text, ``between`` run between turns (blocking;
    run it in a thread; ``between`` runs after each turn, before the next text is taken).
    The session's caller token rides in ``authorization``.

    ``texts`` may be an iterator that ends when the caller wants the session to; each
    turn's result is appended to ``results`` (when given) as soon as the turn ends, so
    another thread can follow the session while it runs.
    """
    requests: queue.Queue[agent_pb2.ChatRequest | None] = queue.Queue()
    start = agent_pb2.StartSession(tenant=tenant, user="u1", device_id=device)
    requests.put(agent_pb2.ChatRequest(start_session=start))

    def iterate() -> Iterator[agent_pb2.ChatRequest]:
        while (item := requests.get()) is not None:
            yield item

    pending = iter(texts)
    results = [] if results is None else results
    result = TurnResult([], None, None, None, 0.0)
    began = time.monotonic()
    in_flight = False

    def send_next() -> bool:
        nonlocal began, in_flight
        text = next(pending, None)
        if text is None:
            return False
        result.sent_at = time.time()
        began = time.monotonic()
        in_flight = True
        requests.put(agent_pb2.ChatRequest(user_message=agent_pb2.UserMessage(text=text)))
        return True

    metadata = [("authorization", f"Bearer {token}")]
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.stream_stream(
            STREAM_CHAT,
            request_serializer=agent_pb2.ChatRequest.SerializeToString,
            response_deserializer=agent_pb2.ChatEvent.FromString,
        )
        events = call(iterate(), timeout=timeout_s, metadata=metadata)
        try:
            for event in events:
                kind = event.WhichOneof("event")
                if kind == "session_started":
                    if not send_next():
                        break
                    continue
                result.kinds.append(kind or "?")
                if kind == "tool_call_delta":
                    delta = event.tool_call_delta
                    result.delta_status = delta.status
                    if delta.HasField("error"):
                        result.delta_code = delta.error.code
                elif kind == "error":
                    result.error_code = event.error.code
                if kind in ("assistant_done", "error") and event.turn_id:
                    result.elapsed_s = time.monotonic() - began
                    result.ended_at = time.time()
                    results.append(result)
                    in_flight = False
                    result = TurnResult([], None, None, None, 0.0)
                    if between is not None:
                        between()
                    if not send_next():
                        break
                elif kind == "error":
                    break  # the session itself was refused
        except grpc.RpcError as exc:
            result.rpc_error = f"{exc.code().name}: {exc.details()}"
        finally:
            requests.put(None)
            events.cancel()
    if in_flight or result.kinds or result.rpc_error or not results:
        result.elapsed_s = time.monotonic() - began
        result.ended_at = time.time()
        results.append(result)
    return results


def chat_turn(
    port: int, text: str, *, device: str, timeout_s: float, token: str, tenant: str = TENANT
) -> TurnResult:
    """One session with one turn (see ``chat_session``)."""
    return chat_session(
        port, [text], device=device, timeout_s=timeout_s, token=token, tenant=tenant
    )[0]


def stop(process: subprocess.Popen[Any] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def spawn(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a process of ours, its output appended to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=out)


async def wait_file(path: Path, process: subprocess.Popen[Any], what: str) -> dict[str, Any]:
    ready = trio.Path(path)
    with trio.fail_after(START_TIMEOUT_S):
        # Another process writes it; polling is the simple portable wait.
        while not (await ready.exists() and (await ready.stat()).st_size):
            if process.poll() is not None:
                raise RuntimeError(f"{what} exited with {process.returncode} before serving")
            await trio.sleep(0.05)
    data: dict[str, Any] = json.loads(await ready.read_text())
    return data


@attrs.frozen
class Signed:
    """What a scenario needs to know of a bundle it published."""

    revision: int
    expires_at: int


@attrs.define
class World:
    """One scenario's processes (see the module docstring)."""

    scratch: Path
    certs: DevCerts
    upstream: FakeUpstream
    proxy: FaultProxy | None = None
    host: subprocess.Popen[bytes] | None = None
    #: ``zl policy serve`` over the policy folder, when a scenario asks for one.
    control_plane_process: subprocess.Popen[bytes] | None = None
    control_plane_port: int = 0
    relay: subprocess.Popen[bytes] | None = None
    bridge: subprocess.Popen[bytes] | None = None
    grpc_port: int = 0
    debug_url: str = ""
    relay_config: Path | None = None
    relay_host_port: int = 0
    relay_device_port: int = 0
    signing: Any = None
    #: Signs the tenant's policy bundles (the control plane) and the callers' tokens.
    control_plane: Any = attrs.field(factory=generate_signing_key)
    caller_issuer: Any = attrs.field(factory=generate_signing_key)
    revision: int = 0

    @property
    def policy_dir(self) -> Path:
        return self.scratch / "policy"

    def write_policy(self, *, ttl_s: float = 600.0, issued_at: float | None = None) -> Signed:
        """Publish a permissive bundle for the tenant, with a higher revision than the last
        (replacing the file at once, as a control plane publishes). ``issued_at`` in the
        past signs one that has already expired."""
        self.revision += 1
        allow = {"id": "allow", "tool": "*", "versions": "*", "effect": "allow", "devices": ["*"]}
        document = {
            "iss": "chaos-control-plane",
            "aud": TENANT,
            "policy_id": "chaos",
            "revision": int(time.time()) * 100 + self.revision,
            "rules": [allow],
        }
        self.policy_dir.mkdir(exist_ok=True)
        jws = sign_bundle(document, self.control_plane, ttl_s=ttl_s, now=issued_at)
        staged = self.policy_dir / f".{TENANT}.jws.new"
        staged.write_text(jws)
        os.replace(staged, self.policy_dir / f"{TENANT}.jws")
        claims = unverified_claims(jws)
        return Signed(revision=int(claims["revision"]), expires_at=int(claims["exp"]))

    async def start_control_plane(self) -> None:
        """``zl policy serve`` over the policy folder, on HTTPS with the world's
        certificates; the same port across restarts (the host keeps asking there)."""
        self.control_plane_port = self.control_plane_port or free_port()
        ready = self.scratch / "control-plane.ready"
        await trio.Path(ready).unlink(missing_ok=True)
        argv = [sys.executable, "-m", "supervisors", "policy", "serve", str(self.policy_dir)]
        argv += ["--port", str(self.control_plane_port), "--ready-file", str(ready)]
        argv += ["--cert", str(self.certs.server_cert), "--tls-key", str(self.certs.server_key)]
        self.policy_dir.mkdir(exist_ok=True)
        self.control_plane_process = spawn(argv, self.scratch / "control-plane.log")
        with trio.fail_after(START_TIMEOUT_S):
            while not await trio.Path(ready).exists():
                if self.control_plane_process.poll() is not None:
                    raise RuntimeError("the control plane exited before serving")
                await trio.sleep(0.05)

    def control_plane_settings(self) -> dict[str, str]:
        """Host settings for bundles pulled from the control plane over HTTPS."""
        url = f"https://127.0.0.1:{self.control_plane_port}/v1/tenants/{{tenant}}/bundle"
        return {
            "ZL_POLICY__SOURCE": url,
            "ZL_POLICY__CA": str(self.certs.ca_cert),
            "ZL_POLICY__FETCH_TIMEOUT_S": "2",
        }

    @property
    def token(self) -> str:
        """A caller token for the tenant's user, any device."""
        return mint_caller_token(
            self.caller_issuer, tenant=TENANT, user="u1", devices=["*"], ttl_s=3600
        )

    def key_file(self, key: Any, name: str) -> Path:
        path = self.scratch / name
        if not path.exists():
            save_public_key(key.public_key(), path)
        return path

    @property
    def audit(self) -> Path:
        return self.scratch / "audit.jsonl"

    # --- processes ---------------------------------------------------------------------

    async def start_host(self, **settings: str) -> None:
        ready = self.scratch / "host.ready"
        await trio.Path(ready).unlink(missing_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZL_")}
        if not (self.policy_dir / f"{TENANT}.jws").exists():
            self.write_policy()
        control_plane = self.key_file(self.control_plane, "control-plane.pub")
        callers = self.key_file(self.caller_issuer, "caller.pub")
        # The policy folder by default (a scenario may name a control plane instead).
        env["ZL_POLICY__SOURCE"] = f"file:{self.policy_dir}/{{tenant}}.jws"
        env.update(
            ZL_AUTH__TRUSTED_KEYS=json.dumps([str(callers)]),
            ZL_POLICY__TRUSTED_KEYS=json.dumps([str(control_plane)]),
            ZL_POLICY__STATE_DIR=str(self.scratch / "policy-state"),
            ZL_POLICY__CLOCK_SKEW_S="0",
            ZL_POLICY__REFRESH_S="1",
            ZL_POLICY__RETRY_INITIAL_S="0.2",
            ZL_POLICY__RETRY_MAX_S="1",
            ZL_GRPC__PORT="0",
            ZL_GRPC__INSECURE_DEV_PLAINTEXT="true",
            ZL_DEBUG__PORT="0",
            ZL_DEBUG__FAULTS="true",
            ZL_AUDIT__PATH=str(self.audit),
            ZL_AUDIT__FSYNC_EVERY_RECORDS="1",
            ZL_PROVIDER__MOCK__FIRST_TOKEN_DELAY_MS="5",
            ZL_PROVIDER__MOCK__TOKENS_PER_S="500",
            ZL_PROVIDER__MOCK__ANSWER_TOKENS="5",
        )
        env.update(settings)
        argv = [sys.executable, "-m", "supervisors", "host", "--ready-file", str(ready)]
        self.host = spawn([*argv, "--log-level", "WARNING"], self.scratch / "host.log", env)
        addresses = await wait_file(ready, self.host, "the host")
        self.grpc_port = int(addresses["grpc_port"])
        self.debug_url = str(addresses["debug_url"])

    def stdio_settings(self) -> dict[str, str]:
        command = [sys.executable, "-m", "bench._chaos_mcp"]
        return {"ZL_TOOLS__MODE": "stdio", "ZL_TOOLS__COMMAND": json.dumps(command)}

    async def start_relay(self) -> None:
        """A relay shard (its own process, TLS); its ports are kept across restarts."""
        if self.relay_config is None:
            self.signing = generate_signing_key()
            save_public_key(self.signing.public_key(), self.scratch / "relay.pub")
            self.relay_device_port = free_port()
            # Kept if set already: a fault proxy in front of the relay was pointed at it.
            self.relay_host_port = self.relay_host_port or free_port()
            self.relay_config = self.scratch / "relay.toml"
            self.relay_config.write_text(
                f"""shard_id = "relay-1"
public_keys = [{json.dumps(str(self.scratch / "relay.pub"))}]
[[shards]]
shard_id = "relay-1"
url = "wss://127.0.0.1:{self.relay_device_port}/v1/device"
host_url = "wss://127.0.0.1:{self.relay_host_port}/v1/host"
[devices]
port = {self.relay_device_port}
[hosts]
port = {self.relay_host_port}
[tls]
cert = {json.dumps(str(self.certs.server_cert))}
key = {json.dumps(str(self.certs.server_key))}
[limits]
heartbeat_s = {HEARTBEAT_S}
"""
            )
        ready = self.scratch / "relay.ready"
        await trio.Path(ready).unlink(missing_ok=True)
        argv = [sys.executable, "-m", "supervisors", "relay", "--config", str(self.relay_config)]
        argv += ["--ready-file", str(ready), "--log-level", "WARNING"]
        self.relay = spawn(argv, self.scratch / "relay.log")
        await wait_file(ready, self.relay, "the relay")

    def start_bridge(self) -> None:
        token = self.scratch / "device.jwt"
        token.write_text(mint_device_token(self.signing, tenant=TENANT, device_id=DEVICE, ttl=3600))
        argv = [sys.executable, "-m", "supervisors.bridge", "--device-id", DEVICE, "--quiet"]
        argv += ["--relay", f"wss://127.0.0.1:{self.relay_device_port}/v1/device"]
        argv += ["--token-file", str(token), "--ca", str(self.certs.ca_cert)]
        argv += ["--reconnect-initial-s", "0.1", "--reconnect-max-s", "0.5"]
        argv += ["--policy-key", str(self.key_file(self.control_plane, "control-plane.pub"))]
        argv += ["--", sys.executable, "-m", "bench._chaos_mcp"]
        self.bridge = spawn(argv, self.scratch / "bridge.log")

    def relay_settings(self) -> dict[str, str]:
        """Host settings for tools through the relay (through the fault proxy if there is one)."""
        token = self.scratch / "host.jwt"
        token.write_text(mint_host_token(self.signing, tenants=[TENANT], host_id="h1", ttl=3600))
        port = self.proxy.port if self.proxy is not None else self.relay_host_port
        return {
            "ZL_TOOLS__MODE": "relay",
            "ZL_TOOLS__RELAY_SHARDS": f"relay-1=wss://127.0.0.1:{port}/v1/host",
            "ZL_TOOLS__RELAY_TOKEN_FILE": str(token),
            "ZL_TOOLS__RELAY_CA": str(self.certs.ca_cert),
            "ZL_TOOLS__RELAY_HEARTBEAT_S": str(HEARTBEAT_S),
            "ZL_TOOLS__TIMEOUT_MS": "5000",
        }

    def kill(self, process: subprocess.Popen[bytes] | None) -> None:
        """``kill -9``: no chance to say goodbye."""
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def limit_host_file_size(self, size: int | None) -> None:
        """Make the host's file writes fail past ``size`` bytes (EFBIG, as a full disk
        fails them); None lifts it."""
        assert self.host is not None
        soft = resource.RLIM_INFINITY if size is None else size
        resource.prlimit(self.host.pid, resource.RLIMIT_FSIZE, (soft, resource.RLIM_INFINITY))

    # --- what the host shows -----------------------------------------------------------

    async def turn(self, text: str, *, device: str = DEVICE, timeout_s: float = 30.0) -> TurnResult:
        token = self.token
        return await trio.to_thread.run_sync(
            lambda: chat_turn(self.grpc_port, text, device=device, timeout_s=timeout_s, token=token)
        )

    async def session(
        self,
        texts: list[str],
        *,
        between: Callable[[], None] | None = None,
        device: str = DEVICE,
        timeout_s: float = 60.0,
    ) -> list[TurnResult]:
        token = self.token
        return await trio.to_thread.run_sync(
            lambda: chat_session(
                self.grpc_port,
                texts,
                device=device,
                timeout_s=timeout_s,
                token=token,
                between=between,
            )
        )

    async def stream(
        self, *, text: str, stop: threading.Event, results: list[TurnResult], pause_s: float
    ) -> None:
        """One session asking ``text`` turn after turn (``pause_s`` apart) until ``stop``;
        each turn's result lands in ``results`` as it ends."""
        token = self.token

        def texts() -> Iterator[str]:
            while not stop.is_set():
                yield text

        await trio.to_thread.run_sync(
            lambda: chat_session(
                self.grpc_port,
                texts(),
                device=DEVICE,
                timeout_s=STREAM_TIMEOUT_S,
                token=token,
                between=lambda: time.sleep(pause_s),
                results=results,
            )
        )

    def host_log(self) -> str:
        path = self.scratch / "host.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def tree(self) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(f"{self.debug_url}/debug/actors?format=json")
            response.raise_for_status()
            tree: dict[str, Any] = response.json()
            return tree

    async def inject(self, action: str, path: str) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(
                f"{self.debug_url}/debug/faults", params={"action": action, "path": path}
            )
            response.raise_for_status()

    async def find_actor(self, prefix: str, *, timeout_s: float = 10.0) -> str:
        """The path of the first live actor whose name starts with ``prefix``."""
        with trio.fail_after(timeout_s):
            while True:
                stack = [await self.tree()]
                while stack:
                    node = stack.pop()
                    if node["name"].startswith(prefix):
                        return str(node["path"])
                    stack.extend(node["children"])
                await trio.sleep(0.05)

    async def hung_sessions(self) -> int:
        """Sessions still alive once every client is gone (waits up to SESSION_GONE_S)."""
        if self.host is None or self.host.poll() is not None:
            return 0
        with trio.move_on_after(SESSION_GONE_S):
            while True:
                count = await self._sessions()
                if count == 0:
                    return 0
                await trio.sleep(0.1)
        return await self._sessions()

    async def _sessions(self) -> int:
        tree = await self.tree()
        sessions = next(c for c in tree["children"] if c["name"] == "sessions")
        return len(sessions["children"])

    def receipts(self) -> list[dict[str, Any]]:
        if not self.audit.exists():
            return []
        found = []
        for line in self.audit.read_bytes().splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if record.get("kind") == "tool.receipt":
                    found.append(record["payload"])
        return found

    async def until_ok(self, text: str, *, timeout_s: float, device: str = DEVICE) -> float | None:
        """Seconds until a turn succeeds (one try at a time), or None within ``timeout_s``."""
        began = trio.current_time()
        with trio.move_on_after(timeout_s):
            while True:
                result = await self.turn(text, device=device, timeout_s=max(1.0, timeout_s))
                if result.ok:
                    return round(trio.current_time() - began, 2)
                await trio.sleep(0.1)
        return None


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def open_world(scratch: Path, *, proxy_to_relay: bool = False) -> AsyncIterator[World]:
    """A fresh world in ``scratch``; every process it started is stopped on the way out."""
    certs = generate_dev_certs(scratch / "certs")
    async with open_fake_upstream() as upstream:
        world = World(scratch=scratch, certs=certs, upstream=upstream)
        try:
            if proxy_to_relay:
                world.relay_host_port = free_port()
                async with open_fault_proxy(("127.0.0.1", world.relay_host_port)) as proxy:
                    world.proxy = proxy
                    yield world
            else:
                yield world
        finally:
            for process in (world.bridge, world.host, world.relay, world.control_plane_process):
                stop(process)
