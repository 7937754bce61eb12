"""``zl policy`` and ``zl token``: every subcommand, its exit status and its one-line errors;
``zl policy serve`` as a real HTTPS server with ETags (a subprocess)."""

from __future__ import annotations

import json
import os
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

from actors.policy import verify_caller_token
from actors.relay import load_public_key, token_main
from supervisors.policy_cli import policy_main
from supervisors.tls import generate_dev_certs

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = {
    "iss": "cp",
    "aud": "acme",
    "policy_id": "acme-default",
    "revision": 3,
    "defaults": {"caps": {"timeoutMs": 5000, "maxBytes": 65536}},
    "rules": [
        {
            "id": "notes",
            "tool": "fs.read",
            "versions": "^1.0.0",
            "effect": "allow",
            "devices": ["*"],
            "paths": ["notes/**"],
        },
        {
            "id": "notes-again",
            "tool": "fs.read",
            "versions": "^1.0.0",
            "effect": "allow",
            "devices": ["*"],
            "paths": ["notes/**"],
        },
        {"id": "v9", "tool": "fs.read", "versions": "^9.0.0", "effect": "allow", "devices": ["*"]},
        {
            "id": "secrets",
            "tool": "*",
            "versions": "*",
            "effect": "deny",
            "devices": ["*"],
            "paths": ["secrets/**"],
        },
    ],
}


@pytest.fixture
def signed(tmp_path: Path) -> Path:
    assert policy_main(["keygen", "--out", str(tmp_path / "keys" / "cp.pem")]) == 0
    source = tmp_path / "bundle.json"
    source.write_text(json.dumps(DOCUMENT))
    out = tmp_path / "acme.jws"
    assert (
        policy_main(
            [
                "sign",
                "--key",
                str(tmp_path / "keys" / "cp.pem"),
                "--in",
                str(source),
                "--out",
                str(out),
                "--ttl",
                "600",
            ]
        )
        == 0
    )
    return out


