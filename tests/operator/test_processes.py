"""Real operator processes: leader election with SIGKILL failover; OpenBao down and back.

Two ``csi-vso operator`` processes share one Lease: only the leader reconciles (the standby's
metrics show no reconcile at all), and after the leader is SIGKILLed the standby takes over
within the lease duration, keeps the still-valid dynamic credentials (same HMAC key from the
shared Secret, same lease) and syncs new KV data. Their logs never contain a secret value.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from csi_vso.devkit.openbao import OpenBaoDevServer, free_port
from csi_vso.devkit.postgres import PostgresServer
from csi_vso.operator import api
from tests.fixtures.kube import Kube
from tests.operator.conftest import (
    Cluster,
    OperatorFactory,
    configure_k8s_auth,
    static_secret,
    wait_for,
)
from tests.operator.test_dynamic import can_log_in, database, db_role, dynamic_secret  # noqa: F401 (fixture)


class OperatorProcess:
    def __init__(self, kube: Kube, namespace: str, identity: str, log_path: Path) -> None:
        self.identity = identity
        self.port = free_port()
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "csi_vso",
                "operator",
                "--kubeconfig",
                kube.kubeconfig,
                "--operator-namespace",
                namespace,
                "--leader-election-identity",
                identity,
                "--leader-election-id",
                f"op-{namespace}",
                "--leader-elect-lease-duration",
                "3",
                "--leader-elect-renew-deadline",
                "2",
                "--leader-elect-retry-period",
                "1",
                "--metrics-addr",
                f"127.0.0.1:{self.port}",
                "--backoff-base",
                "1",
                "--backoff-max",
                "4",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "KUBECONFIG"))},
        )

    def metric(self, name: str, **labels: str) -> float:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as resp:
                text = resp.read().decode()
        except OSError:
            return -1.0
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture
def processes(kube: Kube, namespace: str, tmp_path: Path) -> Iterator[Any]:
    started: list[OperatorProcess] = []

    def start(identity: str) -> OperatorProcess:
        proc = OperatorProcess(kube, namespace, identity, tmp_path / f"{identity}.log")
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


def lease_holder(cluster: Cluster, namespace: str) -> str | None:
    try:
        lease = client.CoordinationV1Api(cluster.api_client).read_namespaced_lease(
            f"op-{namespace}", namespace
        )
    except client.ApiException:
        return None
    return str(lease.spec.holder_identity or "") or None


def test_leader_election_failover_keeps_dynamic_credentials(
    openbao: OpenBaoDevServer,
    postgres: PostgresServer,
    cluster: Cluster,
    k8s_vault: Any,
    kv_mount: str,
    database: str,  # noqa: F811
    processes: Any,
) -> None:
    ns = k8s_vault.namespace
    root = openbao.client()
    root.secrets.kv.v2.create_or_update_secret(mount_point=kv_mount, path="s", secret={"v": "one-" + ns})
    db_role(openbao, database, "app", default_ttl="5m", max_ttl="1h")

    a = processes("op-a")
    wait_for(lambda: lease_holder(cluster, ns) == "op-a", timeout=20, what="op-a leads")
    b = processes("op-b")
    wait_for(lambda: b.metric("csi_vso_reconciles_total") >= 0, timeout=20, what="op-b serving metrics")

    cluster.apply(
        static_secret(ns, "s", mount=kv_mount, path="s", destination="s", type="kv-v2", refreshAfter="1s")
    )
    cluster.apply(dynamic_secret(ns, "d", mount=database, path="creds/app", destination="d"))
    wait_for(lambda: cluster.secret_data(ns, "s") == {"v": "one-" + ns}, what="static sync by the leader")
    creds = wait_for(lambda: cluster.secret_data(ns, "d"), what="dynamic credentials")
    lease_id = wait_for(
        lambda: (
            ((cluster.get_cr("VaultDynamicSecret", ns, "d") or {}).get("status") or {})
            .get("secretLease", {})
            .get("id")
        ),
        what="lease recorded",
    )
    assert a.metric("csi_vso_secret_writes_total") >= 2
    assert b.metric("csi_vso_reconciles_total") == 0  # the standby does nothing
    assert lease_holder(cluster, ns) == "op-a"

    a.stop(signal.SIGKILL)
    wait_for(lambda: lease_holder(cluster, ns) == "op-b", timeout=15, what="op-b takes over")
    root.secrets.kv.v2.create_or_update_secret(mount_point=kv_mount, path="s", secret={"v": "two-" + ns})
    wait_for(
        lambda: cluster.secret_data(ns, "s") == {"v": "two-" + ns}, timeout=15, what="sync by the new leader"
    )
    wait_for(
        lambda: b.metric("csi_vso_reconciles_total", kind="VaultDynamicSecret") >= 1, what="op-b saw the VDS"
    )
    assert cluster.secret_data(ns, "d") == creds  # still-valid credentials were not rotated
    status = (cluster.get_cr("VaultDynamicSecret", ns, "d") or {})["status"]
    assert status["secretLease"]["id"] == lease_id
    assert can_log_in(postgres, creds)

    b.stop()
    for proc in (a, b):
        text = proc.log_path.read_text()
        assert creds["password"] not in text and "one-" + ns not in text and "two-" + ns not in text


def test_openbao_down_backs_off_keeps_secrets_and_recovers(
    openbao_private: OpenBaoDevServer,
    kube: Kube,
    cluster: Cluster,
    namespace: str,
    operator: OperatorFactory,
) -> None:
    bao = openbao_private

    def configure(value: str) -> None:
        root = bao.client()
        configure_k8s_auth(root, kube, mount="kubernetes", role="app", sa="app", namespaces=[namespace])
        if "kv/" not in root.sys.list_mounted_secrets_engines()["data"]:
            root.sys.enable_secrets_engine("kv", path="kv", options={"version": "2"})
        root.secrets.kv.v2.create_or_update_secret(mount_point="kv", path="app", secret={"v": value})
        root.adapter.close()

    configure("before")
    cluster.service_account(namespace, "app")
    for manifest in (
        {"kind": "VaultConnection", "spec": {"address": bao.address}},
        {
            "kind": "VaultAuth",
            "spec": {"method": "kubernetes", "kubernetes": {"role": "app", "serviceAccount": "app"}},
        },
    ):
        cluster.apply(
            {
                "apiVersion": api.API_VERSION,
                "metadata": {"name": "default", "namespace": namespace},
                **manifest,
            }
        )
    controller = operator()
    cluster.apply(
        static_secret(
            namespace, "s", mount="kv", path="app", destination="s", type="kv-v2", refreshAfter="1s"
        )
    )
    wait_for(lambda: cluster.secret_data(namespace, "s") == {"v": "before"}, what="first sync")
    version = cluster.secret(namespace, "s").metadata.resource_version

    bao.stop()
    ready = wait_for(
        lambda: (
            (c := cluster.condition("VaultStaticSecret", namespace, "s", "Ready"))
            and c["reason"] == "VaultUnavailable"
            and "attempt 2;" in c["message"]
            and c
        ),
        timeout=20,
        what="backoff in the Ready condition",
    )
    assert ready["status"] == "False" and "retrying in" in ready["message"]
    assert controller.backoff.failures(("VaultStaticSecret", namespace, "s")) >= 2
    assert cluster.secret(namespace, "s").metadata.resource_version == version  # untouched
    assert [e.reason for e in cluster.events(namespace, "s")].count(
        "VaultUnavailable"
    ) == 1  # not one per retry

    bao.start()  # dev mode: empty again, so configure it again (with a new value)
    configure("after")
    wait_for(lambda: cluster.secret_data(namespace, "s") == {"v": "after"}, timeout=20, what="recovery")
    wait_for(
        lambda: (
            (cluster.condition("VaultStaticSecret", namespace, "s", "Ready") or {}).get("status") == "True"
        ),
        what="Ready again",
    )


def test_flags_and_defaults() -> None:
    from csi_vso.cli import build_parser

    args = build_parser().parse_args(["operator"])
    assert (args.leader_elect, args.metrics_addr, args.max_concurrent_reconciles, args.hmac_key_secret) == (
        True,
        "127.0.0.1:8096",
        10,
        "csi-vso-hmac-key",
    )
    assert (args.backoff_base, args.backoff_max) == (5.0, 60.0)
    assert build_parser().parse_args(["operator", "--no-leader-elect"]).leader_elect is False


def test_without_leader_election_serves_health_and_stops_on_sigterm(
    kube: Kube, cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    port = free_port()
    log_path = tmp_path / "op.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "csi_vso",
                "operator",
                "--kubeconfig",
                kube.kubeconfig,
                "--no-leader-elect",
                "--operator-namespace",
                namespace,
                "--metrics-addr",
                f"127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:

            def status(path: str) -> int:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
                        return int(resp.status)
                except OSError:
                    return 0

            wait_for(lambda: status("/readyz") == 200, timeout=20, what="ready")
            assert status("/healthz") == 200 and status("/metrics") == 200
            key = cluster.secret(namespace, "csi-vso-hmac-key")  # created on first start
            assert key is not None and len(base64.b64decode(key.data["key"])) == 32
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_leader_exits_with_1_when_its_lease_is_taken(
    kube: Kube, cluster: Cluster, namespace: str, processes: Any
) -> None:
    """A leader that cannot renew (here: someone else holds the Lease) stops and exits 1 to restart clean."""
    import datetime

    leader = processes("op-x")
    wait_for(lambda: lease_holder(cluster, namespace) == "op-x", timeout=20, what="op-x leads")
    coordination = client.CoordinationV1Api(cluster.api_client)

    def steal() -> bool:
        try:
            lease = coordination.read_namespaced_lease(f"op-{namespace}", namespace)
            lease.spec.holder_identity = "thief"
            lease.spec.lease_duration_seconds = 60
            lease.spec.renew_time = datetime.datetime.now(datetime.UTC)
            coordination.replace_namespaced_lease(f"op-{namespace}", namespace, lease)
        except client.ApiException as exc:
            if exc.status != 409:  # the leader renewed in between: try again
                raise
        return leader.proc.poll() is not None

    wait_for(steal, timeout=30, interval=0.5, what="the deposed leader exits")
    assert leader.proc.returncode == 1
    assert "lost leadership" in leader.log_path.read_text()


def test_lease_lock_turns_an_unreachable_api_server_into_a_failed_attempt() -> None:
    """A standby must keep waiting through an API server outage, not die of a connection error."""
    from kubernetes.leaderelection import electionconfig, leaderelection
    from kubernetes.leaderelection.leaderelectionrecord import LeaderElectionRecord

    from csi_vso.operator.leader import TolerantLeaseLock

    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    configuration.retries = 0
    lock = TolerantLeaseLock("l", "default", "me")
    lock.api_instance = client.CoordinationV1Api(client.ApiClient(configuration))
    config = electionconfig.Config(
        lock,
        lease_duration=15,
        renew_deadline=10,
        retry_period=2,
        onstarted_leading=print,
        onstopped_leading=print,
    )
    election = leaderelection.LeaderElection(config)
    assert election.try_acquire_or_renew() is False
    assert (
        lock.create(
            "l", "default", LeaderElectionRecord("me", "15", "2026-01-01 00:00:00", "2026-01-01 00:00:00")
        )
        is False
    )


@pytest.mark.parametrize(
    ("kubeconfig", "message"),
    [
        (None, "operator could not start"),  # a path that does not exist
        ("unreachable", "operator could not read or create its HMAC key Secret"),
    ],
)
def test_startup_failures_exit_1_with_one_clear_line(
    tmp_path: Path, kubeconfig: str | None, message: str
) -> None:
    path = tmp_path / "kubeconfig"
    if kubeconfig == "unreachable":
        path.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
            f"clusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{free_port()}'}}}}]\n"
            "users: [{name: u, user: {token: x}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
        )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "csi_vso",
            "operator",
            "--kubeconfig",
            str(path),
            "--metrics-addr",
            "0",
            "--operator-namespace",
            "ops",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert message in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout


def test_sigterm_releases_the_lease_for_the_standby(
    kube: Kube, cluster: Cluster, namespace: str, processes: Any
) -> None:
    """A clean shutdown (rolling update) hands over at once: the Lease no longer names the old leader."""
    leader = processes("op-r")
    wait_for(lambda: lease_holder(cluster, namespace) == "op-r", timeout=20, what="op-r leads")
    standby = processes("op-s")
    wait_for(lambda: standby.metric("csi_vso_reconciles_total") >= 0, timeout=20, what="op-s serving")
    leader.stop(signal.SIGTERM)
    assert leader.proc.returncode == 0
    assert lease_holder(cluster, namespace) != "op-r"  # released, not left to expire (3 s)
    wait_for(lambda: lease_holder(cluster, namespace) == "op-s", timeout=20, what="op-s takes over")
    assert "released the leader Lease" in leader.log_path.read_text()
