"""The checks of the personal-data classes: addresses, phones, cards, IBANs, SSNs, IPs."""

from __future__ import annotations

import re

from . import _checks as ck
from ._context import WORD_CHARS, Groups, Span, back_over, glued, line_before, value_span, window

# ---------------------------------------------------------------- personal data

_FILE_TLDS = frozenset(
    b"png jpg jpeg gif svg webp ico bmp css js mjs ts tsx jsx json html htm txt yaml yml toml "
    b"xml lock zip gz tar pdf map wasm".split()
)
_MESSAGE_ID = re.compile(rb"(?:message-id|msgid|in-reply-to|references)\s*[:=]\s*<?$")


def email(data: bytes, start: int, end: int, groups: Groups) -> Span | None:
    while data[start : start + 1] == b".":
        start += 1  # a sentence's full stop before the address
    address = data[start:end]
    local, _, domain = address.replace(b"%40", b"@").rpartition(b"@")
    if not local or len(local) > 64 or local.endswith(b"."):
        return None
    if domain.rsplit(b".", 1)[-1].lower() in _FILE_TLDS:
        return None
    before = data[start - 1 : start]
    line = line_before(data, start, 300)
    authority = line.rfind(b"://")
    if authority != -1:
        userinfo = line[authority + 3 :]
        if b":" in userinfo and not re.search(rb"[\s/]", userinfo):
            return None  # scheme://user:password@host: the URL's password and host
    if local == b"git" and data[end : end + 1] == b":":
        return None  # git@host:org/repo, an SSH remote
    if before == b"<" and _MESSAGE_ID.search(window(data, start - 1, 24)):
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


def phone(data: bytes, start: int, end: int, groups: Groups) -> Span | None:
    candidate = data[start:end]
    digits = ck.digits_of(candidate)
    international = candidate[:1] == b"+" or candidate[:2] in (b"(+", b"00")
    if not (8 if international else 9) <= len(digits) <= (15 if international else 12):
        return None
    if glued(data, start, end, _PHONE_GLUE + b"_"):
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
    if _IBAN_BEFORE.search(window(data, start, 40)):
        return None  # the digit groups of an IBAN-shaped string (valid or not)
    if candidate.endswith(b")") and candidate.count(b"(") < candidate.count(b")"):
        end -= 1  # the parenthesis closes the text around the number: [call](tel:+1-…)
    if candidate.isdigit() and _PHONE_CONTEXT.search(window(data, start, 40)) is None:
        return None  # bare digits are a phone number only where the text says so
    if _NUMBER_CONTEXT_NO.search(window(data, start, 16)):
        return None
    return start, end


def card(data: bytes, start: int, end: int, groups: Groups) -> Span | None:
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


def iban(data: bytes, start: int, end: int, groups: Groups) -> Span | None:
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


def ssn(data: bytes, start: int, end: int, groups: Groups) -> Span | None:
    s, e = value_span(groups, start, end)
    candidate = data[s:e]
    if not ck.ssn_ok(candidate) or glued(data, s, e, _PHONE_GLUE + b"-"):
        return None
    if b"-" not in candidate and _SSN_CONTEXT.search(window(data, s, 40)) is None:
        return None  # 123 45 6789 or 123456789 is an SSN only where the text says so
    if _NUMBER_CONTEXT_NO.search(window(data, s, 16)):
        return None
    return s, e


_VERSION_CONTEXT = re.compile(
    rb"(?:\b(?:version|release|build|agent|ver)[\s:=]*|\bv|==|>=|<=|~=|\^)$"
)


def ipv4(data: bytes, start: int, end: int, groups: Groups) -> Span | None:
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
    if _VERSION_CONTEXT.search(window(data, start, 12)):
        return None
    return start, end


def ipv6(data: bytes, start: int, end: int, groups: Groups) -> Span | None:
    candidate = data[start:end]
    if glued(data, start, end, WORD_CHARS + b":"):
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


_LOCAL_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-'")


def email_start(data: bytes, at: int) -> int | None:
    """From the ``@``, back over the local part (letters of any script, digits, ._%+-')."""
    start = back_over(data, at, _LOCAL_CHARS, 256, utf8=True)
    while start < at and (data[start] & 0xC0 == 0x80 or data[start] in b"'."):
        start += 1  # never inside a character, nor at a quote or a full stop
    return start if start < at else None
