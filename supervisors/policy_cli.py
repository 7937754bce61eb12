"""``zl policy``: write, sign, check and serve policy bundles.

::

    zl policy keygen --out cp.pem                      # cp.pem (0600) and cp.pem.pub
    zl policy lint bundle.json                          # schema, shadowed rules, ranges, caps
    zl policy sign --key cp.pem --in bundle.json --out acme.jws --ttl 900
    zl policy verify --keys DIR acme.jws                # signature, tenant, TTL, time
    zl policy explain --bundle acme.jws --tenant acme --device laptop-1 \\
        --tool fs.read --version 1.0.0 --path notes/a.txt
    zl policy serve DIR --dev-certs .zl/certs          # HTTPS, one <tenant>.jws per tenant

Exit status: 0 on success (``explain``: the call is allowed), 1 when the check fails
(``explain``: denied), 2 for bad arguments or files that cannot be read.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from actors.policy import (
    ANY,
    DEFAULT_CLOCK_SKEW_S,
    DEFAULT_MAX_TTL_S,
    BundleRejected,
    CallRequest,
    PolicyBundle,
    VersionRange,
    bundle_validator,
    decide,
    is_version,
    keys_by_id,
    sign_bundle,
    unsigned_bundle,
    unverified_claims,
    verify_bundle,
)
from actors.relay import (
    KeyFileError,
    generate_signing_key,
    key_id,
    load_private_key,
    load_public_key,
    save_private_key,
    save_public_key,
)
from actors.strict_json import StrictJsonError, loads
from actors.tools import tool_contracts

MAX_DOCUMENT_BYTES = 256 * 1024


class _Fail(Exception):
    """A one-line error for the user; ``status`` is the exit status."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


def _read_json(path: Path) -> Any:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _Fail(f"cannot read {path}: {exc.strerror}") from None
    try:
        return loads(data, max_bytes=MAX_DOCUMENT_BYTES)
    except StrictJsonError as exc:
        raise _Fail(f"{path} is not strict JSON: {exc}", status=1) from None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeError) as exc:
        raise _Fail(f"cannot read {path}: {exc}") from None


def _keys(directory: Path) -> dict[str, Any]:
    """Every Ed25519 public key in ``directory`` (``*.pub``, or a single key file)."""
    paths = sorted(directory.glob("*.pub")) if directory.is_dir() else [directory]
    if not paths:
        raise _Fail(f"no public keys (*.pub) in {directory}")
    try:
        return keys_by_id(tuple(load_public_key(path) for path in paths))
    except KeyFileError as exc:
        raise _Fail(str(exc)) from None


def _claims_of(jws: str) -> dict[str, Any]:
    """The claims of a JWS read without checking its signature (to know its tenant)."""
    try:
        return unverified_claims(jws)
    except BundleRejected as exc:
        raise _Fail(f"not a policy bundle: {exc.message}", status=1) from None


def cmd_keygen(args: argparse.Namespace) -> int:
    key = generate_signing_key()
    public = f"{args.out}.pub"
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        save_private_key(key, args.out)
        save_public_key(key.public_key(), public)
    except OSError as exc:
        raise _Fail(f"cannot write the key: {exc}") from None
    print(
        f"private key {args.out} (kid {key_id(key.public_key())}): keep it with the control plane"
    )
    print(
        f"public key  {public}: give it to hosts (policy.trusted_keys) and bridges (--policy-key)"
    )
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    document = _read_json(args.input)
    if not isinstance(document, dict):
        raise _Fail(f"{args.input}: a bundle document is a JSON object", status=1)
    try:
        key = load_private_key(args.key)
    except KeyFileError as exc:
        raise _Fail(str(exc)) from None
    try:
        jws = sign_bundle(document, key, ttl_s=args.ttl)
    except BundleRejected as exc:
        raise _Fail(f"{args.input}: {exc.message}", status=1) from None
    except ValueError as exc:
        raise _Fail(str(exc)) from None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    tmp.write_text(jws + "\n")
    tmp.replace(args.out)
    print(
        f"signed {document.get('policy_id')} revision {document.get('revision')} for tenant "
        f"{document.get('aud')}: {args.out} ({len(jws)} characters, expires in {args.ttl:g} s, "
        f"kid {key_id(key.public_key())})"
    )
    return 0


