"""Operator benchmark: N VaultStaticSecrets against a real OpenBao and the devkit API server.

Measures (printed as a table):

1. Initial sync: time from starting the operator (CRs already applied) until every destination
   Secret exists, and the Vault requests it took, by operation.
2. One idle refresh cycle (nothing changed in Vault): every CR re-reads Vault once when its
   refresh is due; the table shows Secret writes and CR status writes (expected 0: no API write
   at all) and Vault reads per CR (expected at most 1), plus the no-op skips counted.

Usage: python bench/operator_bench.py [--count 1000] [--refresh 60] [--workers 10]
"""

from __future__ import annotations

import argparse
import logging
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from prometheus_client import REGISTRY

from csi_vso.devkit.apiserver import APIServer
from csi_vso.devkit.kubeauth import configure_kubernetes_auth
from csi_vso.devkit.openbao import OpenBaoDevServer
from csi_vso.operator import api
from csi_vso.operator.controller import Controller, ControllerSettings

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "bench"


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def vault_requests() -> dict[str, float]:
    found: dict[str, float] = {}
    for metric in REGISTRY.collect():
        if metric.name != "csi_vso_vault_requests":
            continue
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                op = sample.labels["operation"]
                found[op] = found.get(op, 0.0) + sample.value
    return found


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before.get(k, 0.0) for k in after if after[k] - before.get(k, 0.0)}


def install_crds(api_client: client.ApiClient) -> None:
    ext = client.ApiextensionsV1Api(api_client)
    for path in sorted((REPO / "deploy" / "crds").glob("*.yaml")):
        try:
            ext.create_custom_resource_definition(yaml.safe_load(path.read_text()))
        except ApiException as exc:
            if exc.status != 409:
                raise
    time.sleep(0.5)


def configure_login(root: Any, kubeconfig: Path, namespaces: tuple[str, ...], policy: str) -> None:
    """Kubernetes auth for service account ``bench`` in ``namespaces``, with policy ``bench``."""
    root.sys.create_or_update_policy(name="bench", policy=policy)
    configure_kubernetes_auth(root, kubeconfig=kubeconfig)
    root.write(
        "auth/kubernetes/role/bench",
        bound_service_account_names=["bench"],
        bound_service_account_namespaces=list(namespaces),
        token_policies=["bench"],
        token_ttl="1h",
    )


def configure_openbao(
    bao: OpenBaoDevServer, kubeconfig: Path, count: int, namespaces: tuple[str, ...] = (NAMESPACE,)
) -> None:
    root = bao.client()
    configure_login(root, kubeconfig, namespaces, 'path "kv/*" { capabilities = ["read"] }')
    root.sys.enable_secrets_engine("kv", path="kv", options={"version": "2"})
    for i in range(count):
        root.secrets.kv.v2.create_or_update_secret(
            mount_point="kv",
            path=f"app/{i}",
            secret={"username": f"user{i}", "password": secrets.token_hex(8)},
        )
    root.adapter.close()


def apply_crs(
    custom: client.CustomObjectsApi, core: client.CoreV1Api, bao: OpenBaoDevServer, count: int, refresh: int
) -> None:
    core.create_namespace({"metadata": {"name": NAMESPACE}})
    core.create_namespaced_service_account(NAMESPACE, {"metadata": {"name": "bench"}})

    def create(kind: str, name: str, spec: dict[str, Any]) -> None:
        custom.create_namespaced_custom_object(
            api.GROUP,
            api.VERSION,
            NAMESPACE,
            api.PLURALS[kind],
            {
                "apiVersion": api.API_VERSION,
                "kind": kind,
                "metadata": {"name": name, "namespace": NAMESPACE},
                "spec": spec,
            },
        )

    create("VaultConnection", "default", {"address": bao.address})
    create(
        "VaultAuth",
        "default",
        {"method": "kubernetes", "kubernetes": {"role": "bench", "serviceAccount": "bench"}},
    )
    for i in range(count):
        create(
            "VaultStaticSecret",
            f"s{i}",
            {
                "mount": "kv",
                "path": f"app/{i}",
                "type": "kv-v2",
                "refreshAfter": f"{refresh}s",
                "destination": {"name": f"s{i}", "create": True},
            },
        )


