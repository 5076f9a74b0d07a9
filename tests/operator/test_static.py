"""VaultStaticSecret end to end: real OpenBao, the devkit API server, the operator's controller."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from prometheus_client import REGISTRY

from csi_vso import protected
from csi_vso.devkit.kubeauth import api_server_ca_pem, cluster_role_binding
from csi_vso.devkit.openbao import OpenBaoDevServer
from csi_vso.operator import api
from tests.operator.conftest import Cluster, OperatorFactory, VaultAuthSetup, static_secret, wait_for


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def wait_alone(cluster: Cluster, kind: str, namespace: str) -> None:
    """Wait until no ``kind`` object exists outside ``namespace``.

    The write counters are per kind, not per object. Earlier tests' namespaces are deleted
    asynchronously (seconds on a real cluster), and an operator started meanwhile would
    reconcile their leftovers and move the counters; counting is only exact once this
    test's object is the only one of its kind.
    """

    def others() -> list[str]:
        listed = cluster.custom.list_cluster_custom_object(api.GROUP, api.VERSION, api.PLURALS[kind])
        namespaces = [o["metadata"]["namespace"] for o in listed["items"]]
        return [n for n in namespaces if n != namespace]

    wait_for(lambda: not others(), timeout=120, what=f"other {kind} objects to be gone")


def test_kv2_sync_update_noop_and_drift(
    openbao: OpenBaoDevServer,
    cluster: Cluster,
    k8s_vault: VaultAuthSetup,
    kv_mount: str,
    operator: OperatorFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="csi_vso")
    ns = k8s_vault.namespace
    root = openbao.client()
    root.secrets.kv.v2.create_or_update_secret(
        mount_point=kv_mount, path="app/db", secret={"password": "s3cret-1"}
    )
    wait_alone(cluster, "VaultStaticSecret", ns)
    operator()
    cr = cluster.apply(
        static_secret(
            ns,
            "db",
            mount=kv_mount,
            path="app/db",
            destination="db-secret",
            type="kv-v2",
            refreshAfter="2s",
            allowedKubernetesNamespaces=["team-b"],
            allowedServiceAccounts=["reader"],
        )
    )
    uid = cr["metadata"]["uid"]
    assert wait_for(lambda: cluster.secret_data(ns, "db-secret"), what="destination Secret") == {
        "password": "s3cret-1"
    }

    secret = cluster.secret(ns, "db-secret")
    assert secret is not None
    assert secret.metadata.labels == protected.protected_labels(uid)
    annotations = secret.metadata.annotations
    assert json.loads(annotations[protected.ALLOWED_NAMESPACES_ANNOTATION]) == ["team-b"]
    assert json.loads(annotations[protected.ALLOWED_SERVICE_ACCOUNTS_ANNOTATION]) == ["reader"]
    protected.parse_written_at(annotations[protected.WRITTEN_AT_ANNOTATION])
    [ref] = secret.metadata.owner_references
    assert (ref.kind, ref.name, ref.uid, ref.controller) == ("VaultStaticSecret", "db", uid, True)

    status = wait_for(
        lambda: (cluster.get_cr("VaultStaticSecret", ns, "db") or {}).get("status", {}).get("secretMAC")
    )
    assert status == annotations[protected.CONTENT_MAC_ANNOTATION]
    assert "s3cret" not in json.dumps(cluster.get_cr("VaultStaticSecret", ns, "db"))
    ready = cluster.condition("VaultStaticSecret", ns, "db", "Ready")
    assert ready is not None and ready["status"] == "True" and ready["observedGeneration"] == 1

    # Idle refreshes: Vault is read again, nothing is written.
    writes = counter("csi_vso_secret_writes_total", kind="VaultStaticSecret")
    skipped = counter("csi_vso_secret_writes_skipped_total", kind="VaultStaticSecret")
    status_writes = counter("csi_vso_status_writes_total", kind="VaultStaticSecret")
    cr_version = cluster.get_cr("VaultStaticSecret", ns, "db")["metadata"]["resourceVersion"]
    wait_for(
        lambda: counter("csi_vso_secret_writes_skipped_total", kind="VaultStaticSecret") >= skipped + 2,
        timeout=10,
        what="two no-op refreshes",
    )
    assert counter("csi_vso_secret_writes_total", kind="VaultStaticSecret") == writes
    assert (
        counter("csi_vso_status_writes_total", kind="VaultStaticSecret") == status_writes
    )  # no API write at all
    assert cluster.get_cr("VaultStaticSecret", ns, "db")["metadata"]["resourceVersion"] == cr_version
    assert cluster.secret(ns, "db-secret").metadata.resource_version == secret.metadata.resource_version

    # A new version in OpenBao reaches the Secret within the refresh interval.
    root.secrets.kv.v2.create_or_update_secret(
        mount_point=kv_mount, path="app/db", secret={"password": "s3cret-2"}
    )
    wait_for(
        lambda: cluster.secret_data(ns, "db-secret") == {"password": "s3cret-2"}, timeout=5, what="update"
    )

    # Drift: an edit is healed, a deletion is healed.
    cluster.core.patch_namespaced_secret(
        "db-secret", ns, {"data": {"password": base64.b64encode(b"tampered").decode()}}
    )
    wait_for(
        lambda: cluster.secret_data(ns, "db-secret") == {"password": "s3cret-2"},
        timeout=5,
        what="edit healed",
    )
    cluster.core.delete_namespaced_secret("db-secret", ns)
    wait_for(
        lambda: cluster.secret_data(ns, "db-secret") == {"password": "s3cret-2"},
        timeout=5,
        what="delete healed",
    )
    # Stripping the protected marks is drift too (the provider would stop serving the Secret).
    cluster.core.patch_namespaced_secret(
        "db-secret", ns, {"metadata": {"labels": {protected.PROTECTED_LABEL: None}}}
    )
    wait_for(
        lambda: protected.is_protected(cluster.secret(ns, "db-secret").metadata.labels),
        timeout=5,
        what="marks healed",
    )
    # Logged (with their extra fields), never with a value; nor in events, status or metric labels.
    assert "wrote destination Secret" in caplog.text
    assert all("s3cret" not in str(vars(record)) for record in caplog.records)
    events = cluster.events(ns, "db")
    assert any(e.reason == "SecretSynced" for e in events)
    assert "s3cret" not in str([e.to_dict() for e in events])
    assert "s3cret" not in json.dumps(cluster.get_cr("VaultStaticSecret", ns, "db"))
    labels = [sample.labels for metric in REGISTRY.collect() for sample in metric.samples]
    assert labels and all("s3cret" not in str(label) for label in labels)


@pytest.mark.parametrize(
    ("engine_version", "declared_type", "secret_type"),
    [
        ("1", "kv-v1", "Opaque"),
        ("1", "kubernetes.io/basic-auth", "kubernetes.io/basic-auth"),  # the article's meaning of `type`
        ("2", "Opaque", "Opaque"),
    ],
)
def test_kv_versions_and_type_as_secret_type(
    openbao: OpenBaoDevServer,
    cluster: Cluster,
    k8s_vault: VaultAuthSetup,
    operator: OperatorFactory,
    unique_path: str,
    engine_version: str,
    declared_type: str,
    secret_type: str,
) -> None:
    ns = k8s_vault.namespace
    root = openbao.client()
    root.sys.enable_secrets_engine("kv", path=unique_path, options={"version": engine_version})
    data = {"username": "app", "password": "pw-" + unique_path}
    if engine_version == "1":
        root.secrets.kv.v1.create_or_update_secret(mount_point=unique_path, path="creds", secret=data)
    else:
        root.secrets.kv.v2.create_or_update_secret(mount_point=unique_path, path="creds", secret=data)
    operator()
    cluster.apply(
        static_secret(ns, "creds", mount=unique_path, path="creds", destination="creds", type=declared_type)
    )
    assert wait_for(lambda: cluster.secret_data(ns, "creds")) == data
    assert cluster.secret(ns, "creds").type == secret_type
    root.sys.disable_secrets_engine(unique_path)


def test_kv2_version_pin(
    openbao: OpenBaoDevServer,
    cluster: Cluster,
    k8s_vault: VaultAuthSetup,
    kv_mount: str,
    operator: OperatorFactory,
) -> None:
    ns = k8s_vault.namespace
    root = openbao.client()
    for value in ("v1", "v2", "v3"):
        root.secrets.kv.v2.create_or_update_secret(
            mount_point=kv_mount, path="pinned", secret={"value": value}
        )
    operator()
    cluster.apply(
        static_secret(
            ns, "pinned", mount=kv_mount, path="pinned", destination="pinned", type="kv-v2", version=2
        )
    )
    assert wait_for(lambda: cluster.secret_data(ns, "pinned")) == {"value": "v2"}


def test_refuses_to_overwrite_a_secret_it_does_not_own(
    openbao: OpenBaoDevServer,
    cluster: Cluster,
    k8s_vault: VaultAuthSetup,
    kv_mount: str,
    operator: OperatorFactory,
) -> None:
    ns = k8s_vault.namespace
    openbao.client().secrets.kv.v2.create_or_update_secret(
        mount_point=kv_mount, path="x", secret={"k": "from-vault"}
    )
    cluster.core.create_namespaced_secret(ns, {"metadata": {"name": "theirs"}, "stringData": {"k": "mine"}})
    operator()
    cluster.apply(static_secret(ns, "grab", mount=kv_mount, path="x", destination="theirs", type="kv-v2"))
    ready = wait_for(
        lambda: (
            (c := cluster.condition("VaultStaticSecret", ns, "grab", "Ready"))
            and c["status"] == "False"
            and c
        ),
        what="SecretNotOwned condition",
    )
    assert ready["reason"] == "SecretNotOwned"
    assert ready["message"].split(" (attempt ")[0] == (
        f"Secret {ns}/theirs exists and is not managed by this VaultStaticSecret; "
        "set destination.overwrite: true to take it over"
    )
    assert "retrying in" in ready["message"]
    assert cluster.secret_data(ns, "theirs") == {"k": "mine"}
    assert any(e.reason == "SecretNotOwned" and e.type == "Warning" for e in cluster.events(ns, "grab"))

    # overwrite: true takes it over and marks it protected.
    cluster.patch_spec(
        "VaultStaticSecret", ns, "grab", {"destination": {"name": "theirs", "overwrite": True}}
    )
    wait_for(lambda: cluster.secret_data(ns, "theirs") == {"k": "from-vault"}, what="takeover")
    assert protected.is_protected(cluster.secret(ns, "theirs").metadata.labels)


def test_vaultsecret_kind_and_destination_metadata(
    openbao: OpenBaoDevServer,
    cluster: Cluster,
    k8s_vault: VaultAuthSetup,
    kv_mount: str,
    operator: OperatorFactory,
) -> None:
    ns = k8s_vault.namespace
    openbao.client().secrets.kv.v2.create_or_update_secret(
        mount_point=kv_mount, path="cfg", secret={"n": 3, "flag": True}
    )
    operator()
    manifest: dict[str, Any] = static_secret(
        ns, "cfg", mount=kv_mount, path="cfg", destination="cfg", kind="VaultSecret"
    )
    manifest["spec"]["destination"].update(
        labels={"team": "a", protected.PROTECTED_LABEL: "false"},
        annotations={"note": "x", protected.ALLOWED_NAMESPACES_ANNOTATION: '["*"]'},
    )
    cluster.apply(manifest)
    assert wait_for(lambda: cluster.secret_data(ns, "cfg")) == {"n": "3", "flag": "true"}
    secret = cluster.secret(ns, "cfg")
    assert secret.metadata.labels["team"] == "a"
    assert secret.metadata.labels[protected.PROTECTED_LABEL] == "true"  # ours win
    assert secret.metadata.annotations["note"] == "x"
    assert secret.metadata.annotations[protected.ALLOWED_NAMESPACES_ANNOTATION] == "[]"
    assert secret.metadata.owner_references[0].kind == "VaultSecret"


@pytest.mark.parametrize(
    ("auth_spec", "secret_spec", "reason", "message"),
    [
        (
            {"method": "ldap"},
            {},
            "VaultAuthInvalid",
            "VaultAuth {ns}/bad is invalid: invalid VaultAuth: method 'ldap' is not supported "
            "(use one of: kubernetes, jwt, appRole)",
        ),
        (None, {"path": "does/not/exist"}, "VaultNotFound", None),
        (
            {
                "method": "kubernetes",
                "kubernetes": {"role": "app", "serviceAccount": "app"},
                "allowedNamespaces": ["nobody"],
            },
            {"vaultAuthRef": "{other}/bad"},
            "VaultAuthNotAllowed",
            "VaultAuth {other}/bad does not allow namespace '{ns}' (see its allowedNamespaces)",
        ),
        (
            None,
            {"destination": {"name": "Bad_Name", "create": True}},
            "InvalidSpec",
            "invalid VaultStaticSecret: destination.name 'Bad_Name' is not a valid Secret name",
        ),
    ],
)
def test_bad_custom_resources_get_a_condition_and_an_event(
    openbao: OpenBaoDevServer,
    cluster: Cluster,
    k8s_vault: VaultAuthSetup,
    kv_mount: str,
    operator: OperatorFactory,
    auth_spec: dict[str, Any] | None,
    secret_spec: dict[str, Any],
    reason: str,
    message: str | None,
) -> None:
    ns = k8s_vault.namespace
    other = ns + "-o"
    cluster.ensure_namespace(other)
    try:
        spec: dict[str, Any] = {"vaultAuthRef": "default"}
        if auth_spec is not None:
            auth_ns = other if "{other}" in str(secret_spec.get("vaultAuthRef", "")) else ns
            cluster.apply(
                {
                    "apiVersion": api.API_VERSION,
                    "kind": "VaultAuth",
                    "metadata": {"name": "bad", "namespace": auth_ns},
                    "spec": auth_spec,
                }
            )
            spec["vaultAuthRef"] = "bad"
        spec.update(
            {k: v.format(ns=ns, other=other) if isinstance(v, str) else v for k, v in secret_spec.items()}
        )
        manifest = static_secret(ns, "broken", mount=kv_mount, path="p", destination="broken", type="kv-v2")
        manifest["spec"].update(spec)
        controller = operator()
        cluster.apply(manifest)
        condition = wait_for(
            lambda: (
                (c := cluster.condition("VaultStaticSecret", ns, "broken", "Ready"))
                and c["status"] == "False"
                and c
            ),
            what=f"{reason} condition",
        )
        assert condition["reason"] == reason
        if message is not None:
            assert condition["message"].split(" (attempt ")[0] == message.format(ns=ns, other=other)
        wait_for(lambda: any(e.reason == reason for e in cluster.events(ns, "broken")), what="event")
        assert cluster.secret(ns, "broken") is None and cluster.secret(ns, "Bad_Name") is None
        assert all(w.is_alive() for w in controller._workers)  # no crash
    finally:
        cluster.core.delete_namespace(other)


def _apply_connection_and_auth(
    cluster: Cluster, openbao: OpenBaoDevServer, namespace: str, auth_spec: dict[str, Any]
) -> None:
    """VaultConnection and VaultAuth ``default`` in ``namespace``: OpenBao's address and ``auth_spec``."""
    for manifest in (
        {"kind": "VaultConnection", "spec": {"address": openbao.address}},
        {"kind": "VaultAuth", "spec": auth_spec},
    ):
        cluster.apply(
            {
                "apiVersion": api.API_VERSION,
                "metadata": {"name": "default", "namespace": namespace},
                **manifest,
            }
        )


