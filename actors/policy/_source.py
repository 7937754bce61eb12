"""Where the policy cache gets a tenant's bundle: an HTTPS control plane, or a file (dev).

``source`` names both with a ``{tenant}`` placeholder: ``https://cp.example/v1/tenants/
{tenant}/bundle`` or ``file:/etc/zl/policy/{tenant}.jws``. The tenant is a checked id
before it is put in. An HTTPS fetch sends ``If-None-Match`` with the last ETag and reads
at most ``MAX_BUNDLE_CHARS`` + 1 bytes of the body; a file's ETag is its content's digest.

``httpx`` is imported when an HTTPS source is made, not with this module: the device
bridge imports the policy package for its pure checks and must not load the host's HTTP
stack (``tests/bridge/test_import_graph.py``).
"""

from __future__ import annotations

import hashlib
import ssl
from typing import TYPE_CHECKING, Final, Literal, Protocol

import attrs
import trio

from ._bundle import MAX_BUNDLE_CHARS
from ._ids import is_id

if TYPE_CHECKING:
    import httpx

PLACEHOLDER: Final = "{tenant}"
FILE_SCHEME: Final = "file:"


class SourceError(Exception):
    """The source could not be asked, or answered with an error (the message says what)."""


@attrs.frozen(kw_only=True)
class Fetched:
    """What a source answered: a bundle, the same as before, or none for the tenant."""

    status: Literal["bundle", "not_modified", "missing"]
    text: str = ""
    etag: str | None = None


class BundleSource(Protocol):
    """A place to get tenants' bundles from."""

    description: str

    async def fetch(self, tenant: str, etag: str | None) -> Fetched:
        """The tenant's current bundle (or ``not_modified`` when ``etag`` still holds).

        Raises:
            SourceError: unreachable, an error status, or a body over the size limit.
        """
        ...

    async def aclose(self) -> None: ...


def _url(template: str, tenant: str) -> str:
    if not is_id(tenant):
        raise SourceError(f"tenant {tenant[:40]!r} is not a valid id")
    return template.replace(PLACEHOLDER, tenant)


def check_source(source: str) -> None:
    """Refuse a source this module cannot use.

    Raises:
        ValueError: naming what is wrong.
    """
    if PLACEHOLDER not in source:
        raise ValueError(f"the policy source must contain {PLACEHOLDER} (one bundle per tenant)")
    if not source.startswith(("https://", "http://", FILE_SCHEME)):
        raise ValueError("the policy source is https://... or file:...")


class FileSource:
    """Bundles read from files (development): ``file:DIR/{tenant}.jws``."""

    def __init__(self, template: str) -> None:
        self.template = template.removeprefix(FILE_SCHEME)
        self.description = template

    async def fetch(self, tenant: str, etag: str | None) -> Fetched:
        path = trio.Path(_url(self.template, tenant))
        try:
            data = await path.read_bytes()
        except FileNotFoundError:
            return Fetched(status="missing")
        except OSError as exc:
            raise SourceError(f"{path}: {exc.strerror}") from None
        if len(data) > MAX_BUNDLE_CHARS + 2:
            raise SourceError(f"{path} is larger than a bundle may be ({MAX_BUNDLE_CHARS})")
        tag = hashlib.sha256(data).hexdigest()
        if tag == etag:
            return Fetched(status="not_modified", etag=tag)
        return Fetched(status="bundle", text=data.decode("utf-8", "replace").strip(), etag=tag)

    async def aclose(self) -> None:
        return None


class HttpsSource:
    """Bundles pulled from a control plane over HTTPS, with ETags.

    Args:
        template: the URL with ``{tenant}``.
        ssl_context: verifies the control plane (the system's CAs when None).
        timeout_s: connect, read and the whole request, each.
    """

    def __init__(
        self, template: str, *, ssl_context: ssl.SSLContext | None, timeout_s: float
    ) -> None:
        import httpx  # here, not at the top: see the module docstring

        self.template = template
        self.description = template
        self.timeout_s = timeout_s
        verify: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self.client: httpx.AsyncClient = httpx.AsyncClient(
            verify=verify,
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=4),
            follow_redirects=False,
            trust_env=False,
        )
        self._errors = (httpx.HTTPError, ssl.SSLError, OSError)

    async def fetch(self, tenant: str, etag: str | None) -> Fetched:
        url = _url(self.template, tenant)
        headers = {"accept": "application/jose"}
        if etag is not None:
            headers["if-none-match"] = f'"{etag}"'
        try:
            with trio.fail_after(self.timeout_s):
                async with self.client.stream("GET", url, headers=headers) as response:
                    status = response.status_code
                    if status == 304:
                        return Fetched(status="not_modified", etag=etag)
                    if status == 404:
                        return Fetched(status="missing")
                    if status != 200:
                        raise SourceError(f"{url} answered {status}")
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > MAX_BUNDLE_CHARS + 2:
                            raise SourceError(f"{url}: the bundle is over {MAX_BUNDLE_CHARS} bytes")
                    tag = response.headers.get("etag", "").strip().removeprefix("W/").strip('"')
        except trio.TooSlowError:
            raise SourceError(f"{url} did not answer within {self.timeout_s:g} s") from None
        except self._errors as exc:
            raise SourceError(f"{url}: {type(exc).__name__}: {exc}"[:300]) from None
        return Fetched(
            status="bundle", text=bytes(body).decode("utf-8", "replace").strip(), etag=tag or None
        )

    async def aclose(self) -> None:
        await self.client.aclose()


def open_source(
    source: str, *, ssl_context: ssl.SSLContext | None, timeout_s: float
) -> BundleSource:
    """The source ``source`` names.

    Raises:
        ValueError: see :func:`check_source`.
    """
    check_source(source)
    if source.startswith(FILE_SCHEME):
        return FileSource(source)
    return HttpsSource(source, ssl_context=ssl_context, timeout_s=timeout_s)