def new_controller(kubeconfig: Path, namespace: str, workers: int) -> Controller:
    """An in-process operator (its metrics land in this process's registry), not started yet."""
    return Controller(
        config.new_client_from_config(config_file=str(kubeconfig)),
        ControllerSettings(operator_namespace=namespace, max_concurrent_reconciles=workers),
        hmac_key=secrets.token_bytes(32),
    )


def wait(predicate: Any, timeout: float, what: str) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)
    return time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--refresh", type=int, default=60, help="refreshAfter of every CR, seconds")
    parser.add_argument("--workers", type=int, default=10)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    with APIServer(port=0) as server, OpenBaoDevServer() as bao, tempfile.TemporaryDirectory() as tmp:
        kubeconfig = server.write_kubeconfig(Path(tmp) / "kubeconfig")
        api_client = config.new_client_from_config(config_file=str(kubeconfig))
        core = client.CoreV1Api(api_client)
        custom = client.CustomObjectsApi(api_client)
        install_crds(api_client)
        t = time.monotonic()
        configure_openbao(bao, kubeconfig, args.count)
        apply_crs(custom, core, bao, args.count, args.refresh)
        setup = time.monotonic() - t

        writes_kind = {"kind": "VaultStaticSecret"}
        before = vault_requests()
        controller = new_controller(kubeconfig, NAMESPACE, args.workers)
        start = time.monotonic()
        controller.start()
        wait(lambda: counter("csi_vso_secret_writes_total", **writes_kind) >= args.count, 600, "initial sync")
        sync_seconds = time.monotonic() - start
        initial = delta(vault_requests(), before)
        secrets_listed = len(
            core.list_namespaced_secret(NAMESPACE, label_selector="csi-vso.io/protected=true").items
        )

        # One idle refresh cycle: wait until every CR has re-synced once more.
        writes0 = counter("csi_vso_secret_writes_total", **writes_kind)
        status0 = counter("csi_vso_status_writes_total", **writes_kind)
        skipped0 = counter("csi_vso_secret_writes_skipped_total", **writes_kind)
        syncs0 = counter("csi_vso_secret_syncs_total", **writes_kind)
        before_cycle = vault_requests()
        cycle_seconds = wait(
            lambda: counter("csi_vso_secret_syncs_total", **writes_kind) >= syncs0 + args.count,
            timeout=args.refresh * 2 + 120,
            what="idle refresh cycle",
        )
        time.sleep(1.0)  # let stragglers of the same cycle land before counting
        cycle = delta(vault_requests(), before_cycle)
        cycle_writes = counter("csi_vso_secret_writes_total", **writes_kind) - writes0
        cycle_skipped = counter("csi_vso_secret_writes_skipped_total", **writes_kind) - skipped0
        cycle_status = counter("csi_vso_status_writes_total", **writes_kind) - status0
        controller.stop()

    reads = cycle.get("read_kv", 0.0)
    rows = [
        ("VaultStaticSecrets", f"{args.count}"),
        ("workers", f"{args.workers}"),
        ("setup (KV writes + CR creates)", f"{setup:.1f} s"),
        ("initial sync: time to all Secrets", f"{sync_seconds:.1f} s"),
        ("initial sync: Secrets/s", f"{args.count / sync_seconds:.0f}"),
        ("initial sync: protected Secrets present", f"{secrets_listed}"),
        ("initial sync: Vault requests", ", ".join(f"{k}={v:.0f}" for k, v in sorted(initial.items()))),
        (f"idle cycle (refreshAfter {args.refresh}s): duration", f"{cycle_seconds:.1f} s"),
        ("idle cycle: Secret writes", f"{cycle_writes:.0f}"),
        ("idle cycle: CR status writes", f"{cycle_status:.0f}"),
        ("idle cycle: no-op skips counted", f"{cycle_skipped:.0f}"),
        ("idle cycle: Vault requests", ", ".join(f"{k}={v:.0f}" for k, v in sorted(cycle.items())) or "none"),
        ("idle cycle: Vault reads per CR", f"{reads / args.count:.2f}"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  value")
    print(f"{'-' * width}  {'-' * 30}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    ok = cycle_writes == 0 and cycle_status == 0 and reads <= args.count
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
