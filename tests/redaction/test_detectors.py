"""The detectors one by one: what each takes, what it leaves, and the scan's mechanics."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.redaction import BUILTIN_CLASSES, Pseudonyms, Redactor
from actors.redaction import _checks as checks
from actors.redaction._detectors import FAMILIES
from actors.redaction._scan import compiled_family, public_searcher, searcher

REDACTOR = Redactor()


def kinds(text: str) -> list[tuple[str, str]]:
    return [(f.kind, text[f.start : f.end]) for f in REDACTOR.find(text)]


class TestPositives:
    """Each class, in the shapes it takes in real text."""

    @pytest.mark.parametrize(
        ("text", "kind", "value"),
        [
            (
                "write to Zoë.Brandt+news@mail.uni-heidelberg.de!",
                "email",
                "Zoë.Brandt+news@mail.uni-heidelberg.de",
            ),
            ("call (415) 555-0132 today", "phone", "(415) 555-0132"),
            ("tel +44 20 7946 0958.", "phone", "+44 20 7946 0958"),
            ("Ruf 030 12345678 an", "phone", "030 12345678"),
            ("携帯 090-1234-5678 です", "phone", "090-1234-5678"),
            ("card 4111-1111-1111-1111 exp", "card", "4111-1111-1111-1111"),
            ("amex 3782 822463 10005", "card", "3782 822463 10005"),
            ("IBAN GB82 WEST 1234 5698 7654 32 EUR", "iban", "GB82 WEST 1234 5698 7654 32"),
            ("ssn: 219-09-9999", "ssn", "219-09-9999"),
            ("SSN 219099999", "ssn", "219099999"),
            ("from 81.2.69.160:443", "ipv4", "81.2.69.160"),
            ("peer [2a00:1450:4001:82b::200e]:443", "ipv6", "2a00:1450:4001:82b::200e"),
            ("id AKIAQ3EGRIOSFODN7XYZ", "aws_key_id", "AKIAQ3EGRIOSFODN7XYZ"),
            (
                "token=ghp_R8kT2mVq9XwL4pZs7NbC1dFh6JyG3aEo5uIt",
                "github_token",
                "ghp_R8kT2mVq9XwL4pZs7NbC1dFh6JyG3aEo5uIt",
            ),
            (
                "xoxb-2048934187-5203947182736-KpLm9QzRt3VwXy7NbCdEfGhJ",
                "slack_token",
                "xoxb-2048934187-5203947182736-KpLm9QzRt3VwXy7NbCdEfGhJ",
            ),
            ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "stripe_key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
            (
                "key=AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY&x=1",
                "google_key",
                "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
            ),
            (
                "OPENAI sk-proj-Qm3x9ZrT2kLpWv8Yb4Nc6Hd1Js7Gf5Ae0RuTi",
                "openai_key",
                "sk-proj-Qm3x9ZrT2kLpWv8Yb4Nc6Hd1Js7Gf5Ae0RuTi",
            ),
            (
                "curl -H 'Authorization: Bearer abcDEF123456ghiJKL789' x",
                "bearer",
                "abcDEF123456ghiJKL789",
            ),
            ("postgres://app:S3cr3t!pw@db:5432/x", "url_credentials", "S3cr3t!pw"),
            ("DB_PASSWORD=hunter2", "password", "hunter2"),
            ("POSTGRES_PASSWORD=Tr0ub4dor&3\nNEXT=1", "password", "Tr0ub4dor&3"),
            ("GET /login?user=ana&password=Tr0ub4dor&next=/", "password", "Tr0ub4dor"),
            ("password: SummerTime2024", "password", "SummerTime2024"),
            ('{"client_secret": "6f1c2b7e9a"}', "secret", "6f1c2b7e9a"),
            ("signing_key: q8Zr2LmWp8KtV3nBs6YcHx4D", "secret", "q8Zr2LmWp8KtV3nBs6YcHx4D"),
            ("salt = 'q8Zr2LmWp8KtV3nBs6YcHx4D'", "high_entropy", "q8Zr2LmWp8KtV3nBs6YcHx4D"),
        ],
    )
    def test_found(self, text: str, kind: str, value: str) -> None:
        assert (kind, value) in kinds(text)

    def test_private_key_block_whole(self) -> None:
        key = (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nQUFBQUFBQUFB\n"
            "-----END OPENSSH PRIVATE KEY-----"
        )
        text = f"log line\n{key}\nnext line"
        assert kinds(text) == [("private_key", key)]

    def test_private_key_cut_before_its_end_line(self) -> None:
        text = (
            "key: -----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA0Z3VS5JJ\n"
            "cds3xfn/ygWyF8Pbn\n[truncated]"
        )
        ((kind, value),) = kinds(text)
        assert kind == "private_key"
        assert value.endswith("ygWyF8Pbn")

    def test_private_key_in_a_json_string(self) -> None:
        key = (
            "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n"
            "-----END PRIVATE KEY-----\n"
        )
        text = json.dumps({"private_key": key, "client_email": "x"})
        found = kinds(text)
        assert found[0][0] in ("private_key", "secret")
        assert "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" in found[0][1]
        assert "MIIEvQ" not in REDACTOR.redact(text).text

    def test_aws_secret_split_by_json_slash_escapes(self) -> None:
        secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKY"
        text = '{"aws_secret": "' + secret.replace("/", "\\/") + '"}'
        redacted = REDACTOR.redact(text).text
        for piece in secret.split("/"):
            assert piece not in redacted

    def test_password_in_prose(self) -> None:
        assert ("password", "Xy9!rT4#q") in kinds("the password for the vpn is Xy9!rT4#q, ok?")


class TestNegatives:
    """Look-alikes that stay."""

    @pytest.mark.parametrize(
        "text",
        [
            "commit 9fceb02d0ae598e95dc970b74767f19372d61af8 merged",
            "request 3f2a9c1e-5d4b-4e8f-9a7c-1b2d3e4f5a6b failed",
            "args_digest=sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "upgraded to 2.14.0 then v10.4.12",
            "at 2024-01-15T10:23:45.123Z and 1705314225123",
            "order 112-4567890-1234567 and INV-00012345",
            "number 4111 1111 1111 1112 fails Luhn",
            "IBAN DE89 3704 0044 0532 0130 01 has a bad check",
            "listen on 127.0.0.1:8080, [::1]:8080, 192.0.2.10 and 2001:db8::1",
            "allow 10.0.0.0/8 netmask 255.255.255.0",
            "mac 02:42:ac:11:00:02 oid 1.3.6.1.4.1.2021.10",
            "icon@2x.png and git@github.com:acme/api.git and npm i @acme/ui@1.2.3",
            "password=${DB_PASSWORD} token: <your-token> api_key=os.environ['KEY']",
            "def login(password: str) -> None: check(password=password)",
            "max_tokens=4096 token_count: 120 password_min_length: 12",
            "- key: kubernetes.io/hostname",
            "the sk-learn docs",
        ],
    )
    def test_left_alone(self, text: str) -> None:
        assert kinds(text) == []


class TestScan:
    """Offsets, overlaps, odd input, and the two ways of asking RE2 agree."""

    def test_offsets_are_characters(self) -> None:
        text = "🎉 naïve café — mail ana@ex.io ✓"
        (found,) = REDACTOR.find(text)
        assert text[found.start : found.end] == "ana@ex.io"

    def test_lone_surrogates(self) -> None:
        text = "bad \udcff bytes then ana@ex.io"
        (found,) = REDACTOR.find(text)
        assert text[found.start : found.end] == "ana@ex.io"

    def test_overlaps_merge_and_the_specific_class_names_them(self) -> None:
        text = "api_key=sk_live_4eC39HqLyjWDarjtT1zdp7dc"
        assert kinds(text) == [("stripe_key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc")]

    def test_pseudonym_table_is_bounded(self) -> None:
        table = Pseudonyms(capacity=2)
        names = [table.name("email", f"u{i}@x.io") for i in range(4)]
        assert names == ["[email_1]", "[email_2]", "[REDACTED:email]", "[REDACTED:email]"]
        assert table.name("email", "u0@x.io") == "[email_1]"
        assert len(table) == 2

    def test_redact_json_stays_json(self) -> None:
        text = json.dumps({"content": 'token ghp_R8kT2mVq9XwL4pZs7NbC1dFh6JyG3aEo5uIt\n"x"'})
        out = REDACTOR.redact_json(text).text
        assert json.loads(out)["content"].startswith("token [REDACTED:github_token]")

    @settings(max_examples=200, deadline=None)
    @given(st.text(max_size=300))
    def test_any_text_is_scanned_without_error(self, text: str) -> None:
        redacted = REDACTOR.redact(text)
        spans = redacted.spans
        assert all(0 <= s.start < s.end <= len(text) for s in spans)
        assert all(a.end <= b.start for a, b in itertools.pairwise(spans))

    def test_fast_and_public_searchers_agree(self) -> None:
        data = "\n".join(
            ["mail ana@ex.io", "ip 10.1.2.3 and (415) 555-0132", "x" * 50, "card 4111111111111111"]
        ).encode()
        for family in FAMILIES:
            compiled = compiled_family(family, frozenset(BUILTIN_CLASSES))
            assert compiled is not None
            fast, public = searcher(compiled.regex), public_searcher(compiled.regex)
            assert getattr(fast, "fast", False), "the fast path must be the one in use"
            for pos in range(0, len(data), 7):
                assert fast(data, pos, len(data)) == public(data, pos, len(data))


class TestChecks:
    """Checksums on their own."""

    def test_luhn(self) -> None:
        assert checks.luhn_ok(b"4111111111111111")
        assert not checks.luhn_ok(b"4111111111111112")

    def test_iban(self) -> None:
        assert checks.iban_ok(b"GB82 WEST 1234 5698 7654 32")
        assert not checks.iban_ok(b"GB82 WEST 1234 5698 7654 33")
        assert not checks.iban_ok(b"GB82 WEST 1234 5698 7654")  # wrong length for GB

    def test_ssn(self) -> None:
        assert checks.ssn_ok(b"219-09-9999")
        for bad in (b"000-12-3456", b"666-12-3456", b"912-12-3456", b"123-00-4567", b"123-45-0000"):
            assert not checks.ssn_ok(bad)

    def test_addresses(self) -> None:
        assert checks.ipv4_personal(b"81.2.69.160")
        for not_personal in (
            b"127.0.0.1",
            b"192.0.2.1",
            b"198.51.100.7",
            b"203.0.113.9",
            b"0.0.0.0",
        ):
            assert not checks.ipv4_personal(not_personal)
        assert not checks.ipv4_personal(b"01.2.3.4")
        assert checks.ipv6_personal(b"2a00:1450:4001:82b::200e")
        assert not checks.ipv6_personal(b"2001:db8::1")
        assert not checks.ipv6_personal(b"::1")
