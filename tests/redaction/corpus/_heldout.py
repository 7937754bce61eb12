"""A second hand-written batch, written after the detectors and scored before any change
to them: its first score is the figure docs/redaction.md gives for text the detectors were
not written against. Marks as in ``_handwritten.py``.
"""

from __future__ import annotations

# (kind, marked text)
SAMPLES: list[tuple[str, str]] = [
    # ------------------------------------------------------------ positives
    (
        "chat",
        "hey can u check why login fails for ⟦email:FRANK.MILLER@GMX.NET⟧? pw is ⟦password:Fr4nk!e99⟧",
    ),
    ("chat", "my new number: ⟦phone:+1 (646) 555-0187⟧ — old one was disconnected"),
    ("chat", "WhatsApp me on ⟦phone:+31 6 1234 5678⟧ or ⟦phone:+49 1512 3456789⟧"),
    ("chat", "Numéro de portable : ⟦phone:06 12 34 56 78⟧, fixe : ⟦phone:+33 (0)1 42 68 53 00⟧"),
    ("chat", "Kreditkarte: ⟦card:4917 4845 8989 7107⟧ (Visa), bitte nicht speichern"),
    ("chat", "I was charged on ⟦card:5425233430109903⟧ twice, order ORD-2025-448120"),
    ("chat", "transfer to ⟦iban:FR14 2004 1010 0505 0001 3M02 606⟧ please, ref INV-00031337"),
    ("chat", "SSN: ⟦ssn:536-90-4399⟧ DOB 1979-02-11 for the background check"),
    (
        "log",
        "2025-02-11 09:14:07.552 WARN  [http-nio-8080-exec-3] o.a.c.c.C.[.[.[/]: Invalid login for user=⟦email:l.nakamura@tokyo-dev.jp⟧ from=⟦ipv4:126.72.10.200⟧",
    ),
    (
        "log",
        'time="2025-02-11T09:14:07Z" level=error msg="vault: permission denied" token=⟦secret:hvs.CAESIJ8kQmZ3pL2xR7vN4tY9wE1sD6fG0hK3jM5nB8cV2aXz⟧',
    ),
    (
        "log",
        "ERROR [main] DataSource: Cannot connect: jdbc:mysql://reports:⟦url_credentials:R3p0rts#2025⟧@db-02.internal:3306/reports",
    ),
    (
        "log",
        "curl: (22) The requested URL returned error: 403 — https://api.acme.io/v1/export?apikey=⟦secret:6b1e4f2a9c8d7e5f3a2b1c0d9e8f7a6b⟧&format=csv",
    ),
    (
        "log",
        "kernel: [UFW BLOCK] IN=eth0 OUT= SRC=⟦ipv4:185.156.73.54⟧ DST=⟦ipv4:10.0.1.12⟧ PROTO=TCP SPT=44321 DPT=22",
    ),
    (
        "log",
        "sshd[811]: Accepted publickey for deploy from ⟦ipv6:2a02:8071:3e84:a800:4c3b:91ff:fe2d:77a1⟧ port 53211",
    ),
    (
        "env",
        "MAILGUN_API_KEY=⟦secret:key-3ax6xnjp29jd6fds4gc373sgvjxteol0⟧\nMAILGUN_DOMAIN=mg.acme.io\n",
    ),
    (
        "env",
        "SENDGRID_API_KEY=⟦secret: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⟧\n",
    ),
    (
        "env",
        "GITLAB_TOKEN=⟦secret:glpat-9xK2mQ7vR4pL8nB3zT6w⟧\nCI_COMMIT_SHA=4c2d8e9f1a3b5c7d9e0f2a4b6c8d0e1f3a5b7c9d\n",
    ),
    (
        "yaml",
        "stripe:\n  publishable: pk_live_51Mz9QkLmNoPqRsTuVwXyZ\n  secret: ⟦stripe_key:sk_live_51Mz9QkLmNoPqRsTuVwXyZ0a1b2c3d4e5f6g7h8⟧\n",
    ),
    (
        "yaml",
        "redis:\n  url: redis://default:⟦url_credentials:xK9#mP2$vL7⟧@redis-12345.c1.eu-west-1.ec2.cloud.redislabs.com:12345\n",
    ),
    (
        "json",
        '{"access_token":"⟦jwt:eyJhbGciOiJSUzI1NiIsImtpZCI6IjFlOWdkazcifQ.eyJpc3MiOiJodHRwOi8vc2VydmVyLmV4YW1wbGUuY29tIiwic3ViIjoiMjQ4Mjg5NzYxMDAxIn0.NTibBYW_ZoNHGm4ZrWCqYA9oJaxr1AVrJCze6FEcac4t_EuSVtIyYsn6TgQ3_Xd2S8yNcZWTo7g46CrXnwgNK0fKV8t7_x3x3R3MiVXCnpMT9Tw9Cg2S0Y2mdQ7XHJg5tNqGzFq1vhUC6dUqKHz7tPAwbHhtWUL4BqlHi9h4m3gi2gJSzs3PnHyv9LqW3kTqpyXEdmeQ6E2RiyBXz2k8dCfYWg0PrY9rAH3mQIfF5UWkN7LRYojHFvM4tXwu4v3ZVeg3k6AgvKXwQm6Zk1GTiDEJJtM0Oz3KxWzkZPbFBEpPpzUlV2e9HcrqFs5I0W0W9PCnJN9yNlNVQXxWq_vmw⟧","token_type":"Bearer"}',
    ),
    (
        "json",
        '{"card":{"number":"⟦card:6011 0009 9013 9424⟧","exp_month":12,"exp_year":2027,"cvc":"314"}}',
    ),
    (
        "code",
        'const firebaseConfig = {\n  apiKey: "⟦google_key:AIzaSyBvN2rC8mX4pL6kQ9tW3zY7eH1jF5gD0sA⟧",\n  authDomain: "acme-app.firebaseapp.com",\n};\n',
    ),
    (
        "code",
        'client = anthropic.Anthropic(api_key="⟦openai_key:sk-ant-api03-Xy7Kq2Lm9Np4Rs6Tv8Wx0Yz1Ab3Cd5Ef7Gh9Ij1Kl3Mn5Op7Qr9St1Uv3Wx5Yz7Ab9Cd1Ef3Gh5Ij7Kl9Mn1Op3Qr5St7Uv9Wx1YzAA⟧")',
    ),
    (
        "code",
        "ssh-keygen output saved; contents:\n⟦private_key:-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACBpVm9lZ3RqSGZ3cXJ0eXVpb3BsYWtzamRoZmdqa2xtbm9wcQAAAJgAAAAA\n-----END OPENSSH PRIVATE KEY-----⟧\n",
    ),
    (
        "trace",
        "botocore.exceptions.ClientError: An error occurred (InvalidClientTokenId) when calling the GetCallerIdentity operation: The security token included in the request is invalid. (key ⟦aws_key_id:AKIAZ7Q3M5R2X8N4P6TV⟧)",
    ),
    (
        "http",
        "POST /api/login HTTP/1.1\nHost: app.acme.io\nContent-Type: application/x-www-form-urlencoded\n\nusername=⟦email:tom%40acme.io⟧&password=⟦password:s3cr3t%21%21⟧&remember=1",
    ),
    (
        "http",
        "X-API-Key: ⟦secret:live_9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f⟧\nX-Request-Id: 7f3e2a1b-9c8d-4e5f-a6b7-c8d9e0f1a2b3",
    ),
    (
        "markdown",
        "Reach our DPO at ⟦email:privacy@acme-gmbh.de⟧ or call ⟦phone:+49 89 2190 4711⟧ (Mon–Fri).",
    ),
    (
        "csv",
        "id,ip,ua\n991,⟦ipv4:77.111.246.10⟧,Mozilla/5.0\n992,⟦ipv6:2001:16b8:4f61:c300:9d4e:2a1b:7c3f:e810⟧,curl/8.5\n",
    ),
    ("chat", "the wifi password is ⟦password:BlueSky_2025⟧ and the guest one ⟦password:guest1234⟧"),
    # ------------------------------------------------------------ hard negatives
    (
        "log",
        "2025-02-11T09:14:07.552Z INFO  request_id=01JKX9Z3V2Q8M5T7R1N4B6C0DE latency=12.5ms status=200 bytes=18244 path=/healthz",
    ),
    (
        "log",
        "java.lang.OutOfMemoryError: Java heap space at com.acme.cache.Lru.put(Lru.java:88) heap=4294967296 used=4294001122",
    ),
    (
        "log",
        'nginx: 127.0.0.1 - - [11/Feb/2025:09:14:07 +0000] "GET /metrics HTTP/1.1" 200 8112 "-" "Prometheus/2.53.0"',
    ),
    (
        "log",
        "kube-proxy: syncing iptables rules for service ⟦ipv4:10.96.0.1⟧:443 (cluster IP range 10.96.0.0/12)",
    ),
    (
        "chat",
        "Version 3.2.1 is live! Changelog at https://acme.io/changelog#3-2-1 — thanks @maria and @tom",
    ),
    ("chat", "The meeting ID is 845 2231 9097, passcode shared in the invite."),
    ("chat", "call me at extension 4471 or room B-214"),
    ("code", 'PASSWORD_MIN = 12\nTOKEN_EXPIRY_SECONDS = 3600\nAPI_KEY_HEADER = "X-Api-Key"\n'),
    (
        "code",
        "if user.password_hash != hash_password(form.password):\n    raise AuthError('invalid credentials')\n",
    ),
    (
        "code",
        'uuid = "123e4567-e89b-12d3-a456-426614174000"\nsha1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"\n',
    ),
    (
        "json",
        '{"coordinates": [52.520008, 13.404954], "zoom": 12, "tile": "https://tile.osm.org/12/2200/1343.png"}',
    ),
    (
        "json",
        '{"isbn": "978-0-13-468599-1", "pages": 412, "price": {"amount": 44.99, "currency": "USD"}}',
    ),
    (
        "json",
        '{"build": {"number": 18823, "commit": "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3", "duration_ms": 482211}}',
    ),
    (
        "yaml",
        "resources:\n  requests:\n    cpu: 250m\n    memory: 256Mi\nimage: registry.acme.io/api@sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\n",
    ),
    (
        "markdown",
        "| Metric | p50 | p99 |\n|---|---|---|\n| TTFT | 212 ms | 1843 ms |\n| tokens/s | 48.2 | 31.9 |\n",
    ),
    (
        "trace",
        "  File \"/usr/lib/python3.12/asyncio/base_events.py\", line 691, in run_until_complete\n    return future.result()\nKeyError: 'token'",
    ),
    (
        "http",
        "HTTP/2 200\ncontent-type: application/json\ncache-control: max-age=3600\nx-ratelimit-remaining: 4999\nx-github-request-id: C2E1:3B4F:1A2B3C:1B2C3D:67AB1234\n",
    ),
    ("chat", "Our support line is open 9-17; ticket #2025-0211-0042 was escalated."),
    (
        "log",
        "backup: wrote 1,048,576 rows to s3://acme-backups/2025/02/11/orders.parquet (etag 9b2cf535f27731c974343645a3985328)",
    ),
    ("chat", "the secret is to warm the cache first; my key takeaway: measure p99, not the mean"),
]
