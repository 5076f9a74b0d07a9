"""The seed article's four manifests, applied as published (only the Vault address points at the
test's OpenBao), produce working destination Secrets.

OpenBao is laid out the way the manifests assume: a Vault namespace ``admin`` holding the
``kubernetes`` auth mount (role ``my-role`` for ServiceAccount ``my-sa`` in ``default``), a KV
mount ``secret`` with ``database/creds/app`` (the article's ``type: Opaque`` makes the operator
detect the KV version), and a database engine at ``database/postgres`` (so ``mount: database`` +
``path: postgres/creds/readonly`` is a real path) issuing PostgreSQL roles.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from csi_vso.devkit.kubeauth import placeholder_ca_pem
from csi_vso.devkit.openbao import OpenBaoDevServer
from csi_vso.devkit.postgres import PostgresServer
from csi_vso.operator import api
from tests.fixtures.kube import Kube
from tests.operator.conftest import Cluster, OperatorFactory, configure_k8s_auth, wait_for
from tests.operator.test_dynamic import CREATE, can_log_in

ARTICLE = Path(__file__).parent / "manifests" / "article.yaml"


@pytest.fixture
def article_vault(openbao: OpenBaoDevServer, postgres: PostgresServer, kube: Kube) -> Iterator[None]:
    root = openbao.client()
    if "admin/" not in (root.list("sys/namespaces") or {}).get("data", {}).get("keys", []):
        root.write("sys/namespaces/admin")
    admin = openbao.client()
    admin.adapter.namespace = "admin"
    configure_k8s_auth(admin, kube, mount="kubernetes", role="my-role", sa="my-sa", namespaces=["default"])
    admin.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    admin.secrets.kv.v2.create_or_update_secret(
        mount_point="secret", path="database/creds/app", secret={"username": "app", "password": "article-pw"}
    )
    admin.sys.enable_secrets_engine("database", path="database/postgres")
    admin.write(
        "database/postgres/config/pg",
        plugin_name="postgresql-database-plugin",
        connection_url=postgres.vault_connection_url(),
        username=postgres.superuser,
        password=postgres.password,
        allowed_roles="*",
    )
    admin.write(
        "database/postgres/roles/readonly",
        db_name="pg",
        creation_statements=CREATE,
        default_ttl="5m",
        max_ttl="1h",
    )
    yield
    admin.sys.disable_secrets_engine("database/postgres")
    admin.sys.disable_secrets_engine("secret")
    admin.sys.disable_auth_method("kubernetes")
    root.delete("sys/namespaces/admin")


def test_article_manifests_apply_unchanged_and_work(
    openbao: OpenBaoDevServer,
    postgres: PostgresServer,
    cluster: Cluster,
    article_vault: None,
    operator: OperatorFactory,
) -> None:
    manifests: list[dict[str, Any]] = [copy.deepcopy(d) for d in yaml.safe_load_all(ARTICLE.read_text()) if d]
    manifests[0]["spec"]["address"] = openbao.address  # the only edit: where Vault is
    cluster.ensure_namespace("vault-secrets-operator")
    cluster.service_account("default", "my-sa")
    cluster.core.create_namespaced_secret(
        "vault-secrets-operator",
        {"metadata": {"name": "vault-tls"}, "stringData": {"ca.crt": placeholder_ca_pem()}},
    )
    try:
        operator(operator_namespace="vault-secrets-operator")
        for manifest in manifests:
            cluster.apply(manifest)
        static = wait_for(
            lambda: cluster.secret_data("default", "db-creds-secret"), what="VaultSecret's Secret"
        )
        assert static == {"username": "app", "password": "article-pw"}
        assert cluster.secret("default", "db-creds-secret").type == "Opaque"
        dynamic = wait_for(
            lambda: cluster.secret_data("default", "app-db-creds-secret"), what="dynamic Secret"
        )
        assert can_log_in(postgres, dynamic)
        for kind, name in (("VaultSecret", "db-creds"), ("VaultDynamicSecret", "app-db-creds")):
            ready = cluster.condition(kind, "default", name, "Ready")
            assert ready is not None and ready["status"] == "True", ready
        auth = cluster.get_cr("VaultAuth", "default", "static-auth") or {}
        wait_for(
            lambda: (
                (cluster.get_cr("VaultAuth", "default", "static-auth") or {}).get("status", {}).get("valid")
            ),
            what="VaultAuth valid",
        )
        assert auth["spec"]["kubernetes"]["tokenReviewerServiceAccount"] == "my-sa"  # kept, not pruned
    finally:
        for manifest in reversed(manifests):
            try:
                cluster.delete_cr(
                    manifest["kind"], manifest["metadata"]["namespace"], manifest["metadata"]["name"]
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise
        wait_for(
            lambda: cluster.get_cr("VaultDynamicSecret", "default", "app-db-creds") is None, what="cleanup"
        )
        cluster.core.delete_namespaced_service_account("my-sa", "default")
        cluster.core.delete_namespace("vault-secrets-operator")
        for name in ("db-creds-secret", "app-db-creds-secret"):
            try:
                cluster.core.delete_namespaced_secret(name, "default")
            except ApiException as exc:
                if exc.status != 404:
                    raise


def test_article_kinds_are_served(cluster: Cluster) -> None:
    for kind in api.PLURALS:
        assert (
            cluster.custom.list_cluster_custom_object(api.GROUP, api.VERSION, api.PLURALS[kind])["items"]
            is not None
        )
