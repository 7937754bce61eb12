"""Hand-written samples: real-world shapes the templates do not make.

Each labelled value is marked ``⟦class:value⟧`` (the marks are removed from the text and
become labels); a sample without a mark is a hard negative. They were written to catch
the detectors out: bare digits with context, CLI flags, Kubernetes YAML whose ``key:`` is
not a key, shell output, extensions after phone numbers, values split across escapes.
"""

from __future__ import annotations

# (kind, marked text)
SAMPLES: list[tuple[str, str]] = [
    # ------------------------------------------------------------ positives
    ("chat", "text me at ⟦phone:4155550199⟧ when you land"),
    ("chat", "My cell: ⟦phone:+44 (0)7700 900461⟧, office ⟦phone:+44 20 7946 0321⟧ ext. 204"),
    (
        "markdown",
        "[Call us](tel:⟦phone:+1-212-555-0147⟧) or [mail us](mailto:⟦email:help.desk@brightline.travel⟧)",
    ),
    ("chat", "the password for the admin account is ⟦password:Xy9!rT4#q⟧, please change it"),
    ("code", "mysql -h ⟦ipv4:10.20.30.41⟧ -u root -p⟦password:Sup3rS3cret⟧ shop < dump.sql"),
    ("code", "docker run -e POSTGRES_PASSWORD=⟦password:pg-Adm1n-2024⟧ -p 5432:5432 postgres:16"),
    (
        "config",
        "Server=tcp:sql-prod.acme.io,1433;Database=orders;User Id=sa;Password=⟦password:Wint3r$Is#Coming⟧;Encrypt=true;",
    ),
    (
        "config",
        "jdbc:postgresql://db.internal:5432/app?user=app&password=⟦password:hun7er-two⟧&ssl=true",
    ),
    (
        "config",
        "DefaultEndpointsProtocol=https;AccountName=acmelogs;AccountKey=⟦high_entropy:Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6QUJDREVGR0g9PQ==⟧;EndpointSuffix=core.windows.net",
    ),
    (
        "yaml",
        "tls:\n  key: |\n    ⟦private_key:-----BEGIN EC PRIVATE KEY-----\n    MHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oZlUh3fKj0PzoAoGCCqGSM49\n    AwEHoUQDQgAE3o5C2Cq0s8tHQ0Qk1mZk3F7y0g8yP2R3sU5u3x1p2f3kqJ2k9a8Y\n    -----END EC PRIVATE KEY-----⟧\n",
    ),
    (
        "log",
        "2024-05-02 11:04:19,331 ERROR [auth] bad signature for token ⟦jwt:eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c⟧",
    ),
    (
        "log",
        "Cookie: _ga=GA1.2.1234567890.1700000000; session=⟦jwt:eyJhbGciOiJIUzI1NiJ9.eyJ1aWQiOjQyLCJyb2xlIjoiYWRtaW4ifQ.pY0Gm5cW8r2s7bW0mR0oK3xqM5vJ8nL1kT6dA9fHq2E⟧; theme=dark",
    ),
    ("json", '{"msg": "login", "user": "⟦email:o\'brien.k@post.ie⟧", "mfa": "totp"}'),
    (
        "json",
        '{"secret_access_key": "⟦aws_secret:9drTJvcXLB89EXAMPLEKEYQ\\/jH3zrfLk\\/ZKvA2mx⟧", "key_id": "⟦aws_key_id:AKIAQ3EGRIOSFODN7XYZ⟧"}',
    ),
    ("json", '{"text": "my card is ⟦card:4242 4242 4242 4242⟧ and exp 12/29", "lang": "en"}'),
    ("chat", "IBAN: ⟦iban:DE44 5001 0517 5407 3249 31⟧ (Deutsche Bank), BIC INGDDEFFXXX"),
    ("chat", "Rekening: ⟦iban:NL91ABNA0417164300⟧, t.n.v. J. de Vries"),
    ("chat", "my social is ⟦ssn:219-09-9999⟧, and my wife's ⟦ssn:457-55-5462⟧"),
    (
        "log",
        "May  3 08:12:44 web01 sshd[2214]: Failed password for invalid user admin from ⟦ipv4:185.220.101.4⟧ port 50432 ssh2",
    ),
    (
        "log",
        "upstream timed out (110: Connection timed out) while reading response header from upstream, client: ⟦ipv4:91.198.174.192⟧, server: api.acme.io",
    ),
    ("log", "conn from [⟦ipv6:2001:41d0:302:2200::1a3⟧]:51514 accepted, tls=1.3"),
    ("log", "peer=⟦ipv6:fe80::a00:27ff:fe4e:66a1⟧%eth0 state=ESTABLISHED"),
    ("log", "X-Forwarded-For: ⟦ipv4:81.2.69.160⟧, 10.0.0.0/8 allowed, via ⟦ipv4:172.31.4.18⟧"),
    (
        "http",
        "GET /oauth/callback?code=4%2F0Adeu5BW&state=xyz&access_token=⟦secret:ya29.a0AfB_byC1lPq2Tm7vGk9XwQzLr3sDf8HjKl2MnBv4cXz⟧ HTTP/2",
    ),
    (
        "http",
        "curl 'https://api.stripe.com/v1/charges' -u ⟦stripe_key:sk_live_51HxYz2KqLmNoPqRsTuVwXyZ0123456789AbCdEf⟧:",
    ),
    (
        "http",
        "git clone https://oauth2:⟦url_credentials:glpat-Xk3rT9vBq2LmN8pZs4Wd⟧@gitlab.acme.io/infra/terraform.git",
    ),
    (
        "http",
        "proxy: http://⟦email:svc.proxy@corp.acme.com⟧:⟦url_credentials:Pr0xy!Pass⟧@proxy.corp.acme.com:3128",
    ),
    (
        "code",
        'const webhook = "https://hooks.slack.com/services/⟦slack_token:T024BE7LD/B08NNQ8E2QK/x4Dq9Zr2LmWp8KtV3nBs6YcH⟧";',
    ),
    (
        "code",
        'GITHUB_TOKEN = "⟦github_token:ghp_R8kT2mVq9XwL4pZs7NbC1dFh6JyG3aEo5uIt⟧"  # TODO remove',
    ),
    (
        "code",
        'openai.api_key = os.getenv("OPENAI_API_KEY", "⟦openai_key:sk-proj-Qm3x9ZrT2kLpWv8Yb4Nc6Hd1Js7Gf5Ae0Ru-Ti_Oy2Pq4Lm6Nk8Jh⟧")',
    ),
    (
        "chat",
        "key for maps: ⟦google_key:AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY⟧ (the old one is dead)",
    ),
    (
        "chat",
        "bot token xoxb in the vault is ⟦slack_token:xoxb-2048934187-5203947182736-KpLm9QzRt3VwXy7NbCdEfGhJ⟧",
    ),
    (
        "env",
        "# prod\nexport TF_VAR_db_password='⟦password:c0rrect horse battery staple⟧'\nexport TF_VAR_region=eu-west-1\n",
    ),
    (
        "env",
        "NPM_CONFIG_//registry.npmjs.org/:_authToken=⟦secret:npm_8fKq2LmZt4Rv7XwN1bCd3Hj6Pq9Ys0TgUe5A⟧\n",
    ),
    ("yaml", "spring:\n  mail:\n    password: >-\n      ⟦password:Gm@il-App-Pass-2024⟧\n"),
    ("json", '{"Authorization": "Basic ⟦bearer:YWRtaW46U3VwM3JTM2NyZXQh⟧"}'),
    (
        "trace",
        "requests.exceptions.HTTPError: 401 Client Error: Unauthorized for url: https://api.acme.io/v1/me?token=⟦secret:f3a9c2e1b7d4068a5c9e2f1b3d7a6c4e⟧",
    ),
    (
        "trace",
        'sqlalchemy.exc.OperationalError: (psycopg2.OperationalError) FATAL:  password authentication failed for user "report"\n(Background on this error at: https://sqlalche.me/e/20/e3q8)\n[SQL: connect to postgresql+psycopg2://report:⟦url_credentials:R3p0rt!ng⟧@⟦ipv4:10.4.12.7⟧/dw]',
    ),
    (
        "email",
        "Hi team,\n\nplease call me back on ⟦phone:0044 20 7946 0877⟧ or ⟦phone:(212) 555-0163⟧.\n\n--\n⟦email:m.lindqvist@nordlys.se⟧ | ⟦phone:+46 70 123 45 67⟧",
    ),
    (
        "csv",
        "name;telefon;email\nJan Kowalski;⟦phone:+48 601 234 567⟧;⟦email:jan.kowalski@wp.pl⟧\nAnna Nowak;⟦phone:+48 512 345 678⟧;⟦email:anowak@onet.pl⟧\n",
    ),
    ("chat", "電話番号は ⟦phone:090-1234-5678⟧ です。メールは ⟦email:tanaka.hiro@example.co.jp⟧"),
    (
        "chat",
        "Mi número es ⟦phone:+34 612 34 56 78⟧ y mi correo ⟦email:lucia.fernandez@telefonica.es⟧",
    ),
    ("chat", "Kartennummer ⟦card:5555-5555-5555-4444⟧, gültig bis 03/27, Prüfziffer 737"),
    ("chat", "amex ⟦card:3714 496353 98431⟧ please"),
    ("log", "stripe: charge failed for pan=⟦card:4000056655665556⟧ reason=card_declined"),
    (
        "markdown",
        "| env | key |\n|---|---|\n| prod | `⟦stripe_key:rk_live_4eC39HqLyjWDarjtT1zdp7dc⟧` |\n",
    ),
    (
        "log",
        "Exception in thread \"main\" java.sql.SQLException: Access denied for user 'root'@'⟦ipv4:10.9.8.7⟧' (using password: YES)",
    ),
    (
        "log",
        "[2024-06-01T12:00:00Z] DEBUG env dump: {'HOME': '/root', 'API_KEY': '⟦secret:4e7b1c9a2f6d8e3b5a0c7f1e9d2b4a6c⟧', 'LANG': 'C.UTF-8'}",
    ),
    (
        "log",
        'payload={"email":"⟦email:ceo@bigcorp.example.com⟧","password":"⟦password:Tr1cky\\"Quote⟧"}',
    ),
    ("ssh", "ssh -i ~/.ssh/deploy.pem ec2-user@⟦ipv4:54.93.12.201⟧ 'sudo systemctl restart api'"),
    # ------------------------------------------------------------ hard negatives
    (
        "yaml",
        "affinity:\n  nodeAffinity:\n    requiredDuringSchedulingIgnoredDuringExecution:\n      nodeSelectorTerms:\n        - matchExpressions:\n            - key: kubernetes.io/hostname\n              operator: In\n              values: [node-a, node-b]\n",
    ),
    (
        "yaml",
        "env:\n  - name: DB_PASSWORD\n    valueFrom:\n      secretKeyRef:\n        name: db-credentials\n        key: password\n",
    ),
    ("shell", "$ pwd\n/home/deploy/releases/20240601120000\n$ ls\nconfig  current  shared\n"),
    ("chat", "Phone: N/A, fax: none, email: (not provided)"),
    ("log", "2024-06-01 10:00:01 INFO tracking 1Z999AA10123456784 delivered, zip 94105-1234"),
    ("log", "geo: lat=37.7749 lon=-122.4194 accuracy=65.0 m"),
    ("chat", "Bank sort code 20-00-00 is the branch, not an account."),
    ("log", "build 20240115.3 finished in 1742 s (agent pool 7, queue 3)"),
    ("code", 'pattern = r"\\d{3}-\\d{2}-\\d{4}"  # SSN shape, used to validate input'),
    ("code", 'path = "C:\\Users\\Public\\new\\test.txt"\nprint(path)\n'),
    (
        "git",
        "Merge pull request #1234 from acme/feature/login-rate-limit\n\ncommit 9fceb02d0ae598e95dc970b74767f19372d61af8\nAuthor: CI Bot <noreply@github.com>\n".replace(
            "noreply@github.com", "ci-bot"
        ),
    ),
    (
        "json",
        '{"lockfileVersion": 3, "packages": {"node_modules/lodash": {"version": "4.17.21", "integrity": "sha512-v2kDEe57lecTulaDIuNTPy3Ry4gLGJ6Z1O3vE1krgXZNrsQ+LFTGHVxVjcXPs17LhbZVGedAJv8XZ1tvj5FvSg=="}}}',
    ),
    ("json", '{"token_type": "Bearer", "expires_in": 3599, "scope": "openid email"}'),
    (
        "code",
        'headers = {"Authorization": "Bearer <token>"}\nrequests.get(url, headers=headers, timeout=10)',
    ),
    (
        "shell",
        'curl -H "Authorization: Bearer $ACCESS_TOKEN" -H "X-Api-Key: ${API_KEY}" https://api.acme.io/v1/ping',
    ),
    (
        "yaml",
        "jobs:\n  deploy:\n    steps:\n      - uses: actions/checkout@v4\n      - run: ./deploy.sh\n        env:\n          TOKEN: ${{ secrets.DEPLOY_TOKEN }}\n          GH_TOKEN: ${{ github.token }}\n",
    ),
    (
        "log",
        "2024-06-01T10:00:00.000Z warn  password policy: min_length=12 require_symbols=true history=5",
    ),
    ("chat", "The secret to fast builds is caching; our token budget is 100000 per day."),
    (
        "log",
        "tls: cert sha256 fingerprint 3A:7F:9C:12:0B:44:DE:88:1F:2A:6B:90:CC:31:5D:E7:48:02:AB:6F:9E:13:77:C4:D0:58:21:E9:3B:A6:0F:5C",
    ),
    (
        "log",
        "dhcp: DHCPACK on 0.0.0.0 to 02:42:ac:11:00:02 via eth0, netmask 255.255.255.0, broadcast 255.255.255.255",
    ),
    (
        "markdown",
        "Use `127.0.0.1:8080` locally and `[::1]:8080` for IPv6; the docs use `192.0.2.10` and `2001:db8::10`.",
    ),
    (
        "code",
        "if (phone.length < 10 || phone.length > 15) { throw new Error('phone must have 10-15 digits'); }",
    ),
    ("log", "order_id=100200300400 amount=129.99 currency=EUR items=3 ts=1717236000123"),
    ("json", '{"ean": "4006381333931", "sku": "KB-2024-US", "price": 49.9}'),
    ("chat", "Flight LH 1234 leaves at 14:35 from gate B23, seat 17A, booking ref X7KQ2P."),
    ("log", "ratelimit: key=user:8812 bucket=60s remaining=57 reset=1717236060"),
    ("config", "[cache]\nkey_prefix = api:v2:\nsession_key_ttl = 3600\ncookie_name = sid\n"),
    (
        "code",
        "def check_password(password: str, hashed: bytes) -> bool:\n    return bcrypt.checkpw(password.encode(), hashed)\n",
    ),
    (
        "log",
        "2024-06-01 10:00:00 INFO k8s: secret default/db-credentials updated (resourceVersion 4820311)",
    ),
    (
        "json",
        '{"id": "01HZX3K9V2Q8M5T7R1N4B6C0DE", "created": "2024-06-01T10:00:00Z", "etag": "\\"33a64df551425fcc55e4d42a148795d9f25f89d4\\""}',
    ),
    ("chat", "Is 4111 1111 1111 1112 valid? The checkout says the number is wrong."),
    ("chat", "Our IBAN in the docs is DE00 1234 5678 9012 3456 78 (a placeholder)."),
    ("log", "math: 12345678 * 87654321 = 1082152022374638, checksum 0x7f3a"),
    ("chat", "Version 10.4.12.3 fixed it; before that 10.4.11.9 crashed."),
    ("chat", "see RFC 5737: 198.51.100.0/24 and 203.0.113.0/24 are for documentation"),
]
