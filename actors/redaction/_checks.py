"""Checksums and shape tests that keep look-alikes out of the redaction.

Each function takes the candidate as ``bytes`` (the scanner works on UTF-8) and answers
quickly: they run only on what a detector's pattern already matched.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter

_DIGITS = frozenset(b"0123456789")
_HEX = frozenset(b"0123456789abcdefABCDEF")

# Total length of an IBAN by country (ISO 13616 registry).
IBAN_LENGTHS: dict[bytes, int] = {
    b"AD": 24, b"AE": 23, b"AL": 28, b"AT": 20, b"AZ": 28, b"BA": 20, b"BE": 16, b"BG": 22,
    b"BH": 22, b"BR": 29, b"BY": 28, b"CH": 21, b"CR": 22, b"CY": 28, b"CZ": 24, b"DE": 22,
    b"DK": 18, b"DO": 28, b"EE": 20, b"EG": 29, b"ES": 24, b"FI": 18, b"FO": 18, b"FR": 27,
    b"GB": 22, b"GE": 22, b"GI": 23, b"GL": 18, b"GR": 27, b"GT": 28, b"HR": 21, b"HU": 28,
    b"IE": 22, b"IL": 23, b"IQ": 23, b"IS": 26, b"IT": 27, b"JO": 30, b"KW": 30, b"KZ": 20,
    b"LB": 28, b"LC": 32, b"LI": 21, b"LT": 20, b"LU": 20, b"LV": 21, b"MC": 27, b"MD": 24,
    b"ME": 22, b"MK": 19, b"MR": 27, b"MT": 31, b"MU": 30, b"NL": 18, b"NO": 15, b"PK": 24,
    b"PL": 28, b"PS": 29, b"PT": 25, b"QA": 29, b"RO": 24, b"RS": 22, b"SA": 24, b"SC": 31,
    b"SE": 24, b"SI": 19, b"SK": 24, b"SM": 27, b"ST": 25, b"SV": 28, b"TL": 23, b"TN": 24,
    b"TR": 26, b"UA": 29, b"VA": 22, b"VG": 24, b"XK": 20,
}  # fmt: skip

# Addresses that identify no one: loopback, "this network", broadcast, documentation.
_IPV4_NOT_PERSONAL = tuple(
    ipaddress.ip_network(n)
    for n in ("127.0.0.0/8", "0.0.0.0/32", "255.255.255.255/32", "192.0.2.0/24",
              "198.51.100.0/24", "203.0.113.0/24")
)  # fmt: skip
_IPV6_NOT_PERSONAL = tuple(
    ipaddress.ip_network(n) for n in ("::1/128", "::/128", "2001:db8::/32", "3fff::/20")
)


def digits_of(candidate: bytes) -> bytes:
    """The digits of ``candidate``, separators dropped."""
    return bytes(b for b in candidate if b in _DIGITS)


def luhn_ok(digits: bytes) -> bool:
    """The Luhn (mod 10) check that every payment card number passes."""
    total = 0
    for i, b in enumerate(reversed(digits)):
        n = b - 48
        if i % 2:
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return total % 10 == 0


def card_ok(candidate: bytes) -> bool:
    """A payment card: 13-19 digits in one separator style, passing Luhn."""
    seps = {b for b in candidate if b not in _DIGITS}
    if len(seps) > 1:
        return False
    digits = digits_of(candidate)
    if not 13 <= len(digits) <= 19:
        return False
    if len(set(digits)) < 2:  # 0000 0000 0000 0000, 1111 …: fillers, not cards
        return False
    return luhn_ok(digits)


def iban_ok(candidate: bytes) -> bool:
    """An IBAN with its country's length and a valid ISO 7064 mod-97 check."""
    compact = candidate.replace(b" ", b"").upper()
    if IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    value = 0
    for b in rearranged:
        if 48 <= b <= 57:
            value = (value * 10 + b - 48) % 97
        elif 65 <= b <= 90:
            value = (value * 100 + b - 55) % 97
        else:
            return False
    return value == 1


def ssn_ok(candidate: bytes) -> bool:
    """A US social security number that the SSA could have issued."""
    digits = digits_of(candidate)
    if len(digits) != 9:
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in (b"000", b"666") or area[0:1] == b"9":
        return False
    return group != b"00" and serial != b"0000"


