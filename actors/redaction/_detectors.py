"""The built-in detectors: a pattern (RE2 syntax, run on UTF-8) and a check for each class.

A pattern finds candidates; its check decides on the candidate with checksums and context
and returns the span to remove (``None``: not this class). The patterns of one *family*
are scanned together in one pass of one compiled RE2 program (see ``_scan.py``), so the
cost of the text is paid once per family, and Python runs only on candidates.

A detector's pattern may name groups; ``value`` is what is removed when present (the
password of ``password=…``, not its name). Patterns use only non-capturing groups
otherwise, and scoped flags (``(?i:…)``), because they are joined into one program.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Callable, Mapping

import attrs

from . import _checks as ck

Span = tuple[int, int]
Groups = Mapping[str, Span]
# check(data, start, end, groups) -> the span to remove, or None
Check = Callable[[bytes, int, int, Groups], "Span | list[Span] | None"]
# classify(data, groups) -> the class of this candidate, or None
Classify = Callable[[bytes, Groups], "str | None"]
# expand(data, anchor_start) -> where the detector's pattern would start, or None
Expand = Callable[[bytes, int], "int | None"]


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


# ---------------------------------------------------------------- helpers


def _value(groups: Groups, start: int, end: int) -> Span:
    return groups.get("value", (start, end))


def _window(data: bytes, start: int, size: int) -> bytes:
    return data[max(0, start - size) : start].lower()


def _line_before(data: bytes, start: int, size: int = 120) -> bytes:
    window = _window(data, start, size)
    return window[window.rfind(b"\n") + 1 :]


def _glued(data: bytes, start: int, end: int, chars: bytes) -> bool:
    """Whether the candidate touches one of ``chars`` on either side (part of a bigger token)."""
    before = data[start - 1 : start] if start else b""
    after = data[end : end + 1]
    return bool(before and before in chars) or bool(after and after in chars)


_WORD = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"

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


def _private_key(data: bytes, start: int, end: int, groups: Groups) -> Span | None:
    stop = data.find(b"-----END ", end, end + MAX_PEM_BYTES)
    if stop != -1:
        footer = _PEM_END.match(data, stop)
        if footer is not None:
            return start, footer.end()
    body = _PEM_BODY.match(data, end)
    return start, body.end() if body is not None else end


_AWS_CONTEXT = re.compile(rb"aws|secret|\ba[ks]ia[a-z0-9]{16}")


def _aws_secret(data: bytes, start: int, end: int, groups: Groups) -> Span | None:
    s, e = _value(groups, start, end)
    value = data[s:e]
    if (
        ck.is_hex(value)
        or ck.char_classes(value) < 3
        or not ck.looks_random(value, min_bits=4.0, words=False)
    ):
        return None
    if _AWS_CONTEXT.search(_window(data, s, 240)) is None:
        return None
    return s, e


def _random_tail(prefix_len: int, min_bits: float = 3.5) -> Check:
    def check(data: bytes, start: int, end: int, groups: Groups) -> Span | None:
        value = data[start + prefix_len : end]
        if ck.char_classes(value.replace(b"-", b"").replace(b"_", b"")) < 3:
            return None
        return (start, end) if ck.entropy(value) >= min_bits else None

    return check


def _openai(data: bytes, start: int, end: int, groups: Groups) -> Span | None:
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


def _placeholder(value: bytes) -> bool:
    return not value or _PLACEHOLDER.fullmatch(value) is not None


def _bearer_header(data: bytes, start: int, end: int, groups: Groups) -> Span | None:
    s, e = _value(groups, start, end)
    value = data[s:e]
    if _placeholder(value) or value.lower() in (b"bearer", b"basic", b"token"):
        return None
    return s, e


def _bearer_word(data: bytes, start: int, end: int, groups: Groups) -> Span | None:
    s, e = _value(groups, start, end)
    value = data[s:e]
    if not any(48 <= b <= 57 for b in value) or not ck.looks_random(value, min_bits=3.0):
        return None
    return s, e


_URL_PLACEHOLDERS = frozenset((b"password", b"pass", b"pwd", b"secret", b"passwd", b"pw"))


def _url_credentials(data: bytes, start: int, end: int, groups: Groups) -> Span | None:
    s, e = _value(groups, start, end)
    value = data[s:e]
    if _placeholder(value) or value.isdigit():  # host:port@ is not a password
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


def _assignment(data: bytes, start: int, end: int, groups: Groups) -> Span | None:
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
    if _placeholder(value) or (not quoted and _code_reference(value, key)):
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


def _assignment_kind(data: bytes, groups: Groups) -> str | None:
    ks, ke = groups["key"]
    return key_class(data[ks:ke])


def _prose_value(data: bytes, span: Span) -> Span | None:
    s, e = span
    while e > s and data[e - 1] in b".,;:)":
        e -= 1
    value = data[s:e]
    if len(value) < 4 or _placeholder(value) or value.isalpha():
        return None
    return s, e


def _password_prose(data: bytes, start: int, end: int, groups: Groups) -> list[Span] | None:
    """``the password is X`` (and ``… and the guest one Y``): each value that is one."""
    found = [v for g in ("value", "more") if g in groups and (v := _prose_value(data, groups[g]))]
    return found or None


_MYSQL = re.compile(rb"\b(?:mysql|mysqldump|mysqladmin|mariadb|mariadb-dump)\b")


def _mysql_password(data: bytes, start: int, end: int, groups: Groups) -> Span | None:
    """``mysql -pSECRET``: the password glued to ``-p``, on a MySQL command line."""
    if _MYSQL.search(_line_before(data, start, 400)) is None:
        return None
    return _prose_value(data, groups["value"])


# ---------------------------------------------------------------- personal data

_FILE_TLDS = frozenset(
    b"png jpg jpeg gif svg webp ico bmp css js mjs ts tsx jsx json html htm txt yaml yml toml "
    b"xml lock zip gz tar pdf map wasm".split()
)
_MESSAGE_ID = re.compile(rb"(?:message-id|msgid|in-reply-to|references)\s*[:=]\s*<?$")


def _email(data: bytes, start: int, end: int, groups: Groups) -> Span | None:
    while data[start : start + 1] == b".":
        start += 1  # a sentence's full stop before the address
    address = data[start:end]
    local, _, domain = address.replace(b"%40", b"@").rpartition(b"@")
    if not local or len(local) > 64 or local.endswith(b"."):
        return None
    if domain.rsplit(b".", 1)[-1].lower() in _FILE_TLDS:
        return None
    before = data[start - 1 : start]
    line = _line_before(data, start, 300)
    authority = line.rfind(b"://")
    if authority != -1:
        userinfo = line[authority + 3 :]
        if b":" in userinfo and not re.search(rb"[\s/]", userinfo):
            return None  # scheme://user:password@host: the URL's password and host
    if local == b"git" and data[end : end + 1] == b":":
        return None  # git@host:org/repo, an SSH remote
    if before == b"<" and _MESSAGE_ID.search(_window(data, start - 1, 24)):
        return None
    return start, end


_NUMBER_CONTEXT_NO = re.compile(
    rb"(?:order|invoice|inv|ticket|tracking|ref|reference|isbn|serial|build|version|sku|pid"
    rb"|port|case|po|no\.|#|id)[\s:=#.-]{0,3}$"
)
_PHONE_GLUE = b"0123456789"
_PHONE_CONTEXT = re.compile(
    rb"(?:phone|tel|mobile|cell|call|text|sms|whatsapp|signal|fax|ring|reach|contact|number"
    rb"|nummer|telefon|num\xc3\xa9ro|n\xc3\xbamero)\b"
)


_IBAN_BEFORE = re.compile(rb"\b[a-z]{2}[0-9]{2} (?:[a-z0-9]{4} )*$")
_DATE = re.compile(
    rb"[0-9]{1,2}[/.-][0-9]{1,2}[/.-](?:19|20)[0-9]{2}|(?:19|20)[0-9]{2}[/.-][0-9]{2}"
)


def _phone(data: bytes, start: int, end: int, groups: Groups) -> Span | None:
    candidate = data[start:end]
    digits = ck.digits_of(candidate)
    international = candidate[:1] == b"+" or candidate[:2] in (b"(+", b"00")
    if not (8 if international else 9) <= len(digits) <= (15 if international else 12):
        return None
    if _glued(data, start, end, _PHONE_GLUE + b"_"):
        return None
    if (
        start >= 2
        and data[start - 1 : start] in (b"-", b".", b"/")
        and data[start - 2 : start - 1].isdigit()
    ):
        return None  # the tail of a longer number
    after = data[end : end + 2]
    if len(after) == 2 and after[0:1] in b"-./:" and after[1:2].isdigit():
        return None  # the start of a longer number (an id, a date, a time)
    if _DATE.search(candidate):
        return None
    if _IBAN_BEFORE.search(_window(data, start, 40)):
        return None  # the digit groups of an IBAN-shaped string (valid or not)
    if candidate.endswith(b")") and candidate.count(b"(") < candidate.count(b")"):
        end -= 1  # the parenthesis closes the text around the number: [call](tel:+1-…)
    if candidate.isdigit() and _PHONE_CONTEXT.search(_window(data, start, 40)) is None:
        return None  # bare digits are a phone number only where the text says so
    if _NUMBER_CONTEXT_NO.search(_window(data, start, 16)):
        return None
    return start, end


def _card(data: bytes, start: int, end: int, groups: Groups) -> Span | None:
    candidate = data[start:end]
    if not ck.card_ok(candidate) or not _card_issuer(ck.digits_of(candidate)):
        return None
    return start, end


def _card_issuer(digits: bytes) -> bool:
    two, four = int(digits[:2]), int(digits[:4])
    return (
        digits[:1] == b"4"
        or 51 <= two <= 55
        or 2221 <= four <= 2720
        or two in (34, 37, 36, 38, 39, 62, 65, 50)
        or 300 <= int(digits[:3]) <= 305
        or four == 6011
        or 644 <= int(digits[:3]) <= 649
        or 3528 <= four <= 3589
        or 56 <= two <= 69
    )


def _iban(data: bytes, start: int, end: int, groups: Groups) -> Span | None:
    length = ck.IBAN_LENGTHS.get(data[start : start + 2])
    if length is None:
        return None
    seen = 0
    for at in range(start, end):
        if data[at] != 0x20:
            seen += 1
            if seen == length:
                stop = at + 1
                if stop < end and data[stop] != 0x20:
                    return None  # the country's length ends inside a group
                return (start, stop) if ck.iban_ok(data[start:stop]) else None
    return None


_SSN_CONTEXT = re.compile(rb"(?:ssn|social security|sozialversicherung|tin)\b")


def _ssn(data: bytes, start: int, end: int, groups: Groups) -> Span | None:
    s, e = _value(groups, start, end)
    candidate = data[s:e]
    if not ck.ssn_ok(candidate) or _glued(data, s, e, _PHONE_GLUE + b"-"):
        return None
    if b"-" not in candidate and _SSN_CONTEXT.search(_window(data, s, 40)) is None:
        return None  # 123 45 6789 or 123456789 is an SSN only where the text says so
    if _NUMBER_CONTEXT_NO.search(_window(data, s, 16)):
        return None
    return s, e


_VERSION_CONTEXT = re.compile(
    rb"(?:\b(?:version|release|build|agent|ver)[\s:=]*|\bv|==|>=|<=|~=|\^)$"
)


def _ipv4(data: bytes, start: int, end: int, groups: Groups) -> Span | None:
    candidate = data[start:end]
    if not ck.ipv4_personal(candidate) or ck.is_netmask(candidate):
        return None
    before, after = data[max(0, start - 2) : start], data[end : end + 2]
    if (len(before) == 2 and before[1:] == b"." and before[:1].isdigit()) or (
        len(after) == 2 and after[:1] == b"." and after[1:].isdigit()
    ):
        return None  # part of a longer dotted number (an OID, a version)
    if after[:1] == b"/":
        prefix = re.match(rb"/([0-9]{1,2})\b", data[end : end + 4])
        if prefix is not None and ck.is_network(candidate, prefix.group(1)):
            return None
    if _VERSION_CONTEXT.search(_window(data, start, 12)):
        return None
    return start, end


def _ipv6(data: bytes, start: int, end: int, groups: Groups) -> Span | None:
    candidate = data[start:end]
    if _glued(data, start, end, _WORD + b":"):
        return None
    hexdigits = sum(1 for b in candidate if b != 0x3A)
    if hexdigits < 5 or not any(48 <= b <= 57 for b in candidate):
        return None
    if not ck.ipv6_personal(candidate):
        return None
    if data[end : end + 1] == b"/":
        prefix = re.match(rb"/([0-9]{1,3})\b", data[end : end + 5])
        if prefix is not None and ck.is_network(candidate, prefix.group(1)):
            return None
    return start, end


# ---------------------------------------------------------------- anchors

_LOCAL_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-'")
_SCHEME_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")


def _back_over(data: bytes, at: int, chars: frozenset[int], limit: int, utf8: bool) -> int:
    """Where a run of ``chars`` that ends at ``at`` starts (an escape such as ``\\n`` ends it)."""
    start = at
    while start > 0 and at - start < limit:
        b = data[start - 1]
        if not (b in chars or (utf8 and b >= 0x80)):
            break
        if start >= 2 and data[start - 2] == 0x5C:  # the letter of an escape: \n, \t…
            break
        start -= 1
    return start


def _email_start(data: bytes, at: int) -> int | None:
    """From the ``@``, back over the local part (letters of any script, digits, ._%+-')."""
    start = _back_over(data, at, _LOCAL_CHARS, 256, utf8=True)
    while start < at and (data[start] & 0xC0 == 0x80 or data[start] in b"'."):
        start += 1  # never inside a character, nor at a quote or a full stop
    return start if start < at else None


def _scheme_start(data: bytes, at: int) -> int | None:
    """From the ``://``, back over the scheme (``postgres``, ``mongodb+srv``…)."""
    start = _back_over(data, at, _SCHEME_CHARS, 31, utf8=False)
    while start < at and not chr(data[start]).isalpha():
        start += 1
    return start if at - start >= 2 else None


def _proxy_start(data: bytes, at: int) -> int | None:
    return at - 6 if data[max(0, at - 6) : at].lower() == b"proxy-" else at


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
        check=_private_key,
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
        check=_openai,
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
        check=_bearer_header,
        anchor=r"(?i:authorization)",
        expand=_proxy_start,
    ),
    Detector(
        name="bearer",
        category=_S,
        family="anchored",
        pattern=r"\b[Bb]earer[ \t]+(?P<value>[A-Za-z0-9._~+/-]{16,}=*)",
        check=_bearer_word,
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
        check=_url_credentials,
        anchor=r"://",
        expand=_scheme_start,
    ),
    Detector(
        name="aws_secret",
        category=_S,
        family="base64",
        pattern=r"(?:^|[^A-Za-z0-9/+])(?P<value>[A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)",
        check=_aws_secret,
    ),
    # -- assignments: a secret-like name, a separator, a value
    Detector(
        name="password",
        category=_S,
        family="assignments",
        pattern=_ASSIGN,
        check=_assignment,
        classify=_assignment_kind,
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
        check=_password_prose,
    ),
    Detector(
        name="password",
        category=_S,
        family="prose",
        pattern=r"(?:^|\s)-p(?P<value>[^\s\"'`\\-][^\s`\\]{3,})",
        check=_mysql_password,
    ),
    Detector(
        name="password",
        category=_S,
        family="prose",
        pattern=r"(?:^|\s)(?:-u|--user)[ \t]+[\"']?[^\s:\"']+:(?P<value>[^\s\"']+)",
        check=_password_prose,
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
        check=_email,
        anchor=r"@|%40",
        expand=_email_start,
    ),
    Detector(
        name="iban",
        category=_P,
        family="numbers",
        pattern=r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b",
        check=_iban,
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
        check=_card,
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
        check=_ssn,
    ),
    Detector(
        name="ipv4",
        category=_P,
        family="numbers",
        pattern=rf"\b{_FIRST_OCTET}(?:\.{_OCTET}){{3}}\b",
        check=_ipv4,
    ),
    Detector(
        name="ipv6",
        category=_P,
        family="ipv6",
        pattern=(
            r"(?i:(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}"
            r"|(?:[0-9a-f]{1,4}:){0,6}[0-9a-f]{0,4}::(?:[0-9a-f]{1,4}:){0,6}[0-9a-f]{0,4})"
        ),
        check=_ipv6,
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
        check=_phone,
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