def _verified(path: Path, keys_dir: Path, tenant: str | None, max_ttl_s: float) -> PolicyBundle:
    jws = _read_text(path)
    audience = tenant or str(_claims_of(jws).get("aud", ""))
    try:
        return verify_bundle(jws, keys=_keys(keys_dir), tenant=audience, max_ttl_s=max_ttl_s)
    except BundleRejected as exc:
        raise _Fail(f"{path}: rejected ({exc.reason.value}): {exc.message}", status=1) from None


def cmd_verify(args: argparse.Namespace) -> int:
    bundle = _verified(args.bundle, args.keys, args.tenant, args.max_ttl)
    left = bundle.expires_at - time.time()
    print(
        f"OK: {bundle.policy_id} revision {bundle.revision} for tenant {bundle.tenant}, "
        f"signed by {bundle.issuer} (kid {bundle.kid}), {len(bundle.rules)} rule(s), "
        f"expires in {left:.0f} s"
    )
    return 0


def _shadows(earlier: dict[str, Any], later: dict[str, Any]) -> bool:
    """Whether ``earlier`` covers every call ``later`` would decide (a conservative test)."""
    if earlier["tool"] not in (ANY, later["tool"]):
        return False
    if earlier["versions"].strip() not in ("*", later["versions"].strip()):
        return False
    if ANY not in earlier["devices"] and not set(later["devices"]) <= set(earlier["devices"]):
        return False
    if (ANY in earlier["devices"]) != (ANY in later["devices"]) and earlier["effect"] == "allow":
        return False  # a rule for the device is tried before one for every device
    if earlier["effect"] == "deny":
        return not earlier.get("paths") and not earlier.get("egress")
    if earlier.get("paths") and not set(later.get("paths", [])) <= set(earlier["paths"]):
        return False
    return set(later.get("egress", [])) <= set(earlier.get("egress", []))


def lint(document: Any, *, known_versions: dict[str, set[str]]) -> tuple[list[str], list[str]]:
    """Errors and warnings about a bundle document (see ``zl policy lint --help``)."""
    errors: list[str] = []
    claims = document
    if isinstance(claims, dict):
        claims = {"v": 1, "iat": 0, "nbf": 0, "exp": 1, **claims}
    for error in sorted(
        bundle_validator().iter_errors(claims), key=lambda e: list(e.absolute_path)
    ):
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        errors.append(f"{where}: {error.message[:200]}")
    if errors:
        return errors, []
    warnings: list[str] = []
    try:
        unsigned_bundle(claims)
    except BundleRejected as exc:
        errors.append(exc.message)
    rules: list[dict[str, Any]] = claims["rules"]
    has_default_caps = "caps" in claims.get("defaults", {})
    for index, rule in enumerate(rules):
        name = f"rule {rule['id']!r}"
        for earlier in rules[:index]:
            if _shadows(earlier, rule) and (
                earlier["effect"] == rule["effect"] or earlier["effect"] == "deny"
            ):
                warnings.append(f"{name} is shadowed by the earlier rule {earlier['id']!r}")
                break
        if rule["effect"] == "allow" and "caps" not in rule and not has_default_caps:
            warnings.append(
                f"{name} allows with no caps (only the manifest's and the host's apply)"
            )
        if rule["tool"] != ANY:
            versions = known_versions.get(rule["tool"], {"0.0.0"})
            try:
                wanted = VersionRange(rule["versions"])
            except ValueError:
                continue
            if not any(wanted.matches(v) for v in versions):
                known = ", ".join(sorted(versions))
                warnings.append(
                    f"{name}: range {rule['versions']!r} matches no known version of "
                    f"{rule['tool']} ({known})"
                )
        for glob in rule.get("paths", []):
            if all(set(part) <= {"*"} for part in glob.split("/") if part):
                warnings.append(f"{name}: path glob {glob!r} matches every path")
    return errors, warnings