def ipv4_value(candidate: bytes) -> int | None:
    """The address as a number, or None (four decimal octets, no leading zeros)."""
    parts = candidate.split(b".")
    if len(parts) != 4:
        return None
    value = 0
    for part in parts:
        if not part.isdigit() or len(part) > 3 or (len(part) > 1 and part[0] == 48):
            return None
        octet = int(part)
        if octet > 255:
            return None
        value = value << 8 | octet
    return value


_IPV4_NOT_PERSONAL_RANGES = tuple(
    (int(net.network_address), int(net.broadcast_address)) for net in _IPV4_NOT_PERSONAL
)


def ipv4_personal(candidate: bytes) -> bool:
    """A valid IPv4 address that can point at someone (not loopback or documentation)."""
    value = ipv4_value(candidate)
    if value is None:
        return False
    return not any(low <= value <= high for low, high in _IPV4_NOT_PERSONAL_RANGES)


def is_netmask(candidate: bytes) -> bool:
    """255.255.255.0 and friends: contiguous ones, then zeros."""
    value = ipv4_value(candidate)
    if value is None or value >> 24 != 255:
        return False
    inverted = ~value & 0xFFFFFFFF
    return inverted & (inverted + 1) == 0


def is_network(address: bytes, prefix: bytes) -> bool:
    """``address/prefix`` names a network (its host bits are zero), not a host."""
    try:
        ipaddress.ip_network(f"{address.decode('ascii')}/{int(prefix)}", strict=True)
    except ValueError:
        return False
    return int(prefix) < (32 if b"." in address else 128)


def ipv6_personal(candidate: bytes) -> bool:
    """A valid IPv6 address that can point at someone (not loopback, documentation or ::)."""
    text = candidate.decode("ascii", "replace")
    if text.count(":") < 2:
        return False
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        return False
    if address.ipv4_mapped is not None:
        return ipv4_personal(str(address.ipv4_mapped).encode())
    return not any(address in net for net in _IPV6_NOT_PERSONAL)


def entropy(candidate: bytes) -> float:
    """Shannon entropy in bits per character."""
    if not candidate:
        return 0.0
    n = len(candidate)
    return -sum(c / n * math.log2(c / n) for c in Counter(candidate).values())


def char_classes(candidate: bytes) -> int:
    """How many of lower case, upper case, digits and other characters appear."""
    lower = upper = digit = other = 0
    for b in candidate:
        if 97 <= b <= 122:
            lower = 1
        elif 65 <= b <= 90:
            upper = 1
        elif 48 <= b <= 57:
            digit = 1
        else:
            other = 1
    return lower + upper + digit + other


def is_hex(candidate: bytes) -> bool:
    return bool(candidate) and all(b in _HEX for b in candidate)


_RUN = re.compile(rb"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")


def wordlike(candidate: bytes) -> bool:
    """Made of words and numbers (``Ed25519PrivateKey``, ``io.example/clientInfo``), not
    of the short fragments a random string breaks into (``q8Zr2LmWp8Kt…``)."""
    runs = _RUN.findall(candidate)
    total = sum(len(r) for r in runs)
    long_runs = sum(len(r) for r in runs if len(r) >= 4)
    return total > 0 and long_runs / total >= 0.7


def looks_random(
    candidate: bytes, *, min_len: int = 16, min_bits: float = 3.0, words: bool = True
) -> bool:
    """Long, varied and unpredictable enough to be a key rather than a word or a number.

    ``words``: also refuse what is made of words (a name, a path); off where the context
    already says a key is there.
    """
    if len(candidate) < min_len or candidate.isdigit():
        return False
    if is_hex(candidate):
        # Hex keys use only 16 symbols: 4 bits per character at most.
        return entropy(candidate) >= min(min_bits, 3.0)
    # Words, paths and host names have no digits, or only one kind of letter, or long runs
    # of letters: a key made of random characters has upper and lower case and digits,
    # in short runs.
    return (
        char_classes(candidate) >= 3
        and entropy(candidate) >= min_bits
        and not (words and wordlike(candidate))
    )