class TestPolicyCommands:
    """keygen, sign, verify, lint, explain."""

    def test_keygen_modes(self, tmp_path: Path) -> None:
        (tmp_path / "keys").mkdir()
        assert policy_main(["keygen", "--out", str(tmp_path / "keys" / "cp.pem")]) == 0
        assert stat.S_IMODE(os.stat(tmp_path / "keys" / "cp.pem").st_mode) == 0o600
        load_public_key(tmp_path / "keys" / "cp.pem.pub")

    def test_verify(self, signed: Path, capsys: pytest.CaptureFixture[str]) -> None:
        keys = signed.parent / "keys"
        assert policy_main(["verify", "--keys", str(keys), str(signed)]) == 0
        assert "OK: acme-default revision 3 for tenant acme" in capsys.readouterr().out
        assert policy_main(["verify", "--keys", str(keys), "--tenant", "globex", str(signed)]) == 1
        assert "wrong_tenant" in capsys.readouterr().err

    def test_verify_a_tampered_bundle(
        self, signed: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        head, body, sig = signed.read_text().strip().split(".")
        signed.write_text(f"{head}.{body}.{sig[::-1]}")
        assert policy_main(["verify", "--keys", str(signed.parent / "keys"), str(signed)]) == 1
        err = capsys.readouterr().err
        assert "rejected" in err
        assert "Traceback" not in err

    def test_lint(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        source = tmp_path / "b.json"
        document = json.loads(json.dumps(DOCUMENT))
        del document["defaults"]
        source.write_text(json.dumps(document))
        assert policy_main(["lint", str(source)]) == 0
        out = capsys.readouterr().out
        assert "rule 'notes-again' is shadowed by the earlier rule 'notes'" in out
        assert "range '^9.0.0' matches no known version of fs.read (1.0.0)" in out
        assert "rule 'notes' allows with no caps" in out
        assert policy_main(["lint", "--strict", str(source)]) == 1

    def test_lint_schema_errors(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        source = tmp_path / "bad.json"
        source.write_text('{"aud": "acme", "aud": "globex"}')
        assert policy_main(["lint", str(source)]) == 1
        assert "duplicate key" in capsys.readouterr().err
        source.write_text(json.dumps({**DOCUMENT, "revision": -1, "rules": [{"id": "x"}]}))
        assert policy_main(["lint", str(source)]) == 1
        out = capsys.readouterr().out
        assert "revision" in out
        assert "rules/0" in out

    @pytest.mark.parametrize(
        ("path", "status", "line"),
        [
            ("notes/a.txt", 0, "allow by rule notes"),
            ("secrets/a", 1, "deny by rule secrets"),
            ("other.txt", 1, "deny by rule default-deny"),
        ],
    )
    def test_explain(
        self, signed: Path, capsys: pytest.CaptureFixture[str], path: str, status: int, line: str
    ) -> None:
        args = [
            "explain",
            "--bundle",
            str(signed),
            "--keys",
            str(signed.parent / "keys"),
            "--tenant",
            "acme",
            "--device",
            "laptop-1",
            "--tool",
            "fs.read",
            "--version",
            "1.0.0",
            "--path",
            path,
        ]
        assert policy_main(args) == status
        out = capsys.readouterr().out
        assert out.startswith(line)
        if status == 0:
            assert "caps: timeoutMs 5000, maxBytes 65536" in out

    def test_sign_refuses_a_bad_document(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert policy_main(["keygen", "--out", str(tmp_path / "cp.pem")]) == 0
        source = tmp_path / "bad.json"
        source.write_text(
            json.dumps({**DOCUMENT, "rules": [{**DOCUMENT["rules"][0], "versions": "nonsense"}]})
        )
        out = tmp_path / "x.jws"
        assert (
            policy_main(
                ["sign", "--key", str(tmp_path / "cp.pem"), "--in", str(source), "--out", str(out)]
            )
            == 1
        )
        assert "not a semver range" in capsys.readouterr().err
        assert not out.exists()

    def test_missing_files_are_one_line_errors(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert policy_main(["lint", str(tmp_path / "nope.json")]) == 2
        assert (
            policy_main(
                [
                    "sign",
                    "--key",
                    str(tmp_path / "nope.pem"),
                    "--in",
                    str(tmp_path / "x"),
                    "--out",
                    str(tmp_path / "y"),
                ]
            )
            == 2
        )
        assert "Traceback" not in capsys.readouterr().err


class TestTokenOut:
    """Every ``zl token`` subcommand writes its files with mode 0600 when given --out."""

    def test_out(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        key = tmp_path / "signing.pem"
        assert token_main(["keygen", "--out", str(key)]) == 0
        for name, extra in (
            (
                "caller",
                [
                    "--tenant",
                    "acme",
                    "--user",
                    "u1",
                    "--device",
                    "laptop-1",
                    "--device",
                    "laptop-2",
                ],
            ),
            ("device", ["--tenant", "acme", "--device-id", "laptop-1"]),
            ("host", ["--tenant", "acme", "--host-id", "h1"]),
        ):
            out = tmp_path / f"{name}.jwt"
            assert token_main([name, "--key", str(key), "--out", str(out), *extra]) == 0
            assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
        claims = verify_caller_token(
            (tmp_path / "caller.jwt").read_text().strip(), [load_public_key(f"{key}.pub")]
        )
        assert claims.devices == frozenset({"laptop-1", "laptop-2"})
        assert "written to" in capsys.readouterr().out


class TestServe:
    """``zl policy serve DIR``: HTTPS, ETags, 304, 404, tenants checked."""

    async def test_serve_over_https(self, tmp_path: Path) -> None:
        certs = generate_dev_certs(tmp_path / "certs")
        bundles = tmp_path / "bundles"
        bundles.mkdir()
        (bundles / "acme.jws").write_text("a.b.c")
        ready = tmp_path / "ready"
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "supervisors",
                "policy",
                "serve",
                str(bundles),
                "--port",
                "0",
                "--dev-certs",
                str(tmp_path / "certs"),
                "--ready-file",
                str(ready),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            with trio.fail_after(30):
                while not (ready.exists() and ready.stat().st_size):
                    assert process.poll() is None
                    await trio.sleep(0.05)
            source = ready.read_text()
            async with httpx.AsyncClient(
                verify=ssl.create_default_context(cafile=str(certs.ca_cert)), timeout=10
            ) as client:
                first = await client.get(source.replace("{tenant}", "acme"))
                assert first.status_code == 200
                assert first.text == "a.b.c"
                etag = first.headers["etag"]
                again = await client.get(
                    source.replace("{tenant}", "acme"), headers={"if-none-match": etag}
                )
                assert again.status_code == 304
                (bundles / "acme.jws").write_text("d.e.f")
                changed = await client.get(
                    source.replace("{tenant}", "acme"), headers={"if-none-match": etag}
                )
                assert changed.status_code == 200
                assert changed.headers["etag"] != etag
                assert (await client.get(source.replace("{tenant}", "globex"))).status_code == 404
                assert (await client.get(source.replace("{tenant}", "..%2Fetc"))).status_code == 404
                assert (await client.post(source.replace("{tenant}", "acme"))).status_code == 405
        finally:
            process.terminate()
            process.wait(timeout=20)

    def test_tls_is_required(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert policy_main(["serve", str(tmp_path)]) == 2
        assert "TLS is required" in capsys.readouterr().err
