"""``zl``: the command line of every Zero Latency process and tool.

Each subcommand lives beside the code it runs; this module only dispatches, importing
a subcommand's module when it is used (the bridge machine needs none of the host's).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

# name -> (module, function, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "host": ("supervisors.host", "host_main", "run the model host (gRPC StreamChat)"),
    "chat": ("supervisors.chat_client", "chat_main", "chat with a host from the terminal"),
    "tree": ("supervisors.tree_cli", "tree_main", "show a process's live actor tree"),
    "demo": ("supervisors.demo", "demo_main", "start a host and run a short chat"),
    "dev-certs": ("supervisors.tls", "dev_certs_main", "make development TLS certificates"),
    "token": ("actors.relay", "token_main", "make signing keys and development tokens"),
    "audit": ("actors.audit", "audit_main", "verify an audit file's hash chain, or tail it"),
    "policy": ("supervisors.policy_cli", "policy_main", "sign, check, explain and serve policy"),
    "relay": ("supervisors.relay", "relay_main", "run one Tool Relay shard (WSS)"),
    "bridge": ("supervisors.bridge", "bridge_main", "run the Device Bridge (same as zl-bridge)"),
    "redact": ("actors.redaction", "redact_main", "remove secrets and personal data from stdin"),
    "bff": ("supervisors.bff", "bff_main", "run the BFF (HTTPS, SSE, chat page) before a host"),
    "health": ("supervisors.health_cli", "health_main", "probe a running process's health once"),
}


def _usage() -> str:
    lines = ["usage: zl <command> [options]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, _, help_) in COMMANDS.items()]
    lines += ["", "zl <command> --help shows a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"zl: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, function_name, _ = COMMANDS[name]
    function: Callable[[Sequence[str]], int] = getattr(
        importlib.import_module(module_name), function_name
    )
    return function(rest)


if __name__ == "__main__":
    sys.exit(main())
