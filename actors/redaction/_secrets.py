"""The checks of the secret classes: tokens, private keys, credentials, assignments.

Each takes a candidate that a pattern in ``_detectors.py`` found (bytes of UTF-8 text,
offsets, named groups) and returns the span to remove, or None.
"""

from __future__ import annotations

import functools
import re

from . import _checks as ck
from ._context import Groups, Span, back_over, line_before, value_span, window

# ---------------------------------------------------------------- secrets: tokens family

_PEM_END = re.compile(rb"-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
# A key whose END line is missing (cut by a log line limit): its base64 lines and headers.
_NEWLINE = rb"(?: ?\r? ?\n|\\r?\\n)"
_PEM_BODY = re.compile(
    rb"(?:"
    + _NEWLINE
    + rb"(?:[A-Za-z0-9+/=]{1,128}|(?:Proc-Type|DEK-Info|Comment):[^\r\n\\]{0,200}"
    rb"|(?=" + _NEWLINE + rb"[A-Za-z0-9+/=])))*"
)
MAX_PEM_BYTES = 64 * 1024


def private_key(data: bytes, start: int, end: int, groups: Groups) -> Span | None:
    stop = data.find(b"-----END ", end, end + MAX_PEM_BYTES)
    if stop != -1:
        footer = _PEM_END.match(data, stop)
        if footer is not None:
            return start, footer.end()
    body = _PEM_BODY.match(data, end)
    return start, body.end() if body is not None else end


_AWS_CONTEXT = re.compile(rb"aws|secret|\ba[ks]ia[a-z0-9]{16}")


def aws_secret(data: bytes, start: int, end: int, groups: Groups) -> Span | None:
    s, e = value_span(groups, start, end)
    value = data[s:e]
    if (
        ck.is_hex(value)
        or ck.char_classes(value) < 3
        or not ck.looks_random(value, min_bits=4.0, words=False)
    ):
        return None
    if _AWS_CONTEXT.search(window(data, s, 240)) is None:
        return None
    return s, e


def openai(data: bytes, start: int, end: int, groups: Groups) -> Span | None:
    body = data[start:end].split(b"-", 1)[1]
    if ck.char_classes(body.replace(b"-", b"").replace(b"_", b"")) < 3:
        return None
    return (start, end) if ck.entropy(body) >= 3.5 else None


_PLACEHOLDER = re.compile(
    rb"""(?ix)
    \$\{.* | \$[a-z_][a-z0-9_]* | %\(.* | %s | \{\{.* | \{.*\} | <.*> | \[redacted.* | \[\]
    | \*{3,}.* | x{6,} | \.{3,} | \xe2\x80\xa6
    | (?:null|none|nil|true|false|undefined|yes|no|on|off|redacted|example)
    """
)
_CODE_WORDS = frozenset(
    b"await new function lambda async yield this self none null true false require "
    b"getpass input prompt env process os config settings nil undefined str string bytes int "
    b"bool any object secretstr optional text char varchar".split()
)


def placeholder(value: bytes) -> bool:
    return not value or _PLACEHOLDER.fullmatch(value) is not None


def bearer_header(data: bytes, start: int, end: int, groups: Groups) -> Span | None:
    s, e = value_span(groups, start, end)
    value = data[s:e]
    if placeholder(value) or value.lower() in (b"bearer", b"basic", b"token"):
        return None
    return s, e


def bearer_word(data: bytes, start: int, end: int, groups: Groups) -> Span | None:
    s, e = value_span(groups, start, end)
    value = data[s:e]
    if not any(48 <= b <= 57 for b in value) or not ck.looks_random(value, min_bits=3.0):
        return None
    return s, e


_URL_PLACEHOLDERS = frozenset((b"password", b"pass", b"pwd", b"secret", b"passwd", b"pw"))


def url_credentials(data: bytes, start: int, end: int, groups: Groups) -> Span | None:
    s, e = value_span(groups, start, end)
    value = data[s:e]
    if placeholder(value) or value.isdigit():  # host:port@ is not a password
        return None
    if value.lower() in _URL_PLACEHOLDERS:
        return None  # scheme://user:password@host, as documentation writes it
    return s, e


# ---------------------------------------------------------------- secrets: assignments family

# Names seen in assignments repeat (password, api_key, token…): their class is remembered.
KEY_CACHE = 4096
_SPLIT_CAMEL = re.compile(rb"(?<=[a-z0-9])(?=[A-Z])")
_SEGMENT = re.compile(rb"[^A-Za-z0-9]+")

_PASSWORD_SEGMENTS = frozenset(
    b"pass pwd pw passwd passcode passphrase password pin passwort contrasena".split()
)
_SECRET_SEGMENTS = frozenset(
    b"secret secrets token apikey credential credentials creds privatekey accesskey "
    b"secretkey clientsecret authtoken accesstoken refreshtoken bearer".split()
)
# The name before "key" that makes "<name>_key" a key rather than an index or a lookup.
_KEY_OWNERS = frozenset(
    b"api access secret private signing encryption master hmac session auth client app "
    b"license consumer jwt webhook shared service deploy ssh aes crypto cipher root admin "
    b"account storage subscription".split()
)
_ENTROPY_SEGMENTS = frozenset(b"key auth sig signature salt hmac seed".split())
# A name that describes a secret without being one (password_min_length, token_url, …).
_MODIFIERS = frozenset(
    b"id ids name names type types url uri urls endpoint path file dir len length min max count "
    b"size ttl expiry expires expiration exp timeout policy hint prompt label field header "
    b"format pattern regex required enabled enable disabled rotation reset version algorithm "
    b"alg kind mode env var source store provider strength chars budget limit prefix suffix "
    b"digest fingerprint arn ref location region scope scopes usage used remaining bucket "
    b"column table index schema display placeholder example description help text title "
    b"input form icon lifetime age rotate updated created changed at last validity valid "
    b"policy rules complexity attempts retries manager vault issuer audience setting settings "
    b"option options flag param".split()
)


def _segments(key: bytes) -> list[bytes]:
    key = key.rsplit(b".", 1)[-1]
    parts: list[bytes] = []
    for chunk in _SEGMENT.split(key):
        parts.extend(p.lower() for p in _SPLIT_CAMEL.split(chunk) if p)
    return parts


@functools.lru_cache(maxsize=KEY_CACHE)
def key_class(key: bytes) -> str | None:
    """``password``, ``secret`` or ``high_entropy``: what a value under this name is."""
    parts = _segments(key)
    found: str | None = None
    at = -1
    for i, part in enumerate(parts):
        joined = part + parts[i + 1] if i + 1 < len(parts) else b""
        if part in _PASSWORD_SEGMENTS or b"password" in part or b"passwd" in part:
            found, at = "password", i
        elif (
            part in _SECRET_SEGMENTS
            or (b"secret" in part and b"secretar" not in part)
            or (part.endswith(b"token") and len(part) > 5)
            or joined in _SECRET_SEGMENTS
        ) or (part == b"key" and i > 0 and parts[i - 1] in _KEY_OWNERS):
            found, at = "secret", i
        elif found is None and (part in _ENTROPY_SEGMENTS or part.endswith(b"key")):
            found, at = "high_entropy", i
    if found is None:
        return None
    if any(part in _MODIFIERS for part in parts[at + 1 :]):
        return None
    return found


def _unquote(data: bytes, s: int, e: int) -> Span:
    if e - s >= 4 and data[s : s + 2] == b'\\"' and data[e - 2 : e] == b'\\"':
        return s + 2, e - 2  # \"…\" of JSON inside a JSON string
    if e - s >= 2 and data[s] in b"\"'" and data[e - 1] == data[s]:
        return s + 1, e - 1
    return s, e


_WORDLIKE = re.compile(rb"[A-Za-z0-9_-]+")
_CONSTANT = re.compile(rb"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
_CLASS_NAME = re.compile(rb"(?:[A-Z][a-z0-9]{2,}){2,}")


def _code_reference(value: bytes, key: bytes) -> bool:
    """An unquoted value that is a variable, a call or a keyword of code, not a literal."""
    if value.lower() in _CODE_WORDS or value.lower() == key.lower():
        return True
    if _CONSTANT.fullmatch(value):
        return True  # FIRST_TOKEN_DELAY_S: a constant of the code
    if b"{" in value:
        return True  # f"{…}", ${…}: a template
    if value.lower() == key.rsplit(b".", 1)[-1].lower():
        return True
    reference = (
        re.fullmatch(rb"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+(?:\(.*)?", value)
        is not None
        or re.fullmatch(rb"[A-Za-z_][A-Za-z0-9_.]*[(\[].*", value) is not None
    )
    # self.secret, os.environ[…] are names; hvs.CAESIJ8kQm… is a token that has dots.
    return reference and not any(
        ck.looks_random(part) for part in value.split(b".") if _WORDLIKE.fullmatch(part)
    )


_NEXT_PARAMETER = re.compile(rb"&(?:amp;)?[A-Za-z_][\w.\[\]-]*=")
_AMPERSAND_TAIL = re.compile(rb"&[^\s\"'`,;)}\]<>\\]*")
#: Shorter values under a password's name are examples (``password: x``), not passwords.
MIN_PASSWORD = 4
# A file name, a path or a dotted setting name: what a secret-like name points at.
_NAME_OR_PATH = re.compile(
    rb"(?:~|\.{1,2})?(?:/[\w.-]+){2,}/?|(?:~|\.{1,2})/[\w./-]*|[A-Za-z]:\\\S*"
    rb"|[\w.-]+\.(?:key|pem|crt|cer|der|p12|pfx|jks|keystore|pub|json|txt|ya?ml|toml|env|jwt|ini)"
    rb"|[a-z][a-z0-9_-]*(?:\.[a-z][a-z0-9_-]*)+"
)


def assignment(data: bytes, start: int, end: int, groups: Groups) -> Span | None:
    ks, ke = groups["key"]
    key = data[ks:ke]
    kind = key_class(key)
    if kind is None:
        return None
    if data[max(0, ks - 3) : ks] == b"://":
        return None  # scheme://token:…@host is the URL's credentials (url_credentials)
    vs, ve = groups["value"]
    quoted = data[vs : vs + 1] in (b'"', b"'") or data[vs : vs + 2] == b'\\"'
    vs, ve = _unquote(data, vs, ve)
    if (
        not quoted
        and data[ve : ve + 1] == b"&"
        and data[ks - 1 : ks] not in (b"?", b"&")
        and _NEXT_PARAMETER.match(data, ve) is None
    ):
        # Not a query string (key=value&key=value): the & is part of the value.
        more = _AMPERSAND_TAIL.match(data, ve)
        if more is not None:
            ve = more.end()
    if not quoted:
        last = data[ve - 1 : ve]
        if last in (b'"', b"'") and data.count(last, vs, ve) == 1:
            ve -= 1  # the closing quote of what encloses the assignment ('password=x')
        elif last in (b".", b",") and data[ve : ve + 1] in (b"", b" ", b"\n", b"\r", b"\t"):
            ve -= 1  # the end of a sentence
    value = data[vs:ve]
    if placeholder(value) or (not quoted and _code_reference(value, key)):
        return None
    if kind == "password":
        return (vs, ve) if len(value) >= MIN_PASSWORD else None
    if not quoted and _CLASS_NAME.fullmatch(value):
        return None  # key: Ed25519PrivateKey, a type (a password may look like one: not here)
    if _NAME_OR_PATH.fullmatch(value):
        return None  # "client.key", "/etc/zl/host.jwt", "debug.token": where a secret is
    if ck.char_classes(value) < 2:
        return None  # one plain word ("secrets: assignments") is prose, not a token
    if value.isdigit() or len(value) < 8:
        return None
    if kind == "secret" or ck.looks_random(value, min_len=16, min_bits=3.0):
        return vs, ve
    return None


def assignment_kind(data: bytes, groups: Groups) -> str | None:
    ks, ke = groups["key"]
    return key_class(data[ks:ke])


def _prose_value(data: bytes, span: Span) -> Span | None:
    s, e = span
    while e > s and data[e - 1] in b".,;:)":
        e -= 1
    value = data[s:e]
    if len(value) < 4 or placeholder(value) or value.isalpha():
        return None
    return s, e


def password_prose(data: bytes, start: int, end: int, groups: Groups) -> list[Span] | None:
    """``the password is X`` (and ``… and the guest one Y``): each value that is one."""
    found = [v for g in ("value", "more") if g in groups and (v := _prose_value(data, groups[g]))]
    return found or None


_MYSQL = re.compile(rb"\b(?:mysql|mysqldump|mysqladmin|mariadb|mariadb-dump)\b")


def mysql_password(data: bytes, start: int, end: int, groups: Groups) -> Span | None:
    """``mysql -pSECRET``: the password glued to ``-p``, on a MySQL command line."""
    if _MYSQL.search(line_before(data, start, 400)) is None:
        return None
    return _prose_value(data, groups["value"])


_SCHEME_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")


def scheme_start(data: bytes, at: int) -> int | None:
    """From the ``://``, back over the scheme (``postgres``, ``mongodb+srv``…)."""
    start = back_over(data, at, _SCHEME_CHARS, 31, utf8=False)
    while start < at and not chr(data[start]).isalpha():
        start += 1
    return start if at - start >= 2 else None


def proxy_start(data: bytes, at: int) -> int | None:
    return at - 6 if data[max(0, at - 6) : at].lower() == b"proxy-" else at