OIDC_DISCOVERY_BINDING = "csi-vso-test-anonymous-oidc-discovery"


@pytest.fixture
def anonymous_oidc_discovery(kube: Any) -> Iterator[None]:
    """OpenBao's jwt auth fetches the JWKS without credentials. A real API server answers that
    403 unless ``system:service-account-issuer-discovery`` is bound to ``system:unauthenticated``
    (the documented step for external OIDC consumers); bind it for the test, unbind after."""
    unauthenticated = {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Group",
        "name": "system:unauthenticated",
    }
    binding = cluster_role_binding(
        OIDC_DISCOVERY_BINDING, "system:service-account-issuer-discovery", [unauthenticated]
    )
    with kube.api_client() as admin:
        rbac = client.RbacAuthorizationV1Api(admin)
        rbac.create_cluster_role_binding(binding)
        try:
            yield
        finally:
            rbac.delete_cluster_role_binding(OIDC_DISCOVERY_BINDING)


def _jwt_mount(
    openbao: OpenBaoDevServer,
    kube: Any,
    namespace: str,
    kv_mount: str,
    *,
    prefix: str,
    role: str,
    audience: str,
) -> str:
    """A jwt auth mount trusting the API server's JWKS; ``role`` admits ServiceAccount ``role`` of
    ``namespace`` for ``audience`` and may read ``kv_mount``. Returns the mount path."""
    root = openbao.client()
    mount = f"{prefix}-{namespace}"
    root.sys.create_or_update_policy(name=mount, policy=f'path "{kv_mount}/*" {{ capabilities = ["read"] }}')
    root.sys.enable_auth_method("jwt", path=mount)
    config: dict[str, Any] = {"jwks_url": f"{kube.url}/openid/v1/jwks"}
    ca = api_server_ca_pem(kube.kubeconfig)
    if ca:  # a real API server (and the devkit's with tls=True) serves the JWKS over HTTPS
        config["jwks_ca_pem"] = ca
    root.write(f"auth/{mount}/config", **config)
    root.write(
        f"auth/{mount}/role/{role}",
        role_type="jwt",
        user_claim="sub",
        bound_audiences=[audience],
        bound_subject=f"system:serviceaccount:{namespace}:{role}",
        token_policies=[mount],
        token_ttl="10m",
    )
    return mount


