"""Issue 10, finding 2b (operator): forged labelled Secrets cannot exhaust the operator.

Without the admission policy, anyone may label a Secret ``app.kubernetes.io/managed-by=csi-vso``.
Here 1,000 such Secrets of 700 KiB each (900 before the operator starts: the list path; 100 after:
the watch path) sit in a private devkit API server, and the operator runs as a real process in
a memory cgroup limited to 512 MiB, the Deployment's limit. It must stay alive (no OOM kill) and
keep reconciling: a VaultStaticSecret created afterwards syncs from the real OpenBao. Before
the fix the operator cached every forged Secret whole and was OOM-killed.

Needs root and a cgroup v1 memory controller (``/sys/fs/cgroup/memory``) or cgroup v2; it uses a
private devkit API server (700 MiB of Secrets do not belong in a shared or real cluster), so it
skips with ``CSI_VSO_TEST_KUBECONFIG`` set.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from kubernetes import client, config

from csi_vso import protected
from csi_vso.devkit.apiserver_process import spawn_apiserver
from csi_vso.devkit.openbao import OpenBaoDevServer, free_port
from tests.fixtures.cgroup import MemoryCgroup
from tests.fixtures.cgroup import skip_reason as cgroup_skip_reason
from tests.fixtures.kube import Kube
from tests.operator.conftest import Cluster, configure_k8s_auth, install_crds, static_secret, wait_for

LIMIT = 512 * 1024 * 1024
FORGED = 1000
FORGED_BYTES = 700 * 1024


def _skip_reason() -> str | None:
    if os.environ.get("CSI_VSO_TEST_KUBECONFIG"):
        return "needs a private devkit API server to hold 700 MiB of forged Secrets, not a real cluster"
    return cgroup_skip_reason()


@pytest.fixture
def private_kube(tmp_path: Path) -> Iterator[Kube]:
    """A devkit API server in its own process (its memory is not the test's)."""
    kubeconfig = tmp_path / "kubeconfig"
    proc, url = spawn_apiserver(kubeconfig)
    try:
        yield Kube(kubeconfig=str(kubeconfig), url=url, server=None)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _forge(core: client.CoreV1Api, namespace: str, index: int, payload: str) -> None:
    core.create_namespaced_secret(
        namespace,
        {
            "metadata": {
                "name": f"forged-{index}",
                "labels": protected.protected_labels(str(uuid.uuid4())),
                "annotations": {protected.CONTENT_MAC_ANNOTATION: "x"},
            },
            "data": {"blob": payload},
        },
    )


@pytest.mark.timeout(900)
def test_finding2b_forged_labelled_secrets_leave_the_operator_within_512mi_and_reconciling(
    openbao: OpenBaoDevServer, private_kube: Kube, tmp_path: Path
) -> None:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    api_client = config.new_client_from_config(config_file=private_kube.kubeconfig)
    cluster = Cluster(api_client)
    install_crds(api_client)
    ns = "tenant"
    cluster.ensure_namespace(ns)
    payload = base64.b64encode(secrets.token_bytes(FORGED_BYTES)).decode()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: _forge(cluster.core, ns, i, payload), range(FORGED - 100)))

    cgroup = MemoryCgroup(LIMIT)
    log = open(tmp_path / "operator.log", "wb")  # noqa: SIM115 - closed below
    operator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "csi_vso",
            "operator",
            "--kubeconfig",
            private_kube.kubeconfig,
            "--operator-namespace",
            ns,
            "--no-leader-elect",
            "--metrics-addr",
            f"127.0.0.1:{free_port()}",
            "--backoff-base",
            "1",
            "--backoff-max",
            "4",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "KUBECONFIG"))},
    )
    try:
        cgroup.add(operator.pid)
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: _forge(cluster.core, ns, i, payload), range(FORGED - 100, FORGED)))

        root = openbao.client()
        mount, kv = "k8s-" + secrets.token_hex(3), "kv-" + secrets.token_hex(3)
        configure_k8s_auth(root, private_kube, mount=mount, role="app", sa="app", namespaces=[ns])
        root.sys.enable_secrets_engine("kv", path=kv, options={"version": "2"})
        root.secrets.kv.v2.create_or_update_secret(mount_point=kv, path="app", secret={"password": "alive"})
        cluster.service_account(ns, "app")
        cluster.custom.create_namespaced_custom_object(
            "secrets.hashicorp.com",
            "v1beta1",
            ns,
            "vaultconnections",
            {
                "kind": "VaultConnection",
                "metadata": {"name": "default"},
                "spec": {"address": openbao.address},
            },
        )
        cluster.custom.create_namespaced_custom_object(
            "secrets.hashicorp.com",
            "v1beta1",
            ns,
            "vaultauths",
            {
                "kind": "VaultAuth",
                "metadata": {"name": "default"},
                "spec": {
                    "method": "kubernetes",
                    "mount": mount,
                    "kubernetes": {"role": "app", "serviceAccount": "app"},
                },
            },
        )
        cluster.apply(static_secret(ns, "real", mount=kv, path="app", destination="real", type="kv-v2"))
        assert wait_for(
            lambda: operator.poll() is not None or cluster.secret_data(ns, "real"), timeout=300, what="sync"
        ) == {"password": "alive"}, f"operator exited with {operator.returncode}"
        # Drift on the real Secret is still healed (its data is what the cache keeps).
        cluster.core.patch_namespaced_secret(
            "real", ns, {"data": {"password": base64.b64encode(b"x").decode()}}
        )
        assert wait_for(
            lambda: operator.poll() is not None or cluster.secret_data(ns, "real") == {"password": "alive"},
            timeout=60,
            what="drift healed",
        )
        assert operator.poll() is None, "the operator died"
        assert cgroup.oom_kills() == 0
        peak = cgroup.peak()
        print(f"\noperator cgroup peak, {FORGED} forged Secrets: {peak / 2**20:.0f} MiB")
        assert peak < LIMIT
    finally:
        operator.terminate()
        try:
            operator.wait(timeout=30)
        except subprocess.TimeoutExpired:
            operator.kill()
            operator.wait()
        log.close()
        cgroup.remove()
        api_client.close()