def _known_versions(extra: Sequence[str]) -> dict[str, set[str]]:
    known: dict[str, set[str]] = {name: {c.version} for name, c in tool_contracts().items()}
    for item in extra:
        tool, sep, version = item.rpartition("@")
        if not sep or not is_version(version):
            raise _Fail(f"--known {item!r}: expected TOOL@VERSION")
        known.setdefault(tool, set()).add(version)
    return known


def cmd_lint(args: argparse.Namespace) -> int:
    errors, warnings = lint(_read_json(args.bundle), known_versions=_known_versions(args.known))
    for error in errors:
        print(f"{args.bundle}: error: {error}")
    for warning in warnings:
        print(f"{args.bundle}: warning: {warning}")
    if not errors and not warnings:
        print(f"{args.bundle}: OK")
    return 1 if errors or (warnings and args.strict) else 0


def _bundle_for_explain(args: argparse.Namespace) -> PolicyBundle:
    if args.bundle.suffix == ".json":
        document = _read_json(args.bundle)
        if not isinstance(document, dict):
            raise _Fail(f"{args.bundle}: a bundle document is a JSON object", status=1)
        try:
            return unsigned_bundle(document)
        except BundleRejected as exc:
            raise _Fail(f"{args.bundle}: {exc.message}", status=1) from None
    if args.keys is not None:
        return _verified(args.bundle, args.keys, args.tenant, DEFAULT_MAX_TTL_S)
    print("(signature not checked: give --keys DIR to verify it too)", file=sys.stderr)
    try:
        return unsigned_bundle(_claims_of(_read_text(args.bundle)))
    except BundleRejected as exc:
        raise _Fail(f"{args.bundle}: {exc.message}", status=1) from None


def cmd_explain(args: argparse.Namespace) -> int:
    bundle = _bundle_for_explain(args)
    if bundle.tenant != args.tenant:
        print(f"deny: the bundle is for tenant {bundle.tenant!r}, not {args.tenant!r}")
        return 1
    call_args: dict[str, Any] = {}
    if args.path:
        call_args["paths"] = list(args.path)
    if args.url:
        call_args["urls"] = list(args.url)
    request = CallRequest.of(
        tool=args.tool, version=args.version, device_id=args.device, args=call_args
    )
    decision = decide(bundle, request)
    print(f"{decision.effect} by rule {decision.rule_id}: {decision.reason}")
    if decision.allowed:
        caps = decision.caps
        shown = (
            f"timeoutMs {caps.timeout_ms}, maxBytes {caps.max_bytes}"
            if caps is not None
            else "none in the bundle (the manifest's and the host's apply)"
        )
        print(f"caps: {shown}")
    if time.time() >= bundle.expires_at + DEFAULT_CLOCK_SKEW_S and bundle.jws:
        print("note: the bundle has expired; a host would deny every call policy.expired")
    return 0 if decision.allowed else 1


async def _serve(directory: Path, host: str, port: int, context: Any, ready: Path | None) -> None:
    from supervisors.policy_server import serve_policy

    async with trio.open_nursery() as nursery:
        binding = await nursery.start(
            lambda task_status: serve_policy(
                directory, host=host, port=port, ssl_context=context, task_status=task_status
            )
        )
        print(f"zl policy serve: {binding.source()} (bundles from {directory})", flush=True)
        if ready is not None:
            await trio.Path(ready).write_text(binding.source())
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                break
        nursery.cancel_scope.cancel()