def _approle_login(
    openbao: OpenBaoDevServer,
    cluster: Cluster,
    namespace: str,
    kv_mount: str,
    *,
    prefix: str,
    path: str,
    value: str,
) -> tuple[str, str]:
    """An AppRole mount whose role reads ``kv_mount``, a KV value at ``path``, the secret id in
    Secret ``approle``, and VaultConnection/VaultAuth ``default`` logging in with it.
    Returns (auth mount, secret id)."""
    root = openbao.client()
    mount = f"{prefix}-{namespace}"
    root.sys.create_or_update_policy(name=mount, policy=f'path "{kv_mount}/*" {{ capabilities = ["read"] }}')
    root.sys.enable_auth_method("approle", path=mount)
    root.write(f"auth/{mount}/role/app", token_policies=[mount], token_ttl="10m")
    role_id = root.read(f"auth/{mount}/role/app/role-id")["data"]["role_id"]
    secret_id = root.write(f"auth/{mount}/role/app/secret-id")["data"]["secret_id"]
    root.secrets.kv.v2.create_or_update_secret(mount_point=kv_mount, path=path, secret={"v": value})
    cluster.core.create_namespaced_secret(
        namespace, {"metadata": {"name": "approle"}, "stringData": {"id": secret_id}}
    )
    auth = {"method": "appRole", "mount": mount, "appRole": {"roleId": role_id, "secretRef": "approle"}}
    _apply_connection_and_auth(cluster, openbao, namespace, auth)
    return mount, secret_id


