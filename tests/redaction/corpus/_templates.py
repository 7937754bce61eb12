"""Templates of the labelled corpus: the kinds of text a model host sees and logs.

A slot ``{class}`` is filled with a generated value of that class and labelled;
``{class|json}`` writes it escaped as inside a JSON string (``|jsonslash`` also escapes
``/`` as ``\\/``, as PHP and some Java encoders do); ``{~name}`` is a look-alike (never
labelled); ``{@name}`` is neutral filler. ``POSITIVE`` templates hold at least one labelled
value; ``NEGATIVE`` templates hold only look-alikes and filler (the hard negatives).
"""

from __future__ import annotations

# (kind, template)
POSITIVE: list[tuple[str, str]] = [
    # ------------------------------------------------------------ chat messages
    ("chat", "Hi, it's {@name}. Can you update my contact details to {email} and {phone}?"),
    ("chat", "my card {card} was charged twice for order {~order}, can you check?"),
    ("chat", "Please wire the refund to {iban}, account holder {@name}."),
    ("chat", "The new IBAN is {iban} (the old one {~bad_iban} was closed)."),
    (
        "chat",
        "why does `git push` fail? I set the remote to https://{@first}:{url_password}@github.com/acme/api.git",
    ),
    (
        "chat",
        "here's my .env, what's wrong?\nDATABASE_URL=postgres://app:{url_password}@{ipv4}:5432/app\nOPENAI_API_KEY={openai_key}\nDEBUG=true",
    ),
    ("chat", "I keep getting 401 with this token {github_token}, is it expired?"),
    ("chat", "my password is {password} and it still says invalid login"),
    ("chat", "Call me on {phone} after 5pm, or mail {email}."),
    ("chat", "SSN {ssn}, DOB 04/12/1987 — please fill in the form for {@name}."),
    ("chat", "Our office number changed to {phone}; the fax stays the same."),
    ("chat", "can you explain this error? botocore says the key {aws_key_id} is invalid"),
    ("chat", "I pasted the wrong thing earlier, that was my real key: {stripe_key}. Ignore it."),
    ("chat", "the server at {ipv4} keeps dropping connections from {ipv4}, logs attached"),
    ("chat", "Customer {@name} ({email}) reports the app crashes on login, device id {~uuid}."),
    ("chat", "Use this for the demo: {google_key} (restricted to our domain)"),
    ("chat", "Try with Authorization: Bearer {bearer} — it worked for me yesterday."),
    ("chat", "My IPv6 is {ipv6}, can you whitelist it? IPv4 {ipv4}."),
    ("chat", "Payment failed for card ending {~last4}: full number {card}, exp 09/27."),
    ("chat", "Ring {phone} or {phone}, whichever is free. Thanks! — {@name}"),
    ("chat", "Slack bot token is {slack_token}; the app id is A0{~short_sha}."),
    ("chat", "Here's the JWT the SPA sends: {jwt}\nWhy is `exp` in the past?"),
    ("chat", "my login: user {@first}, pwd {password}"),
    ("chat", "Contact: {@name} <{email}>, mobile {phone}"),
    ("chat", "Meine Telefonnummer ist {phone}, E-Mail {email}. Grüße, {@name}"),
    ("chat", "Mon numéro : {phone} — merci de ne pas le partager."),
    ("chat", "Mi tarjeta {card} fue rechazada, ¿por qué?"),
    ("chat", "我的邮箱是 {email}，电话 {phone}。"),
    ("chat", "Release {~version} is out (commit {~sha}). Ping {email} with questions."),
    # ------------------------------------------------------------ log lines
    ("log", "{~ts} INFO  auth: login ok user={email} ip={ipv4} session={~uuid}"),
    ("log", "{~ts} WARN  api: rejected request from {ipv4}:{~port} (rate limit), trace={~sha}"),
    (
        "log",
        "{~ts} ERROR db: connection failed: postgresql://svc_api:{url_password}@db-primary.internal:5432/orders",
    ),
    ("log", "{~ts} DEBUG http: GET /v1/items?api_key={secret}&page=2 200 {~duration}"),
    ("log", "{~ts} DEBUG http: > Authorization: Bearer {jwt}"),
    ("log", "{~ts} DEBUG http: > Authorization: Basic {basic}"),
    (
        "log",
        '{~ip_doc} - - [{~clf}] "GET /maps/api/geocode/json?address=Berlin&key={google_key} HTTP/1.1" 200 512',
    ),
    ("log", '{ipv4} - - [{~clf}] "POST /login HTTP/1.1" 302 0 "-" "Mozilla/5.0"'),
    ("log", "{~ts} INFO  payments: charge card={card} amount={~price} order={~order}"),
    (
        "log",
        "{~ts} ERROR worker: failed to load signing key:\n{private_key}\nbecause: unsupported format",
    ),
    ("log", "{~ts} INFO  notify: sms queued to {phone} (template {~short_sha})"),
    ("log", "{~ts} WARN  kyc: document mismatch for ssn={ssn} customer={~uuid}"),
    ("log", "{~ts} INFO  sepa: mandate created iban={iban} ref={~order}"),
    ("log", "{~ts} INFO  conn: accepted [{ipv6}]:{~port} -> [::1]:8443"),
    (
        "log",
        "{~ts} DEBUG env: AWS_ACCESS_KEY_ID={aws_key_id} AWS_SECRET_ACCESS_KEY={aws_secret} AWS_REGION=eu-west-1",
    ),
    (
        "log",
        "{~ts} INFO  ci: cloning https://x-access-token:{github_token}@github.com/acme/infra.git",
    ),
    (
        "log",
        "{~ts} ERROR slack: post to https://hooks.slack.com/services/{slack_webhook} failed: 404",
    ),
    ("log", '{~ts} INFO  request {{"user":"{email}","client_ip":"{ipv4}","latency_ms":{~int}}}'),
    (
        "log",
        "{~ts} INFO  smtp: delivered to={email} relay={~ip_doc} msgid=<{~short_sha}@mx.acme.io>",
    ),
    ("log", "{~ts} WARN  config: password={password} found in plain text in settings.ini"),
    ("log", "{~ts} INFO  x-forwarded-for: {ipv4}, {~ip_doc}, {ipv4}"),
    # ------------------------------------------------------------ config files
    (
        "yaml",
        "database:\n  host: db.internal\n  port: 5432\n  user: orders\n  password: {password}\n  pool_size: 20\n",
    ),
    (
        "yaml",
        'apiVersion: v1\nkind: Secret\nmetadata:\n  name: api-keys\n  resourceVersion: "{~int}"\nstringData:\n  STRIPE_SECRET_KEY: {stripe_key}\n  SLACK_BOT_TOKEN: {slack_token}\n',
    ),
    ("yaml", 'smtp:\n  username: {email}\n  password: "{password}"\n  host: smtp.acme.io\n'),
    (
        "yaml",
        "auth:\n  client_id: {~uuid}\n  client_secret: {secret}\n  token_url: https://login.acme.io/oauth2/token\n  max_tokens: 4096\n",
    ),
    ("yaml", "github:\n  token: {github_token}\n  org: acme\n  sha: {~sha}\n"),
    (
        "toml",
        '[upstream]\nbase_url = "https://api.openai.com/v1"\napi_key = "{openai_key}"\ntimeout_s = 30\n',
    ),
    (
        "toml",
        '[server]\nlisten = "{ipv4}:8443"\nadmin_email = "{email}"\nsession_key = "{high_entropy}"\n',
    ),
    (
        "ini",
        "[database]\nhost = {ipv4}\nuser = report\npasswd = {password}\n\n[mail]\nsender = {email}\n",
    ),
    (
        "env",
        "POSTGRES_PASSWORD={password}\nREDIS_URL=redis://:{url_password}@cache.internal:6379/0\nLOG_LEVEL=info\n",
    ),
    (
        "env",
        "export AWS_ACCESS_KEY_ID={aws_key_id}\nexport AWS_SECRET_ACCESS_KEY={aws_secret}\nexport AWS_DEFAULT_REGION=us-east-1\n",
    ),
    ("env", "STRIPE_KEY={stripe_key}\nSIGNING_KEY={high_entropy}\nAPP_VERSION={~version}\n"),
    ("env", "GOOGLE_API_KEY={google_key}\nGITHUB_TOKEN={github_token}\nNODE_ENV=production\n"),
    (
        "properties",
        "spring.datasource.url=jdbc:mysql://{ipv4}:3306/shop\nspring.datasource.username=shop\nspring.datasource.password={password}\n",
    ),
    (
        "ssh",
        "Host bastion\n  HostName {ipv4}\n  User ops\n  IdentityFile ~/.ssh/id_ed25519\n# key below for the CI runner\n{private_key}\n",
    ),
    # ------------------------------------------------------------ JSON
    (
        "json",
        '{{"user": {{"email": "{email}", "phone": "{phone}", "id": "{~uuid}"}}, "created": "{~ts}"}}',
    ),
    (
        "json",
        '{{"type": "service_account", "project_id": "acme-prod", "private_key_id": "{~sha}", "private_key": "{private_key|json}", "client_email": "{email}"}}',
    ),
    (
        "json",
        '{{"aws": {{"accessKeyId": "{aws_key_id}", "secretAccessKey": "{aws_secret|jsonslash}"}}, "region": "eu-central-1"}}',
    ),
    (
        "json",
        '{{"payment": {{"card_number": "{card}", "amount": {~int}, "currency": "EUR", "order": "{~order}"}}}}',
    ),
    ("json", '{{"beneficiary": {{"name": "{@name}", "iban": "{iban}"}}, "reference": "{~order}"}}'),
    ("json", '{{"headers": {{"Authorization": "Bearer {bearer}", "X-Request-Id": "{~uuid}"}}}}'),
    ("json", '{{"password": "{password|json}", "remember_me": true}}'),
    ("json", '{{"id_token": "{jwt}", "expires_in": 3600, "token_type": "Bearer"}}'),
    ("json", '{{"event": "login", "ip": "{ipv6}", "ua": "curl/8.4.0", "ts": {~epoch}}}'),
    ("json", '{{"webhook_secret": "{stripe_key}", "endpoint": "https://acme.io/hooks/stripe"}}'),
    (
        "json",
        '{{"log": "{~ts} ERROR key load failed\\n{private_key|json}\\n", "stream": "stderr"}}',
    ),
    (
        "json",
        '{{"config": {{"dsn": "mysql://root:{url_password|json}@{ipv4}/prod", "version": "{~version}"}}}}',
    ),
    ("json", '{{"apiKey": "{secret}", "apiVersion": "{~version}", "digest": "{~sha256}"}}'),
    # ------------------------------------------------------------ stack traces
    (
        "trace",
        'Traceback (most recent call last):\n  File "/app/billing.py", line 88, in charge\n    gateway.charge(card)\n  File "/app/gateway.py", line 41, in charge\n    raise PaymentError(f"declined: {{number}}")\nPaymentError: declined: {card}',
    ),
    (
        "trace",
        'Traceback (most recent call last):\n  File "/srv/app/db.py", line 12, in connect\n    return psycopg.connect(url)\npsycopg.OperationalError: connection to server at "{ipv4}", port 5432 failed: password authentication failed for user "app" (url=postgresql://app:{url_password}@{ipv4}/app)',
    ),
    (
        "trace",
        "java.lang.IllegalStateException: invalid credentials for {email}\n\tat com.acme.auth.Login.check(Login.java:57)\n\tat com.acme.auth.Login.run(Login.java:31)",
    ),
    (
        "trace",
        "ValueError: unexpected token 'Bearer {bearer}' in header\n  at parse_header (auth/headers.py:19)",
    ),
    (
        "trace",
        "Error: Request failed with status code 403\n    at createError (node_modules/axios/lib/core/createError.js:16:15)\n  config: {{ headers: {{ 'x-api-key': '{secret}' }} }}",
    ),
    (
        "trace",
        "KeyError: 'phone'\nDuring handling of the above exception: record={{'name': '{@name}', 'tel': '{phone}', 'email': '{email}'}}",
    ),
    # ------------------------------------------------------------ code
    (
        "code",
        'import stripe\n\nstripe.api_key = "{stripe_key}"\n\ndef refund(charge_id: str) -> None:\n    stripe.Refund.create(charge=charge_id)\n',
    ),
    (
        "code",
        'const client = new OpenAI({{ apiKey: "{openai_key}" }});\nconst res = await client.chat.completions.create({{ model: "gpt-4o", max_tokens: 256 }});\n',
    ),
    (
        "code",
        's3 = boto3.client(\n    "s3",\n    aws_access_key_id="{aws_key_id}",\n    aws_secret_access_key="{aws_secret}",\n)\n',
    ),
    (
        "code",
        'func main() {{\n\tdb, err := sql.Open("postgres", "postgres://admin:{url_password}@{ipv4}/app?sslmode=disable")\n\tif err != nil {{\n\t\tlog.Fatal(err)\n\t}}\n}}\n',
    ),
    (
        "code",
        "curl -H 'Authorization: Bearer {bearer}' -H 'Content-Type: application/json' https://api.acme.io/v2/orders/{~uuid}",
    ),
    (
        "code",
        "curl -u {@first}:{password} https://build.acme.io/job/release/buildWithParameters?token={secret}",
    ),
    (
        "code",
        'TEST_USERS = [\n    {{"email": "{email}", "phone": "{phone}"}},\n    {{"email": "{email}", "phone": "{phone}"}},\n]\n',
    ),
    ("code", 'headers = {{"Authorization": f"Bearer {{token}}", "X-Api-Key": "{secret}"}}\n'),
    ("code", '# fixture\nCARD = "{card}"  # charged in test_refund\nIBAN = "{iban}"\n'),
    ("code", 'app.config["SECRET_KEY"] = "{secret}"\napp.config["SESSION_COOKIE_NAME"] = "sid"\n'),
    # ------------------------------------------------------------ Markdown
    (
        "markdown",
        "## Contacts\n\n| who | email | phone |\n|---|---|---|\n| {@name} | {email} | {phone} |\n| {@name} | {email} | {phone} |\n",
    ),
    (
        "markdown",
        "### Incident 2024-03-02\n\nThe leaked key `{aws_key_id}` was rotated at {~ts}; the attacker came from `{ipv4}`.\n",
    ),
    (
        "markdown",
        "To reproduce, run:\n\n```sh\nexport SLACK_TOKEN={slack_token}\npython notify.py --channel ops\n```\n",
    ),
    (
        "markdown",
        "> **Note**: staging DB is `postgres://qa:{url_password}@{ipv4}:5432/qa` — do not share.\n",
    ),
    ("markdown", "Payment test cards that *are* real (do not commit!): {card}, {card}.\n"),
    # ------------------------------------------------------------ e-mail and CSV
    (
        "email",
        "From: {@name} <{email}>\nTo: {email}\nSubject: Re: invoice {~order}\n\nHi,\nplease debit {iban}.\n\nBest,\n{@name}\nMobile: {phone}\n",
    ),
    (
        "csv",
        "id,name,email,phone,card\n{~int},{@name},{email},{phone},{card}\n{~int},{@name},{email},{phone},{card}\n",
    ),
    (
        "csv",
        "timestamp,src_ip,dst_ip,bytes\n{~ts},{ipv4},{~ip_doc},{~int}\n{~ts},{ipv6},{~ip_doc},{~int}\n",
    ),
    (
        "http",
        "POST /v1/chat/completions HTTP/1.1\nHost: api.openai.com\nAuthorization: Bearer {openai_key}\nContent-Type: application/json\nContent-Length: {~int}\n",
    ),
    (
        "http",
        "GET /api/v3/users/me HTTP/1.1\nHost: api.github.com\nAuthorization: token {github_token}\nUser-Agent: ci/{~version}\n",
    ),
    (
        "http",
        "HTTP/1.1 302 Found\nLocation: https://app.acme.io/callback#access_token={jwt}&token_type=bearer&expires_in=3600\n",
    ),
    (
        "http",
        "GET /export?format=csv&access_token={secret} HTTP/1.1\nHost: reports.acme.io\nX-Real-IP: {ipv4}\n",
    ),
]