def cmd_serve(args: argparse.Namespace) -> int:
    from supervisors.tls import (
        TlsConfigError,
        generate_dev_certs,
        server_ssl_context,
        warn_plaintext,
    )

    if not args.directory.is_dir():
        raise _Fail(f"{args.directory} is not a folder")
    try:
        if args.cert and args.tls_key:
            context = server_ssl_context(args.cert, args.tls_key)
        elif args.dev_certs:
            certs = generate_dev_certs(args.dev_certs)
            context = server_ssl_context(certs.server_cert, certs.server_key)
        elif args.insecure_dev_plaintext:
            warn_plaintext("policy control plane", flag="--insecure-dev-plaintext")
            context = None
        else:
            raise _Fail("TLS is required: --cert and --tls-key, or --dev-certs DIR")
    except TlsConfigError as exc:
        raise _Fail(str(exc)) from None
    try:
        trio.run(_serve, args.directory, args.host, args.port, context, args.ready_file)
    except OSError as exc:
        raise _Fail(f"cannot serve on {args.host}:{args.port}: {exc}") from None
    except KeyboardInterrupt:
        return 130
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zl policy", description="Signed policy bundles.")
    commands = parser.add_subparsers(dest="command", required=True)

    keygen = commands.add_parser("keygen", help="make the control plane's Ed25519 key pair")
    keygen.add_argument("--out", required=True, type=Path, help="private key (0600); OUT.pub too")
    keygen.set_defaults(run=cmd_keygen)

    sign = commands.add_parser("sign", help="sign a bundle document (fills iat, nbf, exp)")
    sign.add_argument("--key", required=True, type=Path, help="the control plane's private key")
    sign.add_argument("--in", dest="input", required=True, type=Path, help="bundle document (JSON)")
    sign.add_argument("--out", required=True, type=Path, help="where to write the JWS")
    sign.add_argument(
        "--ttl", type=float, default=DEFAULT_MAX_TTL_S, help="seconds (default %(default)s)"
    )
    sign.set_defaults(run=cmd_sign)

    verify = commands.add_parser("verify", help="check a signed bundle")
    verify.add_argument("bundle", type=Path)
    verify.add_argument("--keys", required=True, type=Path, help="folder of trusted *.pub keys")
    verify.add_argument("--tenant", help="the tenant it must be for (default: its own aud)")
    verify.add_argument("--max-ttl", type=float, default=DEFAULT_MAX_TTL_S)
    verify.set_defaults(run=cmd_verify)

    lint_cmd = commands.add_parser(
        "lint",
        help="check a bundle document",
        description="Schema errors; warnings for a rule shadowed by an earlier one, a range "
        "that matches no known version, an allow with no caps, a glob that matches every path.",
    )
    lint_cmd.add_argument("bundle", type=Path)
    lint_cmd.add_argument("--known", action="append", default=[], help="TOOL@VERSION also known")
    lint_cmd.add_argument("--strict", action="store_true", help="warnings fail too")
    lint_cmd.set_defaults(run=cmd_lint)

    explain = commands.add_parser("explain", help="decide one call and name the rule")
    explain.add_argument("--bundle", required=True, type=Path, help="a .jws, or a .json document")
    explain.add_argument("--keys", type=Path, help="verify the .jws against these keys")
    explain.add_argument("--tenant", required=True)
    explain.add_argument("--device", required=True)
    explain.add_argument("--tool", required=True)
    explain.add_argument("--version", required=True)
    explain.add_argument("--path", action="append", default=[], help="a path argument")
    explain.add_argument("--url", action="append", default=[], help="a URL the tool would reach")
    explain.set_defaults(run=cmd_explain)

    serve = commands.add_parser("serve", help="serve <tenant>.jws files over HTTPS with ETags")
    serve.add_argument("directory", type=Path)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8445)
    serve.add_argument("--cert", help="TLS certificate (PEM)")
    serve.add_argument("--tls-key", help="TLS key (PEM)")
    serve.add_argument("--dev-certs", type=Path, help="make or reuse development certificates here")
    serve.add_argument("--insecure-dev-plaintext", action="store_true")
    serve.add_argument("--ready-file", type=Path, help="write the source URL here once serving")
    serve.add_argument("--log-level", default="WARNING")
    serve.set_defaults(run=cmd_serve)
    return parser


def policy_main(argv: Sequence[str] | None = None) -> int:
    """``zl policy``; returns the exit status (see the module docstring)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(args, "log_level", "WARNING").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        status: int = args.run(args)
    except _Fail as exc:
        print(f"zl policy {args.command}: {exc}", file=sys.stderr)
        return exc.status
    return status