def test_approle_auth_from_a_secret(
    openbao: OpenBaoDevServer, cluster: Cluster, namespace: str, kv_mount: str, operator: OperatorFactory
) -> None:
    root = openbao.client()
    mount, _ = _approle_login(
        openbao, cluster, namespace, kv_mount, prefix="ar", path="ar", value="via-approle"
    )
    operator()
    cluster.apply(static_secret(namespace, "ar", mount=kv_mount, path="ar", destination="ar", type="kv-v2"))
    assert wait_for(lambda: cluster.secret_data(namespace, "ar")) == {"v": "via-approle"}
    root.sys.disable_auth_method(mount)


def test_tls_connection_needs_the_ca_from_a_secret(
    kube: Any, cluster: Cluster, namespace: str, operator: OperatorFactory
) -> None:
    from tests.operator.conftest import configure_k8s_auth

    with OpenBaoDevServer(tls=True) as bao:
        root = bao.client()
        configure_k8s_auth(root, kube, mount="kubernetes", role="app", sa="app", namespaces=[namespace])
        root.sys.enable_secrets_engine("kv", path="kv", options={"version": "2"})
        root.secrets.kv.v2.create_or_update_secret(mount_point="kv", path="tls", secret={"v": "over-tls"})
        cluster.service_account(namespace, "app")
        cluster.core.create_namespaced_secret(
            namespace, {"metadata": {"name": "bao-ca"}, "stringData": {"ca.crt": bao.ca_cert_pem}}
        )
        assert bao.address.startswith("https://")
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
        operator()
        cluster.apply(static_secret(namespace, "t", mount="kv", path="tls", destination="t", type="kv-v2"))
        failed = wait_for(
            lambda: (
                (c := cluster.condition("VaultStaticSecret", namespace, "t", "Ready"))
                and c["status"] == "False"
                and c
            ),
            what="TLS failure without the CA",
        )
        assert failed["reason"] == "VaultInvalid" and "TLS verification failed" in failed["message"]
        cluster.patch_spec("VaultConnection", namespace, "default", {"caCertSecretRef": "bao-ca"})
        assert wait_for(lambda: cluster.secret_data(namespace, "t"), timeout=15) == {"v": "over-tls"}