NEGATIVE: list[tuple[str, str]] = [
    # ------------------------------------------------------------ chat messages
    (
        "chat",
        "Deployed {~version} (commit {~sha}) to prod at {~ts}, rollback to {~version} if needed.",
    ),
    ("chat", "Order {~order} shipped, tracking {~long_id}; the invoice is {~order}."),
    ("chat", "I forgot my password, how do I reset it? The reset link from {~ts} expired."),
    ("chat", "The password must be at least 12 characters and the token expires after 3600 s."),
    ("chat", "Can you check request {~uuid}? It took {~duration} and returned 504."),
    ("chat", "my card number is hidden as **** **** **** {~last4} in the app, is that right?"),
    ("chat", "The meeting moved to {~ts}, room 415, call-in code {~pin}."),
    ("chat", "Our test server is at {~ip_doc} and the local one at {~ip_doc}:{~port}."),
    ("chat", "The checksum is {~sha256} and the old build's was {~md5}."),
    ("chat", "Price went from {~price} to {~price}, that's +{~small}% in a year."),
    ("chat", "+1 on this, the {~version} release notes look good"),
    ("chat", "Is {~long_id} a valid card? The app says the number fails the check."),
    ("chat", "This IBAN {~bad_iban} was rejected by the bank as invalid, why?"),
    ("chat", "The card {~luhn_bad} was refused as not a valid number, which makes sense."),
    ("chat", "What does `git@github.com:acme/api.git` mean vs the https URL?"),
    ("chat", "Use `npm i @acme/ui@{~version}` and import icons from `assets/logo@2x.png`."),
    ("chat", "I'll be there between 10:30 and 11:45, ticket 2024-0311-07."),
    ("chat", "Die Bestellung {~order} kam am {~ts} an, Rechnung über {~price}."),
    ("chat", "版本 {~version} 已发布，提交 {~sha}。"),
    # ------------------------------------------------------------ logs
    ("log", "{~ts} INFO  http: GET /v1/orders/{~uuid} 200 {~duration} pid={~int}"),
    ("log", "{~ts} INFO  build: image {~image_digest} pushed, layers={~small}"),
    (
        "log",
        "{~ts} DEBUG audit: receipt call_id={~uuid} args_digest={~sha256_digest} result_digest={~sha256_digest}",
    ),
    ("log", "{~ts} INFO  git: fetched {~sha}..{~sha} ({~small} commits)"),
    ("log", "{~ts} INFO  listen: serving on {~ip_doc}:{~port} and [::1]:{~port}"),
    ("log", "{~ts} WARN  net: route {~cidr} via {~ip_doc} netmask {~netmask}"),
    ("log", "{~ts} INFO  dhcp: lease for {~mac} renewed"),
    ("log", "{~ts} INFO  snmp: polled {~oid} = {~int}"),
    ("log", "{~ts} INFO  usage: tokens in={~int} out={~int} max_tokens=4096 budget_left={~int}"),
    ("log", "{~ts} INFO  auth: password reset requested for user_id={~int} (token sent by mail)"),
    ("log", "{~ts} INFO  billing: invoice {~order} total {~price} due {~ts}"),
    ("log", "{~ts} ERROR payments: card rejected: number failed validation ({~luhn_bad})"),
    ("log", "{~ts} INFO  sepa: IBAN check failed for {~bad_iban}"),
    ("log", "{~ts} INFO  k8s: pod api-{~short_sha}-{~short_sha} ready, resourceVersion={~int}"),
    ("log", '{~ts} INFO  s3: put object etag="{~md5}" size={~int}'),
    ("log", "{~ts} DEBUG iam: assumed {~arn} for session {~uuid}"),
    ("log", "{~ts} INFO  uploads: stored {~b64_blob_short}... ({~int} bytes)"),
    ("log", "{~ts} INFO  metrics: p50={~duration} p95={~duration} p99={~duration} rps={~int}"),
    ("log", "{~ts} INFO  windows agent {~version} on build 10.0.19045.3803 connected"),
    # ------------------------------------------------------------ config
    (
        "yaml",
        "database:\n  host: db.internal\n  port: 5432\n  password: ${{DB_PASSWORD}}\n  password_min_length: 12\n",
    ),
    (
        "yaml",
        "image: ghcr.io/acme/api:{~version}\ndigest: {~sha256_digest}\nreplicas: 3\nresources:\n  limits:\n    memory: 512Mi\n",
    ),
    (
        "yaml",
        "auth:\n  token_ttl_s: 3600\n  token_url: https://login.acme.io/oauth2/token\n  password_policy: strong\n  api_key: {~placeholder}\n",
    ),
    (
        "yaml",
        "steps:\n  - run: npm publish\n    env:\n      NODE_AUTH_TOKEN: ${{{{ secrets.NPM_TOKEN }}}}\n",
    ),
    (
        "toml",
        '[tool.poetry]\nversion = "{~version}"\n\n[tool.poetry.dependencies]\npython = "^3.11"\nrequests = "{~version}"\n',
    ),
    ("ini", "[net]\nlisten = 127.0.0.1\nallow = {~cidr}\nmask = {~netmask}\ngateway = {~ip_doc}\n"),
    ("env", "DB_PASSWORD=\nAPI_TOKEN=${{API_TOKEN}}\nMAX_TOKENS=4096\nTOKEN_TTL=3600\n"),
    ("env", "BUILD_SHA={~sha}\nBUILD_TIME={~epoch}\nRELEASE={~version}\n"),
    # ------------------------------------------------------------ JSON
    (
        "json",
        '{{"id": "{~uuid}", "sha": "{~sha}", "created_at": "{~ts}", "version": "{~version}"}}',
    ),
    (
        "json",
        '{{"receipt": {{"call_id": "{~uuid}", "args_digest": "{~sha256_digest}", "result_digest": "{~sha256_digest}", "elapsed_ms": {~int}}}}}',
    ),
    ("json", '{{"next_cursor": "{~cursor}", "count": {~int}, "items": []}}'),
    ("json", '{{"password": "{~placeholder}", "password_hint": "your pet", "min_length": 12}}'),
    (
        "json",
        '{{"usage": {{"prompt_tokens": {~int}, "completion_tokens": {~int}, "total_tokens": {~int}}}}}',
    ),
    (
        "json",
        '{{"order": "{~order}", "total": "{~price}", "tracking": "{~long_id}", "placed": "{~ts}"}}',
    ),
    ("json", '{{"etag": "W/\\"{~md5}\\"", "last_modified": "{~ts}", "size": {~int}}}'),
    ("json", '{{"image": "{~b64_blob}", "mime": "image/png"}}'),
    ("json", '{{"color": "{~hex}", "font": "Inter", "scale": "@2x", "icon": "icon@2x.png"}}'),
    (
        "json",
        '{{"listen": "{~ip_doc}", "peers": ["{~ip_doc}", "[::1]:7000"], "mask": "{~netmask}"}}',
    ),
    ("json", '{{"iban": "{~bad_iban}", "valid": false, "error": "checksum"}}'),
    ("json", '{{"card": "{~luhn_bad}", "valid": false}}'),
    # ------------------------------------------------------------ stack traces
    (
        "trace",
        'Traceback (most recent call last):\n  File "/app/main.py", line {~small}, in <module>\n    run()\n  File "/app/main.py", line {~small}, in run\n    raise TimeoutError("request {~uuid} timed out after 30 s")\nTimeoutError: request {~uuid} timed out after 30 s',
    ),
    (
        "trace",
        "java.lang.NullPointerException: null\n\tat com.acme.orders.Service.load(Service.java:{~small})\n\tat com.acme.orders.Api.get(Api.java:{~small})\n\tat java.base/java.lang.Thread.run(Thread.java:1583)",
    ),
    (
        "trace",
        "panic: runtime error: index out of range [5] with length 5\n\ngoroutine 1 [running]:\nmain.main()\n\t/src/main.go:14 +0x1d\nexit status 2",
    ),
    (
        "trace",
        "error[E0382]: borrow of moved value: `token`\n  --> src/auth.rs:42:9\n   |\n42 |     use_token(token);\n   |               ----- value moved here",
    ),
    # ------------------------------------------------------------ code
    (
        "code",
        "def login(user: str, password: str) -> Session:\n    token = make_token(user, password=password)\n    return Session(token=token, ttl=3600)\n",
    ),
    (
        "code",
        'client = OpenAI(api_key=os.environ["OPENAI_API_KEY"])\nresp = client.chat.completions.create(model="gpt-4o", max_tokens=512)\n',
    ),
    (
        "code",
        "const token = process.env.GITHUB_TOKEN;\nconst secret = await vault.read('kv/app/secret');\n",
    ),
    (
        "code",
        'assert hashlib.sha256(data).hexdigest() == "{~sha256}"\nassert uuid.UUID("{~uuid}").version == 4\n',
    ),
    ("code", "password = getpass.getpass()\napi_key = settings.API_KEY\nsecret = self.secret\n"),
    ("code", 'PHONE_RE = re.compile(r"\\+?[0-9 ()-]{{7,}}")\nCARD_LEN = 16\n'),
    ("code", 'for i in range(1, 255):\n    addr = f"10.0.0.{{i}}"\n    ping(addr, timeout=0.5)\n'),
    (
        "code",
        'std::vector<int> v{{1, 2, 3}};\nstd::map<std::string, int> m;\nauto it = m.find("a::b");\n',
    ),
    ("code", "SELECT id, created_at FROM orders WHERE id = '{~uuid}' AND total > 1000.00;\n"),
    ("code", '// color palette\nconst PRIMARY = "{~hex}";\nconst SECONDARY = "{~hex}";\n'),
    # ------------------------------------------------------------ Markdown
    (
        "markdown",
        "## Changelog\n\n- {~version}: fix crash on empty config ({~short_sha})\n- {~version}: faster startup ({~short_sha})\n",
    ),
    (
        "markdown",
        "Examples use the documentation ranges: `{~ip_doc}`, `{~ip_doc}` and `{~ip6_doc}`.\n",
    ),
    (
        "markdown",
        "| build | sha | date |\n|---|---|---|\n| {~version} | `{~sha}` | {~ts} |\n| {~version} | `{~sha}` | {~ts} |\n",
    ),
    (
        "markdown",
        "Set `password` in `config.yaml` (never commit it); see ISBN {~isbn} chapter 4.\n",
    ),
    ("markdown", "The OID {~oid} identifies the MIB; the MAC {~mac} is the lab switch.\n"),
    (
        "csv",
        "sku,price,qty,order\nA-{~int},{~price},{~small},{~order}\nB-{~int},{~price},{~small},{~order}\n",
    ),
    (
        "http",
        'GET /v1/items?page=2&per_page=50 HTTP/1.1\nHost: {~ip_doc}:8080\nIf-None-Match: "{~md5}"\nX-Request-Id: {~uuid}\n',
    ),
    (
        "http",
        'HTTP/1.1 200 OK\nETag: "{~sha256}"\nDate: Tue, 15 Oct 2024 10:23:45 GMT\nContent-Length: {~int}\n',
    ),
]
