"""Values for the labelled corpus: real-shaped secrets and personal data, and their look-alikes.

Every generator takes the corpus's ``random.Random`` and returns a string. Positives are
built the way the real thing is (card numbers pass Luhn with a real issuer prefix, IBANs
have their country's length and a valid mod-97 check, tokens have their issuer's prefix,
alphabet and length); look-alikes are what real text is full of and must not be redacted
(git SHAs, UUIDs, digests, versions, timestamps, order numbers, numbers failing Luhn,
IBAN-shaped strings with a bad check, documentation and loopback addresses).
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import string
import uuid

ALNUM = string.ascii_letters + string.digits
B64 = string.ascii_letters + string.digits + "+/"
B64URL = string.ascii_letters + string.digits + "-_"
HEX = "0123456789abcdef"
B32 = string.ascii_uppercase + "234567"

FIRST = [
    "john", "maria", "wei", "aisha", "lukas", "sofia", "raj", "olga", "kenji", "fatima",
    "liam", "chloe", "mateo", "ingrid", "tomasz", "amara", "noah", "yuki", "diego", "zoe",
]  # fmt: skip
LAST = [
    "smith", "garcia", "chen", "okafor", "muller", "rossi", "patel", "ivanova", "tanaka",
    "haddad", "obrien", "dubois", "silva", "larsen", "nowak", "mensah", "kim", "sato",
]  # fmt: skip
DOMAINS = [
    "gmail.com", "outlook.com", "acme-corp.io", "example.org", "mail.uni-heidelberg.de",
    "proton.me", "company.co.uk", "startup.dev", "yahoo.co.jp", "fastmail.fm", "corp.acme.com",
]  # fmt: skip
WORDS = [
    "request",
    "failed",
    "retry",
    "user",
    "session",
    "model",
    "latency",
    "config",
    "value",
    "path",
    "file",
    "read",
    "write",
    "cache",
    "upstream",
    "worker",
    "queue",
    "shard",
    "deploy",
    "build",
    "release",
    "rollback",
    "timeout",
    "connect",
    "handler",
    "parse",
    "render",
    "index",
    "merge",
    "branch",
    "commit",
    "review",
    "ticket",
    "customer",
    "invoice",
    "payment",
    "refund",
]


def _pick(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST).title()} {rng.choice(LAST).title()}"


def word(rng: random.Random) -> str:
    return rng.choice(WORDS)


# ---------------------------------------------------------------- personal data


def email(rng: random.Random) -> str:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    local = rng.choice(
        [
            f"{first}.{last}",
            f"{first[0]}{last}",
            f"{first}_{last}{rng.randint(1, 99)}",
            f"{first}+{rng.choice(['billing', 'github', 'news'])}",
            f"{first.title()}.{last.title()}",
            f"{last}{rng.randint(1970, 2005)}",
        ]
    )
    return f"{local}@{rng.choice(DOMAINS)}"


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _nz(rng: random.Random, n: int) -> str:
    """n digits, the first one not 0 or 1 (a valid area or exchange code start)."""
    return str(rng.randint(2, 9)) + _digits(rng, n - 1)


def phone(rng: random.Random) -> str:
    """A phone number in one of many national and international formats."""
    d = lambda n: _digits(rng, n)  # noqa: E731
    area, exchange = _nz(rng, 3), _nz(rng, 3)
    formats = [
        f"({area}) {exchange}-{d(4)}",
        f"{area}-{exchange}-{d(4)}",
        f"{area}.{exchange}.{d(4)}",
        f"+1 {area} {exchange} {d(4)}",
        f"+1-{area}-{exchange}-{d(4)}",
        f"1-800-{exchange}-{d(4)}",
        f"+1{area}{exchange}{d(4)}",
        f"+44 20 {rng.randint(3, 8)}{d(3)} {d(4)}",
        f"020 {rng.randint(3, 8)}{d(3)} {d(4)}",
        f"07{rng.randint(100, 999)} {d(6)}",
        f"+44 7{rng.randint(100, 999)} {d(6)}",
        f"+49 30 {d(8)}",
        f"030 {d(8)}",
        f"0171 {d(7)}",
        f"+49 (0)89 {d(7)}",
        f"089/{d(7)}",
        f"+33 {rng.randint(1, 9)} {d(2)} {d(2)} {d(2)} {d(2)}",
        f"0{rng.randint(1, 9)} {d(2)} {d(2)} {d(2)} {d(2)}",
        f"06.{d(2)}.{d(2)}.{d(2)}.{d(2)}",
        f"+34 6{d(2)} {d(2)} {d(2)} {d(2)}",
        f"+39 06 {d(4)} {d(4)}",
        f"+31 6 {d(8)}",
        f"06-{d(8)}",
        f"+81 3-{d(4)}-{d(4)}",
        f"03-{d(4)}-{d(4)}",
        f"090-{d(4)}-{d(4)}",
        f"+91 9{d(4)} {d(5)}",
        f"+61 2 {d(4)} {d(4)}",
        f"(02) {d(4)} {d(4)}",
        f"04{d(2)} {d(3)} {d(3)}",
        f"+55 11 9{d(4)}-{d(4)}",
        f"(11) 9{d(4)}-{d(4)}",
        f"+86 13{d(1)} {d(4)} {d(4)}",
        f"+52 55 {d(4)} {d(4)}",
        f"+27 21 {d(3)} {d(4)}",
        f"+41 44 {d(3)} {d(2)} {d(2)}",
        f"+46 8 {d(3)} {d(3)} {d(2)}",
        f"+82 2-{d(3)}-{d(4)}",
        f"010-{d(4)}-{d(4)}",
        f"+7 495 {d(3)}-{d(2)}-{d(2)}",
        f"8 (495) {d(3)}-{d(2)}-{d(2)}",
        f"+353 1 {d(3)} {d(4)}",
        f"+48 22 {d(3)} {d(2)} {d(2)}",
    ]
    return rng.choice(formats)


def _luhn_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        n = int(ch)
        if i % 2 == 0:
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return str((10 - total % 10) % 10)


def _card_digits(rng: random.Random) -> tuple[str, tuple[int, ...]]:
    brand = rng.choice(["visa", "mc", "mc2", "amex", "discover", "jcb", "diners", "unionpay"])
    prefix, length, groups = {
        "visa": ("4" + _digits(rng, 5), 16, (4, 4, 4, 4)),
        "mc": (str(rng.randint(51, 55)) + _digits(rng, 4), 16, (4, 4, 4, 4)),
        "mc2": (str(rng.randint(2221, 2720)) + _digits(rng, 2), 16, (4, 4, 4, 4)),
        "amex": (rng.choice(["34", "37"]) + _digits(rng, 4), 15, (4, 6, 5)),
        "discover": ("6011" + _digits(rng, 2), 16, (4, 4, 4, 4)),
        "jcb": (str(rng.randint(3528, 3589)) + _digits(rng, 2), 16, (4, 4, 4, 4)),
        "diners": (rng.choice(["36", "38"]) + _digits(rng, 4), 14, (4, 6, 4)),
        "unionpay": ("62" + _digits(rng, 4), 16, (4, 4, 4, 4)),
    }[brand]
    body = prefix + _digits(rng, length - len(prefix) - 1)
    return body + _luhn_digit(body), groups


def _group(number: str, groups: tuple[int, ...], sep: str) -> str:
    out, at = [], 0
    for size in groups:
        out.append(number[at : at + size])
        at += size
    return sep.join(out)


def card(rng: random.Random) -> str:
    number, groups = _card_digits(rng)
    return _group(number, groups, rng.choice(["", " ", "-", " ", "-"]))


# IBAN: country -> BBAN layout (n = digits, a = upper letters, c = letters or digits).
IBAN_FORMATS = {
    "DE": "18n", "GB": "4a14n", "FR": "10n11c2n", "ES": "20n", "IT": "1a10n12c", "NL": "4a10n",
    "BE": "12n", "CH": "5n12c", "AT": "16n", "PL": "24n", "SE": "20n", "NO": "11n",
    "DK": "14n", "IE": "4a14n", "PT": "21n", "FI": "14n", "LU": "3n13c", "CZ": "20n",
}  # fmt: skip


def _bban(rng: random.Random, layout: str) -> str:
    out, count = [], ""
    for ch in layout:
        if ch.isdigit():
            count += ch
            continue
        alphabet = {"n": string.digits, "a": string.ascii_uppercase, "c": ALNUM.upper()}[ch]
        out.append(_pick(rng, alphabet, int(count)))
        count = ""
    return "".join(out)


def iban_check(country: str, bban: str) -> str:
    rearranged = bban + country + "00"
    number = int("".join(str(int(ch, 36)) for ch in rearranged))
    return f"{98 - number % 97:02d}"


def _iban_parts(rng: random.Random) -> tuple[str, str]:
    country = rng.choice(sorted(IBAN_FORMATS))
    return country, _bban(rng, IBAN_FORMATS[country])


def _iban_print(iban: str, spaced: bool) -> str:
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4)) if spaced else iban


def iban(rng: random.Random) -> str:
    country, bban = _iban_parts(rng)
    return _iban_print(country + iban_check(country, bban) + bban, rng.random() < 0.5)


def ssn(rng: random.Random) -> str:
    area = rng.choice([n for n in range(1, 900) if n != 666])
    number = f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"
    return number if rng.random() < 0.8 else number.replace("-", " ")


def ipv4(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.3:
        return f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    if kind < 0.45:
        return f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    if kind < 0.55:
        return f"172.{rng.randint(16, 31)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    # A public address outside loopback and the documentation ranges.
    first = rng.choice([3, 8, 13, 20, 23, 31, 34, 35, 45, 52, 54, 66, 81, 91, 104, 151, 185])
    return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def ipv6(rng: random.Random) -> str:
    groups = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(8)]
    kind = rng.random()
    if kind < 0.3:
        groups[0] = rng.choice(["2a03", "2607", "2a00", "2001", "2600", "2406"])
        if groups[0] == "2001":
            groups[1] = rng.choice(["4860", "470", "67c"])
        return ":".join(groups)
    if kind < 0.6:
        head = rng.choice(["2a03:2880", "2607:f8b0", "2a00:1450", "2600:1f18", "2406:da00"])
        tail = ":".join(groups[: rng.randint(1, 3)])
        return f"{head}:{rng.randint(1, 0xFFF):x}::{tail}"
    if kind < 0.8:
        return "fe80::" + ":".join(groups[:4])
    return ":".join(f"{int(g, 16):04x}" for g in groups).replace("0000", "0", 1)


# ---------------------------------------------------------------- secrets


def aws_key_id(rng: random.Random) -> str:
    return rng.choice(["AKIA", "AKIA", "ASIA", "AROA"]) + _pick(rng, B32, 16)


def aws_secret(rng: random.Random) -> str:
    while True:
        value = _pick(rng, B64, 40)
        if "/" in value or rng.random() < 0.3:
            return value


def github_token(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.7:
        return rng.choice(["ghp_", "gho_", "ghs_", "ghu_", "ghr_"]) + _pick(rng, ALNUM, 36)
    return "github_pat_" + _pick(rng, ALNUM, 22) + "_" + _pick(rng, ALNUM, 59)


def slack_token(rng: random.Random) -> str:
    prefix = rng.choice(["xoxb", "xoxp", "xoxa", "xoxs"])
    return f"{prefix}-{_digits(rng, 12)}-{_digits(rng, 13)}-{_pick(rng, ALNUM, 24)}"


def slack_webhook_path(rng: random.Random) -> str:
    return f"T{_pick(rng, B32, 8)}/B{_pick(rng, B32, 10)}/{_pick(rng, ALNUM, 24)}"


def stripe_key(rng: random.Random) -> str:
    prefix = rng.choice(["sk_live_", "sk_test_", "rk_live_", "sk_live_", "whsec_"])
    return prefix + _pick(rng, ALNUM, rng.choice([24, 32, 99]))


def google_key(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.6:
        return "AIza" + _pick(rng, B64URL, 35)
    if kind < 0.85:
        return "ya29." + _pick(rng, B64URL, rng.randint(120, 180))
    return "GOCSPX-" + _pick(rng, B64URL, 28)


def openai_key(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.4:
        return "sk-proj-" + _pick(rng, B64URL, rng.choice([48, 74, 156]))
    if kind < 0.65:
        return "sk-" + _pick(rng, ALNUM, 20) + "T3BlbkFJ" + _pick(rng, ALNUM, 20)
    if kind < 0.8:
        return "sk-svcacct-" + _pick(rng, B64URL, 74)
    return "sk-ant-api03-" + _pick(rng, B64URL, 93) + "AA"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(rng: random.Random) -> str:
    alg = rng.choice(["HS256", "RS256", "EdDSA", "ES256"])
    header = _b64url(json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {
        "sub": str(uuid.UUID(int=rng.getrandbits(128))),
        "iat": rng.randint(1_700_000_000, 1_760_000_000),
        "exp": rng.randint(1_760_000_000, 1_790_000_000),
        "scope": rng.choice(["read", "read write", "admin"]),
    }
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    sig_len = {"HS256": 32, "RS256": 256, "EdDSA": 64, "ES256": 64}[alg]
    return f"{header}.{payload}.{_b64url(rng.randbytes(sig_len))}"


def opaque_token(rng: random.Random) -> str:
    return _pick(rng, ALNUM + "-._~", rng.randint(32, 64))


def basic_credentials(rng: random.Random) -> str:
    user = rng.choice(FIRST)
    return base64.b64encode(f"{user}:{password(rng)}".encode()).decode()


PASSWORD_WORDS = ["correct", "horse", "battery", "staple", "sunset", "falcon", "maple", "river"]


def password(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.25:
        return rng.choice(
            ["hunter2", "Tr0ub4dor&3", "P@ssw0rd123", "letmein!", "Summer2024!", "qwerty123",
             "S3cure!Pass#2024", "changeme123", "iloveyou2", "Passw0rd!", 'Qu0te"Me!',
             "back\\slash7"]
        )  # fmt: skip
    if kind < 0.4:
        return "-".join(rng.sample(PASSWORD_WORDS, 4))
    symbols = "!#$%*?-_+"
    return _pick(rng, ALNUM, rng.randint(8, 14)) + rng.choice(symbols) + _digits(rng, 2)


def url_password(rng: random.Random) -> str:
    """A password as it appears inside a URL (reserved characters percent-encoded)."""
    encoded = password(rng).replace("%", "%25")
    for ch, escape in (("#", "%23"), ("?", "%3F"), ('"', "%22"), ("\\", "%5C")):
        encoded = encoded.replace(ch, escape)
    return encoded


def hex_secret(rng: random.Random, n: int = 64) -> str:
    return _pick(rng, HEX, n)


def b64_secret(rng: random.Random) -> str:
    return base64.b64encode(rng.randbytes(rng.choice([24, 32, 48]))).decode()


def secret_value(rng: random.Random) -> str:
    """What gets assigned to a ``secret``/``token``/``api_key`` name."""
    kind = rng.random()
    if kind < 0.3:
        return hex_secret(rng, rng.choice([32, 40, 64]))
    if kind < 0.55:
        return b64_secret(rng)
    if kind < 0.7:
        return str(uuid.UUID(int=rng.getrandbits(128)))  # Heroku-style API keys are UUIDs
    if kind < 0.85:
        return _pick(rng, ALNUM, rng.randint(20, 40))
    return rng.choice(["tok_", "key-", "api_"]) + _pick(rng, ALNUM, 28)


def private_key(rng: random.Random) -> str:
    kind = rng.choice(["RSA ", "EC ", "", "OPENSSH ", "ENCRYPTED "])
    lines = rng.randint(4, 12)
    body = [base64.b64encode(rng.randbytes(48)).decode() for _ in range(lines)]
    body.append(base64.b64encode(rng.randbytes(rng.randint(6, 40))).decode())
    header = f"-----BEGIN {kind}PRIVATE KEY-----"
    footer = f"-----END {kind}PRIVATE KEY-----"
    if kind == "RSA " and rng.random() < 0.3:
        body = ["Proc-Type: 4,ENCRYPTED", f"DEK-Info: AES-128-CBC,{hex_secret(rng, 32).upper()}",
                "", *body]  # fmt: skip
    return "\n".join([header, *body, footer])


# ---------------------------------------------------------------- look-alikes


def git_sha(rng: random.Random) -> str:
    return hex_secret(rng, 40)


def short_sha(rng: random.Random) -> str:
    return hex_secret(rng, rng.choice([7, 8, 10, 12]))


def a_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def sha256_hex(rng: random.Random) -> str:
    return hashlib.sha256(rng.randbytes(16)).hexdigest()


def sha256_digest(rng: random.Random) -> str:
    return "sha256:" + sha256_hex(rng)


def md5_hex(rng: random.Random) -> str:
    return hashlib.md5(rng.randbytes(16)).hexdigest()


def version(rng: random.Random) -> str:
    a, b, c = rng.randint(0, 20), rng.randint(0, 40), rng.randint(0, 200)
    return rng.choice(
        [
            f"{a}.{b}.{c}",
            f"v{a}.{b}.{c}",
            f"{a}.{b}.{c}.{rng.randint(0, 9999)}",
            f"{a}.{b}.{c}-rc.{rng.randint(1, 5)}",
            f"20{rng.randint(18, 26)}.{rng.randint(1, 12)}.{rng.randint(0, 9)}",
            f"10.0.{rng.randint(10000, 26000)}.{rng.randint(100, 5000)}",
            f"{a}.{b}",
        ]
    )


def timestamp(rng: random.Random) -> str:
    y, mo, d = rng.randint(2019, 2026), rng.randint(1, 12), rng.randint(1, 28)
    h, mi, s = rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)
    ms = rng.randint(0, 999)
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    return rng.choice(
        [
            f"{y}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}.{ms:03d}Z",
            f"{y}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d},{ms:03d}",
            f"{y}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}+02:00",
            f"{months[mo - 1]} {d:2d} {h:02d}:{mi:02d}:{s:02d}",
            f"{d:02d}/{months[mo - 1]}/{y}:{h:02d}:{mi:02d}:{s:02d} +0000",
            str(rng.randint(1_600_000_000, 1_790_000_000)),
            str(rng.randint(1_600_000_000_000, 1_790_000_000_000)),
            f"{y}{mo:02d}{d:02d}{h:02d}{mi:02d}{s:02d}",
            f"{mo:02d}/{d:02d}/{y} {h:02d}:{mi:02d}",
        ]
    )


def order_number(rng: random.Random) -> str:
    return rng.choice(
        [
            f"ORD-{rng.randint(2019, 2026)}-{rng.randint(100000, 999999)}",
            f"{_digits(rng, 3)}-{_digits(rng, 7)}-{_digits(rng, 7)}",
            f"INV-{rng.randint(10000, 99999999):08d}",
            f"#{rng.randint(1000000, 99999999)}",
            f"PO {rng.randint(4500000000, 4599999999)}",
            f"{rng.randint(100, 999)}-{rng.randint(1000, 9999)}-{rng.randint(10, 99)}",
            f"SO{rng.randint(100000000, 999999999)}",
        ]
    )


def luhn_failing(rng: random.Random) -> str:
    """A card-shaped 16-digit number whose check digit is wrong."""
    number, groups = _card_digits(rng)
    if len(number) != 16:
        body = "4" + _digits(rng, 14)
        number, groups = body + _luhn_digit(body), (4, 4, 4, 4)
    good = number[-1]
    bad = rng.choice([c for c in string.digits if c != good])
    return _group(number[:-1] + bad, groups, rng.choice(["", " ", "-"]))


def long_id(rng: random.Random) -> str:
    """Numeric ids of card length that are not cards (snowflakes, tracking numbers)."""
    return rng.choice(
        [
            str(rng.randint(10**17, 2 * 10**18)),  # snowflake ids
            "1Z" + _pick(rng, string.ascii_uppercase + string.digits, 16),  # UPS tracking
            "9" + _digits(rng, 15),  # 9xxx: no card network uses it
        ]
    )


def bad_iban(rng: random.Random) -> str:
    country, bban = _iban_parts(rng)
    good = iban_check(country, bban)
    bad = f"{(int(good) + rng.randint(1, 96)) % 97 + 2:02d}"
    if bad == good:
        bad = f"{(int(good) + 1) % 97 + 2:02d}"
    return _iban_print(country + bad + bban, rng.random() < 0.5)


def doc_ipv4(rng: random.Random) -> str:
    return rng.choice(
        [
            f"192.0.2.{rng.randint(1, 254)}",
            f"198.51.100.{rng.randint(1, 254)}",
            f"203.0.113.{rng.randint(1, 254)}",
            "127.0.0.1",
            f"127.0.{rng.randint(0, 9)}.{rng.randint(1, 9)}",
            "0.0.0.0",
        ]
    )


def doc_ipv6(rng: random.Random) -> str:
    return rng.choice(
        ["::1", f"2001:db8::{rng.randint(1, 0xFFFF):x}", f"2001:db8:{rng.randint(1, 0xFFF):x}::1",
         "::", f"2001:0db8:85a3:0000:0000:8a2e:0370:{rng.randint(1, 0xFFFF):04x}"]
    )  # fmt: skip


def cidr(rng: random.Random) -> str:
    return rng.choice(
        ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", f"10.{rng.randint(0, 255)}.0.0/16"]
    )


def netmask(rng: random.Random) -> str:
    return rng.choice(["255.255.255.0", "255.255.0.0", "255.255.255.128", "255.0.0.0"])


def mac(rng: random.Random) -> str:
    return ":".join(f"{rng.randint(0, 255):02x}" for _ in range(6))


def oid(rng: random.Random) -> str:
    return f"1.3.6.1.4.1.{rng.randint(100, 50000)}.{rng.randint(1, 9)}.{rng.randint(1, 99)}"


def isbn(rng: random.Random) -> str:
    return f"978-{rng.randint(0, 9)}-{rng.randint(10, 99)}-{_digits(rng, 6)}-{rng.randint(0, 9)}"


def price(rng: random.Random) -> str:
    return rng.choice(
        [f"${rng.randint(1, 9)},{_digits(rng, 3)}.{_digits(rng, 2)}", f"{rng.randint(1, 999)},99 €"]
    )


def duration(rng: random.Random) -> str:
    return rng.choice(
        [f"{rng.randint(1, 9999)} ms", f"{rng.random() * 100:.3f}s", f"{rng.randint(1, 59)}m{rng.randint(1, 59)}s"]
    )  # fmt: skip


def port(rng: random.Random) -> str:
    return str(rng.choice([80, 443, 5432, 6379, 8080, 8443, 9090, 50051, 3000]))


def arn(rng: random.Random) -> str:
    role = rng.choice(["deploy", "ci-runner", "lambda-exec"])
    return f"arn:aws:iam::{_digits(rng, 12)}:role/{role}"


def image_digest(rng: random.Random) -> str:
    return f"ghcr.io/acme/api@sha256:{sha256_hex(rng)}"


def b64_blob(rng: random.Random) -> str:
    return base64.b64encode(rng.randbytes(rng.randint(60, 120))).decode()


def cursor(rng: random.Random) -> str:
    page = json.dumps({"page": rng.randint(2, 90), "after": rng.randint(1, 10**6)})
    return base64.b64encode(page.encode()).decode()


def placeholder_secret(rng: random.Random) -> str:
    return rng.choice(
        ["${DB_PASSWORD}", "$API_TOKEN", "<your-api-key>", "********", "{{ secrets.TOKEN }}",
         "%(password)s", "[REDACTED]", "", "null", "${{ secrets.NPM_TOKEN }}", "<password>"]
    )  # fmt: skip


def hex_color(rng: random.Random) -> str:
    return f"#{rng.randint(0, 0xFFFFFF):06x}"