@pytest.mark.usefixtures("anonymous_oidc_discovery")
def test_jwt_auth_with_a_service_account_token(
    openbao: OpenBaoDevServer,
    kube: Any,
    cluster: Cluster,
    namespace: str,
    kv_mount: str,
    operator: OperatorFactory,
) -> None:
    """jwt auth verifies the TokenRequest JWT against the API server's JWKS (no TokenReview)."""
    root = openbao.client()
    mount = _jwt_mount(openbao, kube, namespace, kv_mount, prefix="jwt", role="app", audience="vault")
    root.secrets.kv.v2.create_or_update_secret(mount_point=kv_mount, path="jwt", secret={"v": "via-jwt"})
    cluster.service_account(namespace, "app")
    _apply_connection_and_auth(
        cluster,
        openbao,
        namespace,
        {
            "method": "jwt",
            "mount": mount,
            "jwt": {"role": "app", "serviceAccount": "app", "audiences": ["vault"]},
        },
    )
    operator()
    cluster.apply(static_secret(namespace, "j", mount=kv_mount, path="jwt", destination="j", type="kv-v2"))
    assert wait_for(lambda: cluster.secret_data(namespace, "j")) == {"v": "via-jwt"}
    root.sys.disable_auth_method(mount)


def test_changing_the_destination_type_recreates_the_secret(
    openbao: OpenBaoDevServer,
    cluster: Cluster,
    k8s_vault: VaultAuthSetup,
    kv_mount: str,
    operator: OperatorFactory,
) -> None:
    ns = k8s_vault.namespace
    openbao.client().secrets.kv.v2.create_or_update_secret(
        mount_point=kv_mount, path="t", secret={"username": "u"}
    )
    operator()
    cluster.apply(static_secret(ns, "t", mount=kv_mount, path="t", destination="t", type="kv-v2"))
    first = wait_for(lambda: cluster.secret(ns, "t"), what="sync")
    assert first.type == "Opaque"
    cluster.patch_spec(
        "VaultStaticSecret", ns, "t", {"destination": {"name": "t", "type": "kubernetes.io/basic-auth"}}
    )
    second = wait_for(
        lambda: (s := cluster.secret(ns, "t")) and s.type == "kubernetes.io/basic-auth" and s, what="type"
    )
    assert second.metadata.uid != first.metadata.uid  # a new object: the type is immutable
    assert cluster.secret_data(ns, "t") == {"username": "u"}


