"""Who is calling the host: caller tokens on ``StreamChat``, checked before a session starts.

Every call must carry ``authorization: Bearer <caller token>`` (``actors.policy``'s caller
tokens, signed by a key in ``auth.trusted_keys``). A call without one, or with one that does
not verify, gets an ``error`` event ``unauthenticated`` and ends with grpc-status 16; a
``start_session`` for a tenant, user or device the token does not cover gets ``forbidden``
and grpc-status 7. With ``auth.insecure_dev_no_auth`` a call that sends no token at all is
let through as it was before callers were checked (development only, logged once loudly);
a token that is sent is verified all the same.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import attrs
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from actors.policy import (
    CallerClaims,
    CallerUnauthenticated,
    authorize_session,
    bearer_token,
    keys_by_id,
    verify_caller_token,
)
from actors.relay import KeyFileError, load_public_key
from actors.session.messages import StartSession
from supervisors._config import ConfigError

from ._config import AuthSection

log = logging.getLogger("zl.host.auth")


@attrs.frozen(kw_only=True)
class CallerAuth:
    """The host's caller check, built from ``[auth]``."""

    keys: dict[str, Ed25519PublicKey]
    audience: str
    issuers: tuple[str, ...]
    max_ttl_s: float
    clock_skew_s: float
    allow_anonymous: bool
    now: Callable[[], float] = time.time

    @classmethod
    def from_config(cls, section: AuthSection) -> CallerAuth:
        """Load the trusted keys.

        Raises:
            ConfigError: no key and no development flag, or a key file that is not an
                Ed25519 public key.
        """
        if not section.trusted_keys and not section.insecure_dev_no_auth:
            raise ConfigError(
                "auth: the host must verify who calls it; set auth.trusted_keys to the "
                "public key(s) of the caller-token issuer (zl token keygen), or "
                "auth.insecure_dev_no_auth = true (development only)"
            )
        keys = []
        for index, path in enumerate(section.trusted_keys):
            try:
                keys.append(load_public_key(path))
            except KeyFileError as exc:
                raise ConfigError(f"auth.trusted_keys[{index}]: {exc}") from None
        if section.insecure_dev_no_auth:
            log.warning(
                "NO CALLER AUTHENTICATION: auth.insecure_dev_no_auth is set, so a StreamChat "
                "without a caller token may name any tenant, user and device. Development only."
            )
        return cls(
            keys=keys_by_id(tuple(keys)),
            audience=section.audience,
            issuers=tuple(section.issuers),
            max_ttl_s=section.max_ttl_s,
            clock_skew_s=section.clock_skew_s,
            allow_anonymous=section.insecure_dev_no_auth,
        )

    def authenticate(self, metadata: Sequence[tuple[str, str | bytes]]) -> CallerClaims | None:
        """The verified caller of a call (None: anonymous, allowed in development only).

        Raises:
            CallerUnauthenticated: no token (unless anonymous calls are allowed), or a
                token that does not verify.
        """
        token = bearer_token(metadata)
        if token is None and self.allow_anonymous:
            return None
        return verify_caller_token(
            token,
            self.keys,
            audience=self.audience,
            max_ttl_s=self.max_ttl_s,
            clock_skew_s=self.clock_skew_s,
            issuers=self.issuers,
            now=self.now(),
        )

    def authorize(
        self, caller: CallerClaims | None, start: StartSession, default_device: str
    ) -> StartSession:
        """``start`` held to the caller's token; the user filled in from it when empty.

        Raises:
            CallerForbidden: the token does not cover the tenant, user or device.
            CallerUnauthenticated: the token expired since the call began.
        """
        if caller is None:
            return start
        if caller.expires_at + self.clock_skew_s <= self.now():
            raise CallerUnauthenticated("caller token has expired")
        user = authorize_session(
            caller,
            tenant=start.tenant,
            user=start.user,
            device_id=start.device_id or default_device,
        )
        return attrs.evolve(start, user=user)
