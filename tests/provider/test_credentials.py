"""The API key reaches the upstream and nothing else: not repr, not errors, not logs."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import pytest

from actors.errors import ProviderError
from actors.provider._credentials import ApiKey, load_api_key
from actors.provider._openai import open_openai_provider
from actors.provider.fake_upstream import FakeUpstream, Script

from .conftest import collect, fast_config, user_request

SECRET = "sk-test-0123456789abcdef"


class TestSources:
    """The key comes from the environment or a file, as the config names."""

    async def test_env_key_is_sent_as_bearer(
        self, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("ZL_TEST_PROVIDER_KEY", SECRET)
        async with open_openai_provider(
            fast_config(upstream.url, api_key_env="ZL_TEST_PROVIDER_KEY")
        ) as p:
            await collect(p, user_request())
        assert upstream.requests[0].headers["authorization"] == f"Bearer {SECRET}"

    async def test_file_key_is_sent_as_bearer(self, upstream: FakeUpstream, tmp_path: Path) -> None:
        key_file = tmp_path / "key"
        key_file.write_text(SECRET + "\n", encoding="utf-8")
        async with open_openai_provider(fast_config(upstream.url, api_key_file=str(key_file))) as p:
            await collect(p, user_request())
        assert upstream.requests[0].headers["authorization"] == f"Bearer {SECRET}"

    async def test_no_source_sends_no_header(self, upstream: FakeUpstream) -> None:
        async with open_openai_provider(fast_config(upstream.url)) as p:
            await collect(p, user_request())
        assert "authorization" not in upstream.requests[0].headers

    def test_missing_env_var_names_the_variable(self) -> None:
        with pytest.raises(ProviderError, match="ZL_NOT_SET") as caught:
            load_api_key(key=None, env_var="ZL_NOT_SET", file=None, environ={})
        assert caught.value.code == "provider.unavailable"

    def test_missing_file_names_the_file(self, tmp_path: Path) -> None:
        with pytest.raises(ProviderError, match="nope"):
            load_api_key(key=None, env_var=None, file=str(tmp_path / "nope"))


class TestNeverShown:
    """The key is masked wherever it could be printed."""

    def test_repr_of_config_and_key(self) -> None:
        config = fast_config("http://127.0.0.1:1/v1", api_key=ApiKey(SECRET))
        assert SECRET not in repr(config)
        assert SECRET not in str(config.api_key)
        assert SECRET not in f"{config.api_key!r}"

    def test_key_cannot_be_pickled(self) -> None:
        import pickle

        with pytest.raises(TypeError):
            pickle.dumps(ApiKey(SECRET))

    async def test_not_in_errors_or_logs(
        self, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
    ) -> None:
        # An upstream that echoes the key in its error message, as some do on a 401.
        upstream.default = Script(status=503, error_message=f"bad key {SECRET}")
        caplog.set_level(logging.DEBUG)
        config = fast_config(upstream.url, api_key=ApiKey(SECRET))
        async with open_openai_provider(config, rng=random.Random(0)) as provider:
            assert SECRET not in repr(provider)
            with pytest.raises(ProviderError) as caught:
                await collect(provider, user_request())
        assert "bad key ***" in caught.value.message
        assert SECRET not in str(caught.value)
        assert SECRET not in repr(caught.value.to_wire())
        assert caplog.records, "the retries were logged"
        assert SECRET not in caplog.text