def test_vault_auth_and_connection_report_validity(
    cluster: Cluster, namespace: str, operator: OperatorFactory
) -> None:
    # A backoff far beyond the wait below: the VaultAuth heals because creating the connection
    # re-queues it, not because its failed reconcile came round again.
    operator(operator_namespace=namespace + "-ops", backoff_base=120.0, backoff_cap=120.0)
    cluster.apply(
        {
            "apiVersion": api.API_VERSION,
            "kind": "VaultAuth",
            "metadata": {"name": "a", "namespace": namespace},
            "spec": {
                "method": "appRole",
                "vaultConnectionRef": "conn",
                "appRole": {"roleId": "r", "secretRef": "s"},
            },
        }
    )
    status = wait_for(
        lambda: (cluster.get_cr("VaultAuth", namespace, "a") or {}).get("status", {}).get("error"),
        what="invalid VaultAuth",
    )
    assert status.startswith(f"VaultConnection {namespace}/conn or {namespace}-ops/conn not found")
    assert cluster.get_cr("VaultAuth", namespace, "a")["status"]["valid"] is False
    cluster.apply(
        {
            "apiVersion": api.API_VERSION,
            "kind": "VaultConnection",
            "metadata": {"name": "conn", "namespace": namespace},
            "spec": {"address": "http://127.0.0.1:1"},
        }
    )
    wait_for(
        lambda: (cluster.get_cr("VaultAuth", namespace, "a") or {}).get("status", {}).get("valid") is True,
        what="valid once the connection exists",
    )
    assert (cluster.get_cr("VaultConnection", namespace, "conn") or {}).get("status", {}).get("valid") is True


