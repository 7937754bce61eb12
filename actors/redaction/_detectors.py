"""The built-in detectors: a pattern (RE2 syntax, run on UTF-8) and a check for each class.

A pattern finds candidates; its check (``_secrets.py``, ``_personal.py``) decides on the
candidate with checksums and context and returns the span to remove (``None``: not this
class). The patterns of one *family*
are scanned together in one pass of one compiled RE2 program (see ``_scan.py``), so the
cost of the text is paid once per family, and Python runs only on candidates.

A detector's pattern may name groups; ``value`` is what is removed when present (the
password of ``password=…``, not its name). Patterns use only non-capturing groups
otherwise, and scoped flags (``(?i:…)``), because they are joined into one program.
"""

from __future__ import annotations

import enum

import attrs

from ._context import Check, Classify, Expand
from ._personal import card, email, email_start, iban, ipv4, ipv6, phone, ssn
from ._secrets import (
    assignment,
    assignment_kind,
    aws_secret,
    bearer_header,
    bearer_word,
    mysql_password,
    openai,
    password_prose,
    private_key,
    proxy_start,
    scheme_start,
    url_credentials,
)


class Category(enum.StrEnum):
    """What a class protects: a credential or a person."""

    SECRET = "secret"
    PERSONAL = "personal"


@attrs.frozen(kw_only=True)
class Detector:
    """One way to find one class (a class may have several detectors)."""

    name: str
    category: Category
    family: str
    pattern: str
    check: Check | None = None
    #: For the ``anchored`` family: a literal-like pattern that every match holds. The one
    #: pass over the text looks for the anchors of all such detectors together (a small
    #: program, fast); ``pattern`` is then tried where an anchor is, anchored.
    anchor: str | None = None
    #: Where ``pattern`` starts, given where its anchor was found (None: at the anchor).
    expand: Expand | None = None
    #: For a detector that finds several classes: which one this candidate is (None: none).
    classify: Classify | None = None
    #: Every class it can report (its ``name`` alone unless ``classify`` is set).
    classes: tuple[str, ...] = attrs.field()

    @classes.default
    def _classes(self) -> tuple[str, ...]:
        return (self.name,)


# ---------------------------------------------------------------- the table

_S, _P = Category.SECRET, Category.PERSONAL
# An unquoted value ends at white space, at a separator, or at an escape sequence (in
# JSON-escaped text ``\n`` ends a line; the unescaped view sees the rest).
_UNQUOTED = r"""(?:[^\s"'`,;&(){}\[\]<>\\]|\\[^nrtu"\\/])(?:[^\s`,;&)}\]<>\\]|\\[^nrtu"\\/])*"""
# A quoted value; in JSON inside a JSON string its quotes are escaped (\"…\").
_QUOTED = r"""\"(?:[^"\\\r\n]|\\.)*"|\\"(?:[^"\\\r\n]|\\[^"\r\n])*\\"|'[^'\r\n]*'"""
_VALUE = rf"""(?P<value>{_QUOTED}|{_UNQUOTED})"""
_KEY = (
    r"(?P<key>[A-Za-z0-9_.-]*(?i:pass|pwd|pw|secret|token|api_?-?key|apikey|key|auth"
    r"|credential|creds|sig|salt|hmac|cookie|seed|pin)[A-Za-z0-9_.-]*)"
)
# A YAML block scalar (``key: |`` or ``key: >-``) has its value on the next line.
_ASSIGN = (
    _KEY + r"""(?:\\?["'])?\]?[ \t]*(?:=>|:=|=|:)[ \t]*(?:[|>][-+]?[ \t]*\r?\n[ \t]+)?""" + _VALUE
)
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
# The first octet leaves out 127: loopback is in every log line and is no one's address.
_FIRST_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[013-9][0-9]|12[0-689]|[1-9]?[0-9])"

