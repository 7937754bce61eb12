"""Tenant settings from a bundle's redaction section (JSON fixtures that follow its schema)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from actors.redaction import (
    BUILTIN_CLASSES,
    RedactionSettings,
    RedactionSettingsError,
    Redactor,
    TenantRedaction,
)
from actors.redaction._scan import MAX_TENANT_MATCHES
from supervisors._config import ConfigError
from supervisors.host import RedactionSection
from supervisors.host._host import check_config, redaction_settings
from tests.host.conftest import host_config

FIXTURES = Path(__file__).with_name("fixtures")


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


class TestFromBundle:
    """Valid sections become settings; each kind of invalid one is refused in one line."""

    def test_an_empty_section_is_the_default(self) -> None:
        settings = RedactionSettings.from_bundle(fixture("empty.json"))
        assert settings.classes == frozenset(BUILTIN_CLASSES)
        assert settings.patterns == ()
        assert settings.pseudonyms is False

    def test_classes_patterns_and_pseudonyms(self) -> None:
        settings = RedactionSettings.from_bundle(fixture("full.json"))
        assert "ipv4" not in settings.classes
        assert "ipv6" not in settings.classes
        assert {"email", "phone", "card"} <= settings.classes
        assert [p.name for p in settings.patterns] == ["employee_id", "ticket_secret"]
        assert settings.pseudonyms
        redactor = Redactor(settings)
        text = "EMP-004211 from 10.1.2.3 says ticket-secret: k9x2m4p7q1 to eve@corp.io"
        out = redactor.redact(text).text
        assert (
            out
            == "[employee_id_1] from 10.1.2.3 says ticket-secret: [ticket_secret_1] to [email_1]"
        )

    @pytest.mark.parametrize(
        ("name", "message"),
        [
            ("backreference.json", r"patterns\[0\] \(doubled\): RE2 cannot compile .*escape"),
            ("lookbehind.json", r"patterns\[0\] \(after_key\): RE2 cannot compile .*\(\?<"),
            ("too_big.json", r"patterns\[0\] \(huge\): RE2 cannot compile .*repetition"),
            ("empty_match.json", r"patterns\[0\] \(anything\): .*matches the empty string"),
            ("unknown_class.json", r"redaction.classes: unknown class 'emial'"),
            ("extra_key.json", r"redaction: Additional properties .*'mode'"),
            ("builtin_name.json", r"patterns\[0\]: the name 'email' is a built-in class"),
            ("duplicate_name.json", r"patterns\[1\]: the name 'emp' is used twice"),
            ("bad_name.json", r"redaction.patterns\[0\].name: 'Employee ID' does not match"),
        ],
    )
    def test_refused(self, name: str, message: str) -> None:
        with pytest.raises(RedactionSettingsError) as caught:
            RedactionSettings.from_bundle(fixture(name))
        text = str(caught.value)
        assert "\n" not in text
        assert re.search(message, text), text

    def test_catastrophic_pattern_is_linear(self) -> None:
        """``(a+)+$`` compiles (RE2 takes it) and runs in linear time on the classic attack."""
        settings = RedactionSettings.from_bundle(fixture("catastrophic.json"))
        redactor = Redactor(settings)
        assert redactor.find("a" * 1_000_000 + "!") == []
        assert [f.kind for f in redactor.find("x\naaaa")] == ["backtracker"]

    def test_a_pattern_that_matches_everywhere_is_bounded(self) -> None:
        """Past MAX_TENANT_MATCHES the rest of the text is removed whole: bounded, closed."""
        settings = RedactionSettings.from_bundle({"patterns": [{"name": "any", "pattern": "."}]})
        found = Redactor(settings).find("x" * 50_000)
        assert found[-1].end == 50_000
        assert len(found) <= MAX_TENANT_MATCHES + 1
        assert sum(f.end - f.start for f in found) == 50_000

    def test_a_value_group_limits_what_is_removed(self) -> None:
        settings = RedactionSettings.from_bundle(
            {"patterns": [{"name": "pin", "pattern": r"PIN:\s*(?P<value>\d{4,6})"}]}
        )
        assert Redactor(settings).redact("card PIN: 4821 ok").text == "card PIN: [REDACTED:pin] ok"


class TestTenantRedaction:
    """The host's one place for per-tenant settings; each session gets its own redactor."""

    def test_default_until_a_bundle_arrives(self) -> None:
        tenants = TenantRedaction()
        assert tenants.settings_for("acme") is RedactionSettings.default()
        settings = tenants.update_from_bundle("acme", fixture("full.json"))
        assert tenants.settings_for("acme") is settings
        assert tenants.settings_for("other") is RedactionSettings.default()
        tenants.update_from_bundle("acme", None)
        assert tenants.settings_for("acme") is RedactionSettings.default()

    def test_a_bad_bundle_keeps_what_the_tenant_had(self) -> None:
        tenants = TenantRedaction()
        good = tenants.update_from_bundle("acme", fixture("full.json"))
        with pytest.raises(RedactionSettingsError):
            tenants.update_from_bundle("acme", fixture("backreference.json"))
        assert tenants.settings_for("acme") is good

    def test_pseudonyms_do_not_cross_sessions(self) -> None:
        tenants = TenantRedaction()
        tenants.update_from_bundle("acme", {"pseudonyms": True})
        one, two = tenants.session_redactor("acme"), tenants.session_redactor("acme")
        assert one.redact("b@x.io a@x.io").text == "[email_1] [email_2]"
        assert two.redact("a@x.io").text == "[email_1]"
        assert one.redact("a@x.io").text == "[email_2]"


class TestHostSettingsFile:
    """``redaction.settings_file``: the default of tenants without a section of their own."""

    def test_a_valid_file(self, tmp_path: Path) -> None:
        config = host_config(
            tmp_path,
            tls=False,
            redaction=RedactionSection(settings_file=str(FIXTURES / "full.json")),
        )
        settings = redaction_settings(config)
        assert [p.name for p in settings.patterns] == ["employee_id", "ticket_secret"]

    @pytest.mark.parametrize(
        ("name", "message"),
        [("missing.json", "No such file"), ("backreference.json", "RE2 cannot compile")],
    )
    def test_a_bad_file_stops_the_host_with_one_line(
        self, tmp_path: Path, name: str, message: str
    ) -> None:
        config = host_config(
            tmp_path, tls=False, redaction=RedactionSection(settings_file=str(FIXTURES / name))
        )
        with pytest.raises(ConfigError) as caught:
            check_config(config)
        assert str(caught.value).startswith("redaction.settings_file: ")
        assert message in str(caught.value)
