#!/usr/bin/env python3
"""Write the relay shard list for N shards, for the relays and the hosts alike.

    python deploy/k8s/shards.py --replicas 3            # rewrite deploy/k8s/generated/
    python deploy/k8s/shards.py --replicas 3 --check    # exit 1 if generated/ is not that

Shard ``zl-relay-I`` is StatefulSet pod ``zl-relay-I`` (I = 0 .. N-1). One list, written
four ways so that every reader sees the same N:

- ``relay.toml``: ``config/relay.base.toml`` plus the ``[[shards]]`` list (ConfigMap
  ``zl-relay-config``; each pod picks itself with ``--shard-id $(POD_NAME)``);
- ``host-relay.env``: ``ZL_TOOLS__RELAY_SHARDS`` for the hosts (ConfigMap
  ``zl-host-relay-shards``), the same ids with the pods' host endpoints;
- ``relay-replicas.yaml``: the StatefulSet's ``replicas: N``;
- ``relay-device-services.yaml``: one Service per shard for the devices (port 8443 only),
  selecting its pod by name, so each shard has an address devices can dial.

Hosts dial ``wss://zl-relay-I.zl-relay.NAMESPACE.svc.CLUSTER_DOMAIN:8444/v1/host`` (the
headless Service). Devices dial the URL ``--device-url`` makes of ``{ordinal}``: by default
the same in-cluster name on port 8443; give your external names, e.g.
``--device-url wss://relay-{ordinal}.devices.example.net/v1/device``.
Standard library only, so it runs before any install.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
STATEFULSET = "zl-relay"
HOST_PORT = 8444
DEVICE_PORT = 8443
DEFAULT_DEVICE_URL = (
    "wss://zl-relay-{ordinal}.zl-relay.{namespace}.svc.{cluster_domain}:8443/v1/device"
)
MAX_SHARDS = 64


def shard_id(ordinal: int) -> str:
    return f"{STATEFULSET}-{ordinal}"


def host_url(ordinal: int, namespace: str, cluster_domain: str) -> str:
    name = f"{shard_id(ordinal)}.{STATEFULSET}.{namespace}.svc.{cluster_domain}"
    return f"wss://{name}:{HOST_PORT}/v1/host"


def render(
    replicas: int, *, namespace: str, cluster_domain: str, device_url: str
) -> dict[str, str]:
    """The generated files' names and contents."""
    note = f"written by deploy/k8s/shards.py --replicas {replicas}; do not edit"
    urls = [
        (
            shard_id(i),
            device_url.format(ordinal=i, namespace=namespace, cluster_domain=cluster_domain),
            host_url(i, namespace, cluster_domain),
        )
        for i in range(replicas)
    ]
    base = (HERE / "config" / "relay.base.toml").read_text()
    shards = "".join(
        f'\n[[shards]]\nshard_id = "{sid}"\nurl = "{device}"\nhost_url = "{host}"\n'
        for sid, device, host in urls
    )
    relay_toml = f"{base}\n# The shard list: {note}.\n{shards}"
    host_env = f"# {note}\nZL_TOOLS__RELAY_SHARDS=" + ",".join(
        f"{sid}={host}" for sid, _, host in urls
    )
    replicas_patch = (
        f"# {note}\napiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n"
        f"  name: {STATEFULSET}\nspec:\n  replicas: {replicas}\n"
    )
    services = [f"# {note}"]
    for sid, _, _ in urls:
        services.append(
            "---\napiVersion: v1\nkind: Service\nmetadata:\n"
            f"  name: {sid}-devices\n  labels:\n    app.kubernetes.io/name: zl-relay\n"
            "spec:\n  type: LoadBalancer\n  selector:\n"
            f"    statefulset.kubernetes.io/pod-name: {sid}\n"
            f"  ports:\n    - name: devices\n      port: {DEVICE_PORT}\n"
            "      targetPort: devices\n"
        )
    return {
        "relay.toml": relay_toml,
        "host-relay.env": host_env + "\n",
        "relay-replicas.yaml": replicas_patch,
        "relay-device-services.yaml": "\n".join(services),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, required=True, help="number of relay shards")
    parser.add_argument("--namespace", default="zl")
    parser.add_argument("--cluster-domain", default="cluster.local")
    parser.add_argument(
        "--device-url",
        default=DEFAULT_DEVICE_URL,
        help="URL devices dial for shard {ordinal} (also {namespace}, {cluster_domain})",
    )
    parser.add_argument("--out", type=Path, default=HERE / "generated")
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args(argv)
    if not 1 <= args.replicas <= MAX_SHARDS:
        parser.error(f"--replicas must be 1 to {MAX_SHARDS}")
    files = render(
        args.replicas,
        namespace=args.namespace,
        cluster_domain=args.cluster_domain,
        device_url=args.device_url,
    )
    if args.check:
        stale = [n for n, text in files.items() if _read(args.out / n) != text]
        if stale:
            print(
                f"shards.py: {', '.join(stale)} in {args.out} are not the list for "
                f"--replicas {args.replicas}; run without --check to rewrite them",
                file=sys.stderr,
            )
            return 1
        print(f"shards.py: {args.out} holds the list for {args.replicas} shards")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (args.out / name).write_text(text)
    print(f"shards.py: wrote the list for {args.replicas} shards to {args.out}")
    return 0


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
