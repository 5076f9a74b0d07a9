"""Operator test harness: CRDs in the API server, OpenBao kubernetes auth, an in-process operator.

The operator runs in-process (its Controller, on real threads, against the devkit API server and a
real OpenBao) so tests can read its metrics; the leader-election tests start real processes.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from csi_vso.devkit.kubeauth import configure_kubernetes_auth
from csi_vso.devkit.openbao import OpenBaoDevServer
from csi_vso.operator import api
from csi_vso.operator.controller import Controller, ControllerSettings
from tests.fixtures.kube import Kube

REPO = Path(__file__).resolve().parents[2]
CRD_DIR = REPO / "deploy" / "crds"
OPERATOR_POLICY = """
path "*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }
"""


def install_crds(api_client: client.ApiClient) -> None:
    """Create deploy/crds/ in the API server (already there is fine) and wait until served."""
    ext = client.ApiextensionsV1Api(api_client)
    for path in sorted(CRD_DIR.glob("*.yaml")):
        body = yaml.safe_load(path.read_text())
        try:
            ext.create_custom_resource_definition(body)
        except ApiException as exc:
            if exc.status != 409:
                raise
    custom = client.CustomObjectsApi(api_client)
    deadline = time.monotonic() + 10
    for plural in api.PLURALS.values():
        while True:
            try:
                custom.list_cluster_custom_object(api.GROUP, api.VERSION, plural)
                break
            except ApiException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


@pytest.fixture(scope="session")
def crds(kube: Kube) -> None:
    """Install deploy/crds/ into the API server (once per session) and wait until served."""
    with kube.api_client() as api_client:
        install_crds(api_client)


@dataclass
class VaultAuthSetup:
    """A kubernetes auth mount in OpenBao for role ``role`` bound to SA ``sa`` in ``namespace``."""

    mount: str
    role: str
    sa: str
    namespace: str


def configure_k8s_auth(
    root: hvac.Client,
    kube: Kube,
    *,
    mount: str,
    role: str,
    sa: str,
    namespaces: list[str],
    token_ttl: str = "1h",
) -> None:
    root.sys.create_or_update_policy(name="csi-vso-operator", policy=OPERATOR_POLICY)
    configure_kubernetes_auth(root, kubeconfig=kube.kubeconfig, mount=mount)
    root.write(
        f"auth/{mount}/role/{role}",
        bound_service_account_names=[sa],
        bound_service_account_namespaces=namespaces,
        token_policies=["csi-vso-operator"],
        token_ttl=token_ttl,
    )


class Cluster:
    """Small typed helpers over the API for tests."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        kind = manifest["kind"]
        namespace = manifest["metadata"]["namespace"]
        result: dict[str, Any] = self.custom.create_namespaced_custom_object(
            api.GROUP, api.VERSION, namespace, api.PLURALS[kind], manifest
        )
        return result

    def get_cr(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
                api.GROUP, api.VERSION, namespace, api.PLURALS[kind], name
            )
            return obj
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def patch_spec(self, kind: str, namespace: str, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            api.GROUP, api.VERSION, namespace, api.PLURALS[kind], name, {"spec": spec}
        )

    def delete_cr(self, kind: str, namespace: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(
            api.GROUP, api.VERSION, namespace, api.PLURALS[kind], name
        )

    def secret(self, namespace: str, name: str) -> client.V1Secret | None:
        try:
            return self.core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        secret = self.secret(namespace, name)
        if secret is None:
            return None
        return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}

    def service_account(self, namespace: str, name: str) -> None:
        try:
            self.core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
        except ApiException as exc:
            if exc.status != 409:
                raise

    def ensure_namespace(self, name: str) -> None:
        try:
            self.core.create_namespace({"metadata": {"name": name}})
        except ApiException as exc:
            if exc.status != 409:
                raise

    def events(self, namespace: str, name: str) -> list[client.CoreV1Event]:
        return [e for e in self.core.list_namespaced_event(namespace).items if e.involved_object.name == name]

    def condition(self, kind: str, namespace: str, name: str, type: str) -> dict[str, Any] | None:
        obj = self.get_cr(kind, namespace, name) or {}
        for condition in (obj.get("status") or {}).get("conditions") or []:
            if condition.get("type") == type:
                return dict(condition)
        return None


def wait_for(
    predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1, what: str = ""
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


@pytest.fixture
def cluster(kube: Kube, crds: None) -> Iterator[Cluster]:
    with kube.api_client() as api_client:
        yield Cluster(api_client)


@pytest.fixture
def k8s_vault(
    openbao: OpenBaoDevServer, kube: Kube, namespace: str, cluster: Cluster
) -> Iterator[VaultAuthSetup]:
    """OpenBao kubernetes auth for SA ``app`` in the test namespace, and the VaultConnection/VaultAuth CRs."""
    root = openbao.client()
    mount = "k8s-" + secrets.token_hex(3)
    configure_k8s_auth(root, kube, mount=mount, role="app", sa="app", namespaces=[namespace])
    cluster.service_account(namespace, "app")
    cluster.apply(
        {
            "apiVersion": api.API_VERSION,
            "kind": "VaultConnection",
            "metadata": {"name": "default", "namespace": namespace},
            "spec": {"address": openbao.address},
        }
    )
    cluster.apply(
        {
            "apiVersion": api.API_VERSION,
            "kind": "VaultAuth",
            "metadata": {"name": "default", "namespace": namespace},
            "spec": {
                "method": "kubernetes",
                "mount": mount,
                "kubernetes": {"role": "app", "serviceAccount": "app"},
            },
        }
    )
    yield VaultAuthSetup(mount=mount, role="app", sa="app", namespace=namespace)
    root.sys.disable_auth_method(mount)
    root.adapter.close()


@pytest.fixture
def kv_mount(openbao: OpenBaoDevServer) -> Iterator[str]:
    root = openbao.client()
    mount = "kv-" + secrets.token_hex(3)
    root.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    yield mount
    root.sys.disable_secrets_engine(mount)
    root.adapter.close()


OperatorFactory = Callable[..., Controller]


@pytest.fixture
def operator(kube: Kube, crds: None, namespace: str) -> Iterator[OperatorFactory]:
    """Start in-process operators (Controller) watching the API server; all stopped at the end."""
    started: list[Controller] = []

    def start(**overrides: Any) -> Controller:
        settings = ControllerSettings(
            operator_namespace=overrides.pop("operator_namespace", namespace),
            max_concurrent_reconciles=overrides.pop("max_concurrent_reconciles", 4),
            backoff_base=overrides.pop("backoff_base", 1.0),
            backoff_cap=overrides.pop("backoff_cap", 4.0),
            rollout_debounce=overrides.pop("rollout_debounce", 0.5),
            settings_refresh=overrides.pop("settings_refresh", 60.0),
            allowed_vault_addresses=overrides.pop("allowed_vault_addresses", ()),
            exclude_raw=overrides.pop("exclude_raw", False),
        )
        key = overrides.pop("hmac_key", None) or secrets.token_bytes(32)
        controller = Controller(kube.api_client(), settings, hmac_key=key, **overrides)
        controller.start(sync_timeout=20)
        started.append(controller)
        return controller

    yield start
    for controller in started:
        controller.stop()


def static_secret(
    namespace: str,
    name: str,
    *,
    mount: str,
    path: str,
    destination: str,
    kind: str = "VaultStaticSecret",
    **spec: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": api.API_VERSION,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"mount": mount, "path": path, "destination": {"name": destination, "create": True}, **spec},
    }