DETECTORS: tuple[Detector, ...] = (
    # -- anchored: each holds a literal (its issuer's prefix, the @ of an address, the ://
    # -- of a URL); one pass finds the literals of all of them
    Detector(
        name="private_key",
        category=_S,
        family="anchored",
        pattern=r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----",
        check=private_key,
        anchor=r"-----BEGIN ",
    ),
    Detector(
        name="aws_key_id",
        category=_S,
        family="anchored",
        pattern=r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA|ASCA|A3T[A-Z0-9])[A-Z0-9]{16}\b",
        anchor=r"A(?:KIA|SIA|BIA|CCA|GPA|IDA|IPA|NPA|NVA|ROA|PKA|SCA|3T[A-Z0-9])",
    ),
    Detector(
        name="github_token",
        category=_S,
        family="anchored",
        pattern=r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})\b",
        anchor=r"gh[pousr]_|github_pat_",
    ),
    Detector(
        name="slack_token",
        category=_S,
        family="anchored",
        pattern=r"\b(?:xox[abposre]|xapp)-[A-Za-z0-9-]{10,}",
        anchor=r"xox[abposre]-|xapp-",
    ),
    Detector(
        name="slack_token",
        category=_S,
        family="anchored",
        pattern=r"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<value>[A-Za-z0-9/_-]{20,})",
        anchor=r"hooks\.slack\.com/",
    ),
    Detector(
        name="stripe_key",
        category=_S,
        family="anchored",
        pattern=r"\b(?:(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}|whsec_[A-Za-z0-9]{24,})\b",
        anchor=r"[sr]k_(?:live|test)_|whsec_",
    ),
    Detector(
        name="google_key",
        category=_S,
        family="anchored",
        pattern=r"\b(?:AIza[0-9A-Za-z_-]{35}|ya29\.[0-9A-Za-z_-]{20,}|GOCSPX-[0-9A-Za-z_-]{28})",
        anchor=r"AIza|ya29\.|GOCSPX-",
    ),
    Detector(
        name="openai_key",
        category=_S,
        family="anchored",
        pattern=r"\bsk-(?:proj-|svcacct-|admin-|ant-(?:api|admin)[0-9]{2}-)?[A-Za-z0-9_-]{20,}",
        check=openai,
        anchor=r"sk-",
    ),
    Detector(
        name="jwt",
        category=_S,
        family="anchored",
        pattern=r"\bey[JI][A-Za-z0-9_-]{10,}\.ey[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*",
        anchor=r"ey[JI]",
    ),
    Detector(
        name="bearer",
        category=_S,
        family="anchored",
        pattern=(
            r"(?i:\b(?:proxy-)?authorization)[\"']?[ \t]*[:=][ \t]*[\"']?"
            r"(?i:(?:bearer|basic|token|digest|negotiate|apikey|sso-key)[ \t]+)?"
            r"(?P<value>[A-Za-z0-9._~+/=:-]{8,})"
        ),
        check=bearer_header,
        anchor=r"(?i:authorization)",
        expand=proxy_start,
    ),
    Detector(
        name="bearer",
        category=_S,
        family="anchored",
        pattern=r"\b[Bb]earer[ \t]+(?P<value>[A-Za-z0-9._~+/-]{16,}=*)",
        check=bearer_word,
        anchor=r"[Bb]earer[ \t]",
    ),
    Detector(
        name="url_credentials",
        category=_S,
        family="anchored",
        pattern=(
            r"\b[A-Za-z][A-Za-z0-9+.-]{1,30}://[^\s/?#:\"'<>\\]*"
            r":(?P<value>[^\s/?\"'<>\\]+)@"
        ),
        check=url_credentials,
        anchor=r"://",
        expand=scheme_start,
    ),
    Detector(
        name="aws_secret",
        category=_S,
        family="base64",
        pattern=r"(?:^|[^A-Za-z0-9/+])(?P<value>[A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)",
        check=aws_secret,
    ),
    # -- assignments: a secret-like name, a separator, a value
    Detector(
        name="password",
        category=_S,
        family="assignments",
        pattern=_ASSIGN,
        check=assignment,
        classify=assignment_kind,
        classes=("password", "secret", "high_entropy"),
    ),
    Detector(
        name="password",
        category=_S,
        family="prose",
        pattern=(
            r"(?i:\b(?:password|passwd|pwd|pw|passcode|passphrase|passwort|kennwort)"
            r"(?:(?:[ \t]+[^\s:=]{1,30}){0,4}?[ \t]+(?:is|was|ist|lautet))?)"
            r"[ \t]+(?P<value>(?:[^\s\"'`\\]|\\[^nrtu\"\\/]){4,})"
            # A second one in the same sentence: "… and the guest one guest1234".
            r"(?:[ \t]*(?:,|and|or|und|oder|et|ou|y|o)[ \t]+(?:[^\s.!?]+[ \t]+){0,3}?"
            r"(?P<more>[^\s\"'`\\]*[0-9!#$%&*+=?@^~_][^\s\"'`\\]*))?"
        ),
        check=password_prose,
    ),
    Detector(
        name="password",
        category=_S,
        family="prose",
        pattern=r"(?:^|\s)-p(?P<value>[^\s\"'`\\-][^\s`\\]{3,})",
        check=mysql_password,
    ),
    Detector(
        name="password",
        category=_S,
        family="prose",
        pattern=r"(?:^|\s)(?:-u|--user)[ \t]+[\"']?[^\s:\"']+:(?P<value>[^\s\"']+)",
        check=password_prose,
    ),
    # -- personal data (e-mail addresses are anchored, above)
    Detector(
        name="email",
        category=_P,
        family="anchored",
        pattern=(
            r"[\p{L}\p{N}._%+_-]+(?:'[\p{L}\p{N}._%+_-]+)*(?:@|%40)[\p{L}\p{N}-]+(?:\.[\p{L}\p{N}-]+)*"
            r"\.(?:[A-Za-z]{2,24}|xn--[A-Za-z0-9-]{1,59})\b"
        ),
        check=email,
        anchor=r"@|%40",
        expand=email_start,
    ),
    Detector(
        name="iban",
        category=_P,
        family="numbers",
        pattern=r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b",
        check=iban,
    ),
    Detector(
        name="card",
        category=_P,
        family="numbers",
        pattern=(
            r"\b[2-6][0-9]{12,18}\b"
            r"|\b[2-6][0-9]{3}(?:[ -][0-9]{4}){3}(?:[ -][0-9]{1,3})?\b"
            r"|\b3[0-9]{3}[ -][0-9]{6}[ -][0-9]{4,5}\b"
        ),
        check=card,
    ),
    Detector(
        name="ssn",
        category=_P,
        family="numbers",
        pattern=(
            r"\b[0-9]{3}[- ][0-9]{2}[- ][0-9]{4}\b"
            r"|(?i:\b(?:ssn|social security(?: number| no\.?)?))[^0-9\n]{0,20}"
            r"(?P<value>[0-9]{9})\b"
        ),
        check=ssn,
    ),
    Detector(
        name="ipv4",
        category=_P,
        family="numbers",
        pattern=rf"\b{_FIRST_OCTET}(?:\.{_OCTET}){{3}}\b",
        check=ipv4,
    ),
    Detector(
        name="ipv6",
        category=_P,
        family="ipv6",
        pattern=(
            r"(?i:(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}"
            r"|(?:[0-9a-f]{1,4}:){0,6}[0-9a-f]{0,4}::(?:[0-9a-f]{1,4}:){0,6}[0-9a-f]{0,4})"
        ),
        check=ipv6,
    ),
    Detector(
        name="phone",
        category=_P,
        family="phone",
        pattern=(
            r"(?:\(\+|\+|\b00)[1-9][0-9]{0,3}\)?(?:[ .-]?\(0\))?(?:[ .\-/]?\(?[0-9]{1,5}\)?){1,6}"
            r"|\b1[ .-][2-9][0-9]{2}[ .-][2-9][0-9]{2}[ .-][0-9]{4}\b"
            r"|(?:\(\b[2-9][0-9]{2}\)[ ]?|\b[2-9][0-9]{2}[ .-])[2-9][0-9]{2}[ .-][0-9]{4}\b"
            r"|(?:\(0[0-9]{1,4}\)|\b0[0-9]{1,4})(?:[ .\-/][0-9]{2,8}){1,4}\b"
            r"|\(\b[1-9][0-9]{1,3}\)[ ]?[0-9]{3,5}[ -]?[0-9]{4}\b"
            r"|\b8[ ]?\([0-9]{3,5}\)[ ]?[0-9]{2,3}(?:[ -][0-9]{2,4}){1,3}\b"
            r"|\b1?[2-9][0-9]{2}[2-9][0-9]{6}\b"
        ),
        check=phone,
    ),
)

#: Every built-in class, by name, with its category.
BUILTIN_CLASSES: dict[str, Category] = {c: d.category for d in DETECTORS for c in d.classes}
# The passes over the text, in order; within one the first pattern that matches at a
# place wins there. Each is a small program: joined into fewer, their RE2 states multiply
# and the scan gets slower, not faster (bench.redact).
FAMILIES: tuple[str, ...] = (
    "anchored", "base64", "assignments", "prose", "numbers", "phone", "ipv6",
)  # fmt: skip