def test_hmac_secret_data_false_keeps_no_mac_in_status(
    openbao: OpenBaoDevServer,
    cluster: Cluster,
    k8s_vault: VaultAuthSetup,
    kv_mount: str,
    operator: OperatorFactory,
) -> None:
    ns = k8s_vault.namespace
    openbao.client().secrets.kv.v2.create_or_update_secret(mount_point=kv_mount, path="h", secret={"k": "v"})
    operator()
    cluster.apply(
        static_secret(ns, "h", mount=kv_mount, path="h", destination="h", type="kv-v2", hmacSecretData=False)
    )
    wait_for(lambda: cluster.condition("VaultStaticSecret", ns, "h", "Ready"), what="synced")
    assert "secretMAC" not in cluster.get_cr("VaultStaticSecret", ns, "h")["status"]
    assert cluster.secret(ns, "h").metadata.annotations[
        protected.CONTENT_MAC_ANNOTATION
    ]  # the provider still versions it


@pytest.mark.usefixtures("anonymous_oidc_discovery")
def test_jwt_auth_with_a_jwt_from_a_secret(
    openbao: OpenBaoDevServer,
    kube: Any,
    cluster: Cluster,
    namespace: str,
    kv_mount: str,
    operator: OperatorFactory,
) -> None:
    """jwt.secretRef: the JWT is read from key 'jwt' of a Secret at each login (no TokenRequest by us)."""
    root = openbao.client()
    mount = _jwt_mount(openbao, kube, namespace, kv_mount, prefix="jwts", role="ci", audience="ci")
    root.secrets.kv.v2.create_or_update_secret(mount_point=kv_mount, path="jwts", secret={"v": "via-secret"})
    cluster.service_account(namespace, "ci")
    token = cluster.core.create_namespaced_service_account_token(
        "ci", namespace, {"spec": {"audiences": ["ci"], "expirationSeconds": 3600}}
    ).status.token
    _apply_connection_and_auth(
        cluster,
        openbao,
        namespace,
        {"method": "jwt", "mount": mount, "jwt": {"role": "ci", "secretRef": "ci-jwt"}},
    )
    operator()
    cluster.apply(static_secret(namespace, "j", mount=kv_mount, path="jwts", destination="j", type="kv-v2"))
    missing = wait_for(
        lambda: (c := cluster.condition("VaultStaticSecret", namespace, "j", "Ready")) and c,
        what="no JWT yet",
    )
    assert missing["status"] == "False" and missing["reason"] == "SecretNotFound"
    assert missing["message"].startswith(f"Secret {namespace}/ci-jwt (JWT) not found")
    cluster.core.create_namespaced_secret(
        namespace, {"metadata": {"name": "ci-jwt"}, "stringData": {"jwt": token}}
    )
    assert wait_for(lambda: cluster.secret_data(namespace, "j"), timeout=15) == {"v": "via-secret"}
    assert token not in json.dumps(cluster.get_cr("VaultStaticSecret", namespace, "j"))
    root.sys.disable_auth_method(mount)


def test_rotated_approle_secret_id_is_picked_up_without_editing_the_vault_auth(
    openbao: OpenBaoDevServer, cluster: Cluster, namespace: str, kv_mount: str, operator: OperatorFactory
) -> None:
    """The secret id is re-read from its Secret (settings_refresh): a rotation needs no CR edit."""
    root = openbao.client()
    mount, first_id = _approle_login(
        openbao, cluster, namespace, kv_mount, prefix="arr", path="arr", value="one"
    )
    operator(settings_refresh=0.5)
    cluster.apply(
        static_secret(
            namespace, "arr", mount=kv_mount, path="arr", destination="arr", type="kv-v2", refreshAfter="1s"
        )
    )
    assert wait_for(lambda: cluster.secret_data(namespace, "arr")) == {"v": "one"}

    # Rotate: a new secret id in the Secret, the old one destroyed, the old token revoked.
    second_id = root.write(f"auth/{mount}/role/app/secret-id")["data"]["secret_id"]
    cluster.core.replace_namespaced_secret(
        "approle", namespace, {"metadata": {"name": "approle"}, "stringData": {"id": second_id}}
    )
    root.write(f"auth/{mount}/role/app/secret-id/destroy", secret_id=first_id)
    root.sys.revoke_prefix(f"auth/{mount}/login")
    root.secrets.kv.v2.create_or_update_secret(mount_point=kv_mount, path="arr", secret={"v": "two"})
    wait_for(
        lambda: cluster.secret_data(namespace, "arr") == {"v": "two"}, timeout=15, what="sync after rotation"
    )
    ready = cluster.condition("VaultStaticSecret", namespace, "arr", "Ready")
    assert ready is not None and ready["status"] == "True"
    root.sys.disable_auth_method(mount)
