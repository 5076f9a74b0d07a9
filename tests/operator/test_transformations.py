"""Secret transformations end to end: real OpenBao (and PostgreSQL), the devkit API server, the
operator's controller. VSO's documented examples applied as published (see
``manifests/vso_transformations.yaml`` for the two adjustments and why), filters and ``_raw`` as
documented, and a live SecretTransformation edit re-rendering exactly its referrers."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from csi_vso.devkit.openbao import OpenBaoDevServer
from csi_vso.devkit.postgres import PostgresServer
from csi_vso.operator import api
from csi_vso.provider.atomic_writer import DATA_LINK
from tests.fixtures.kube import Kube
from tests.operator.conftest import Cluster, OperatorFactory, VaultAuthSetup, static_secret, wait_for
from tests.operator.test_dynamic import (  # noqa: F401  (database: a fixture)
    can_log_in,
    database,
    db_role,
    dynamic_secret,
    lease_status,
)
from tests.provider.driver_support import Cluster as DriverCluster
from tests.provider.driver_support import DriverClient, mount_request
from tests.provider.kubelet_support import KubeletDir, kubelet_fixture  # noqa: F401  (the kubelet fixture)
from tests.provider.provider_process import ProviderProcess

MANIFESTS = Path(__file__).parent / "manifests"
HOST = "postgres-postgresql.postgres.svc.cluster.local:5432"


def documented(file: str, namespace: str) -> list[dict[str, Any]]:
    """The documented objects, moved into the test's namespace."""
    docs = [d for d in yaml.safe_load_all((MANIFESTS / file).read_text()) if d]
    for doc in docs:
        doc["metadata"]["namespace"] = namespace
    return docs


def url_credentials(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    assert parts.scheme == "postgresql" and parts.netloc.endswith(f"@{HOST}"), "not the documented URL shape"
    assert parts.path == "/postgres" and parts.query == "sslmode=disable"
    return {"username": parts.username or "", "password": parts.password or ""}


def not_ready(cluster: Cluster, name: str, namespace: str, generation: int | None = None) -> dict[str, Any]:
    """Wait until VaultStaticSecret ``name``'s Ready condition is False (for ``generation``); return it."""

    def failing() -> dict[str, Any] | None:
        condition = cluster.condition("VaultStaticSecret", namespace, name, "Ready")
        if condition is None or condition["status"] != "False":
            return None
        if generation is not None and condition["observedGeneration"] != generation:
            return None
        return condition

    return dict(wait_for(failing, what=f"{name} not ready"))


def secret_transformation(namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": api.API_VERSION,
        "kind": "SecretTransformation",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def ready(cluster: Cluster, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    condition = cluster.condition(kind, namespace, name, "Ready")
    return condition if condition and condition["status"] == "True" else None


def test_documented_examples_give_exactly_the_documented_key(
    openbao: OpenBaoDevServer,
    postgres: PostgresServer,
    cluster: Cluster,
    k8s_vault: VaultAuthSetup,
    database: str,  # noqa: F811
    operator: OperatorFactory,
) -> None:
    ns = k8s_vault.namespace
    db_role(openbao, database, "dev-postgres", "10m", "1h")
    local, shared_templates, shared = documented("vso_transformations.yaml", ns)
    # VSO's --global-transformation-options=exclude-raw: the page's "single key named url".
    operator(exclude_raw=True)

    local["spec"]["mount"] = database
    cluster.apply(local)
    data = wait_for(lambda: cluster.secret_data(ns, "app-secret"), what="app-secret")
    assert set(data) == {"url"}
    creds = url_credentials(data["url"])
    assert can_log_in(postgres, creds)
    cluster.delete_cr("VaultDynamicSecret", ns, "example-vds")
    wait_for(lambda: cluster.get_cr("VaultDynamicSecret", ns, "example-vds") is None, what="VDS gone")
    # The garbage collector removes app-secret with its owner (ownerReference).
    wait_for(lambda: cluster.secret(ns, "app-secret") is None, what="app-secret gone")

    cluster.apply(shared_templates)
    assert wait_for(lambda: ready(cluster, "SecretTransformation", ns, "vso-templates"), what="ST valid")
    assert (cluster.get_cr("SecretTransformation", ns, "vso-templates") or {})["status"]["valid"] is True
    shared["spec"]["mount"] = database
    cluster.apply(shared)
    data = wait_for(
        lambda: cluster.secret_data(ns, "app-secret"), what="app-secret from the shared templates"
    )
    assert set(data) == {"url"}
    shared_creds = url_credentials(data["url"])
    assert can_log_in(postgres, shared_creds) and shared_creds != creds


def test_raw_includes_excludes_and_live_edits(
    openbao: OpenBaoDevServer,
    cluster: Cluster,
    k8s_vault: VaultAuthSetup,
    kv_mount: str,
    operator: OperatorFactory,
) -> None:
    ns = k8s_vault.namespace
    root = openbao.client()
    secret = {"username": "app", "password": "pw-0001", "host": "db.local", "port": 5432}
    root.secrets.kv.v2.create_or_update_secret(mount_point=kv_mount, path="app", secret=secret)
    cluster.apply(
        secret_transformation(
            ns,
            "shared",
            {
                "templates": {"dsn": {"text": '{{ template "userAt" . }}{{ .Secrets.host }}'}},
                "sourceTemplates": [
                    {"name": "helpers", "text": '{{ define "userAt" }}{{ .Secrets.username }}@{{ end }}'}
                ],
                "excludes": ["^password$"],
            },
        )
    )
    cluster.apply(
        secret_transformation(ns, "other", {"templates": {"other": {"text": "{{ .Secrets.port }}"}}})
    )
    operator()

    def vss(name: str, transformation: dict[str, Any]) -> None:
        obj = static_secret(ns, name, mount=kv_mount, path="app", destination=f"{name}-secret", type="kv-v2")
        obj["spec"]["destination"]["transformation"] = transformation
        cluster.apply(obj)

    vss("a", {"transformationRefs": [{"name": "shared"}]})
    vss("b", {"transformationRefs": [{"name": "shared"}], "excludeRaw": True})
    vss("c", {"templates": {"user": {"text": "{{ .Secrets.username | upper }}"}}, "includes": ["^ho"]})
    vss("d", {"transformationRefs": [{"name": "other"}], "excludes": [".*"]})
    a = wait_for(lambda: cluster.secret_data(ns, "a-secret"), what="a-secret")
    # Templates, then the source keys the excludes leave, then _raw: Vault's kv-v2 answer.
    assert {k: v for k, v in a.items() if k != "_raw"} == {
        "dsn": "app@db.local",
        "username": "app",
        "host": "db.local",
        "port": "5432",
    }
    raw = json.loads(a["_raw"])
    assert raw["data"] == secret and raw["metadata"]["version"] == 1
    b = wait_for(lambda: cluster.secret_data(ns, "b-secret"), what="b-secret")
    assert b == {"dsn": "app@db.local", "username": "app", "host": "db.local", "port": "5432"}  # no _raw
    c = wait_for(lambda: cluster.secret_data(ns, "c-secret"), what="c-secret")
    assert set(c) == {"user", "host", "_raw"} and c["user"] == "APP"  # includes never drop templated keys
    d = wait_for(lambda: cluster.secret_data(ns, "d-secret"), what="d-secret")
    assert set(d) == {"other", "_raw"} and d["other"] == "5432"
    versions = {n: cluster.secret(ns, f"{n}-secret").metadata.resource_version for n in "abcd"}  # type: ignore[union-attr]

    # Live edit of "shared": a and b (its referrers) are rendered again; c and d are not touched.
    cluster.patch_spec(
        "SecretTransformation",
        ns,
        "shared",
        {"templates": {"dsn": {"text": "{{ .Secrets.host }}:{{ .Secrets.port }}"}}},
    )
    wait_for(
        lambda: (cluster.secret_data(ns, "a-secret") or {}).get("dsn") == "db.local:5432",
        what="a re-rendered",
    )
    wait_for(
        lambda: (cluster.secret_data(ns, "b-secret") or {}).get("dsn") == "db.local:5432",
        what="b re-rendered",
    )
    for name in "cd":
        assert cluster.secret(ns, f"{name}-secret").metadata.resource_version == versions[name]  # type: ignore[union-attr]

    # A broken template: the SecretTransformation and its referrers say so (template, line,
    # problem, no value); the destinations keep what they had.
    before = cluster.secret_data(ns, "a-secret")
    cluster.patch_spec(
        "SecretTransformation", ns, "shared", {"templates": {"dsn": {"text": "ok\n{{ .Secrets.host "}}}
    )
    invalid = wait_for(
        lambda: (
            (cluster.get_cr("SecretTransformation", ns, "shared") or {}).get("status", {}).get("valid")
            is False
            and cluster.get_cr("SecretTransformation", ns, "shared")
        ),
        what="ST invalid",
    )
    assert invalid["status"]["error"].startswith(f"template: {ns}/shared/dsn:2:")
    failed = not_ready(cluster, "a", ns)
    assert failed["reason"] == "TemplateError" and f"{ns}/shared/dsn:2:" in failed["message"]
    events = [e for e in cluster.events(ns, "a") if e.reason == "TemplateError"]
    assert events and f"{ns}/shared/dsn:2:" in events[0].message
    assert cluster.secret_data(ns, "a-secret") == before
    everything = json.dumps(
        [
            cluster.get_cr(k, ns, n)
            for k, n in (("SecretTransformation", "shared"), ("VaultStaticSecret", "a"))
        ]
    ) + " ".join(e.message for e in cluster.events(ns, "a") + cluster.events(ns, "shared"))
    assert "pw-0001" not in everything and "db.local" not in everything

    # Fixed: healed without touching the custom resources that reference it.
    cluster.patch_spec("SecretTransformation", ns, "shared", {"templates": {"dsn": {"text": "fixed"}}})
    wait_for(lambda: (cluster.secret_data(ns, "a-secret") or {}).get("dsn") == "fixed", what="a healed")
    assert wait_for(lambda: ready(cluster, "VaultStaticSecret", ns, "a"), what="a ready again")


def test_missing_reference_and_bad_inline_template_leave_the_destination_alone(
    openbao: OpenBaoDevServer,
    cluster: Cluster,
    k8s_vault: VaultAuthSetup,
    kv_mount: str,
    operator: OperatorFactory,
) -> None:
    ns = k8s_vault.namespace
    root = openbao.client()
    root.secrets.kv.v2.create_or_update_secret(
        mount_point=kv_mount, path="app", secret={"password": "pw-secret-77"}
    )
    operator()
    obj = static_secret(ns, "e", mount=kv_mount, path="app", destination="e-secret", type="kv-v2")
    obj["spec"]["destination"]["transformation"] = {"transformationRefs": [{"name": "later"}]}
    cluster.apply(obj)
    failed = not_ready(cluster, "e", ns)
    assert failed["reason"] == "TransformationError"
    assert f"SecretTransformation {ns}/later not found" in failed["message"]
    assert cluster.secret(ns, "e-secret") is None
    # The reference appears: the secret is synced without any edit of its own.
    cluster.apply(
        secret_transformation(ns, "later", {"templates": {"len": {"text": "{{ len .Secrets.password }}"}}})
    )
    data = wait_for(lambda: cluster.secret_data(ns, "e-secret"), what="e-secret")
    assert data["len"] == "12" and data["password"] == "pw-secret-77"
    # An inline template that fails while executing: reported with its name; data kept.
    spec = copy.deepcopy(obj["spec"])
    spec["destination"]["transformation"] = {
        "templates": {"bad": {"text": "{{ index .Secrets.password 99 }}"}}
    }
    cluster.patch_spec("VaultStaticSecret", ns, "e", spec)
    failed = not_ready(cluster, "e", ns, generation=2)
    assert failed["reason"] == "TemplateError" and f"template: {ns}/e/bad:1:" in failed["message"]
    assert "pw-secret-77" not in failed["message"]
    assert cluster.secret_data(ns, "e-secret") == data


def test_a_templated_key_is_mounted_as_a_file_and_rewritten_in_place(
    openbao: OpenBaoDevServer,
    cluster: Cluster,
    k8s_vault: VaultAuthSetup,
    kv_mount: str,
    operator: OperatorFactory,
    kube: Kube,
    kubelet: KubeletDir,
    tmp_path: Path,
) -> None:
    """Operator renders ``app.properties`` from two KV keys; the provider (a real process on its
    unix socket) mounts it as a file; a change in Vault rewrites that file in place."""
    ns = k8s_vault.namespace
    root = openbao.client()
    root.secrets.kv.v2.create_or_update_secret(
        mount_point=kv_mount, path="app", secret={"user": "app", "password": "pw-1"}
    )
    operator()
    obj = static_secret(
        ns, "cfg", mount=kv_mount, path="app", destination="cfg", type="kv-v2", refreshAfter="1s"
    )
    obj["spec"]["destination"]["transformation"] = {
        "templates": {
            "app.properties": {
                "text": "{{- range $k, $v := .Secrets }}db.{{ $k }}={{ $v }}\n{{ end -}}",
            }
        },
        "excludes": [".*"],
        "excludeRaw": True,
    }
    cluster.apply(obj)
    wait_for(lambda: cluster.secret_data(ns, "cfg"), what="cfg Secret")
    driver_cluster = DriverCluster(cluster.api_client)
    pod = driver_cluster.pod(ns)
    socket_dir = tmp_path / "sockets"
    socket_dir.mkdir()
    provider = ProviderProcess(kube.kubeconfig, socket_dir, tmp_path / "state", kubelet_dir=kubelet.root)
    target = kubelet.target(pod.uid, "vol")
    try:
        provider.start().wait_serving()
        driver = DriverClient(provider.socket_path)
        try:
            objects = [{"secretName": "cfg", "key": "app.properties", "fileName": "app.properties"}]
            response = driver.mount(mount_request(pod, objects, str(target)))
        finally:
            driver.close()
        assert not response.error.code and len(response.files) == 0  # the provider wrote the file
        assert sorted(p.name for p in target.iterdir() if not p.name.startswith("..")) == ["app.properties"]
        assert (target / "app.properties").read_text() == "db.password=pw-1\ndb.user=app\n"
        first_generation = os.readlink(target / DATA_LINK)

        root.secrets.kv.v2.create_or_update_secret(
            mount_point=kv_mount, path="app", secret={"user": "app", "password": "pw-2"}
        )
        wait_for(
            lambda: (target / "app.properties").read_text() == "db.password=pw-2\ndb.user=app\n",
            what="the mounted file rewritten",
        )
        assert os.readlink(target / DATA_LINK) != first_generation  # swapped in place, same volume
    finally:
        provider.stop()


def test_editing_the_annotations_templates_read_re_renders(
    openbao: OpenBaoDevServer,
    cluster: Cluster,
    k8s_vault: VaultAuthSetup,
    kv_mount: str,
    operator: OperatorFactory,
) -> None:
    """``.Annotations`` are the custom resource's: editing them (no generation bump) re-renders."""
    ns = k8s_vault.namespace
    root = openbao.client()
    root.secrets.kv.v2.create_or_update_secret(mount_point=kv_mount, path="app", secret={"user": "app"})
    operator()
    obj = static_secret(ns, "f", mount=kv_mount, path="app", destination="f", type="kv-v2")
    obj["metadata"]["annotations"] = {"myapp/host": "one.example"}
    obj["spec"]["destination"]["transformation"] = {
        "templates": {"url": {"text": '{{ .Secrets.user }}@{{ get .Annotations "myapp/host" }}'}},
        "excludeRaw": True,
    }
    cluster.apply(obj)
    assert wait_for(lambda: cluster.secret_data(ns, "f"), what="f") == {
        "url": "app@one.example",
        "user": "app",
    }
    cluster.custom.patch_namespaced_custom_object(
        api.GROUP,
        api.VERSION,
        ns,
        "vaultstaticsecrets",
        "f",
        {"metadata": {"annotations": {"myapp/host": "two.example"}}},
    )
    wait_for(lambda: (cluster.secret_data(ns, "f") or {}).get("url") == "app@two.example", what="re-rendered")


def test_a_dynamic_secret_is_re_rendered_without_new_credentials(
    openbao: OpenBaoDevServer,
    postgres: PostgresServer,
    cluster: Cluster,
    k8s_vault: VaultAuthSetup,
    database: str,  # noqa: F811
    operator: OperatorFactory,
) -> None:
    """A SecretTransformation edit re-renders a VaultDynamicSecret from its ``_raw`` copy (same
    lease, same credentials); with ``excludeRaw`` there is no copy, so new credentials are issued."""
    ns = k8s_vault.namespace
    db_role(openbao, database, "app", "10m", "1h")
    cluster.apply(
        secret_transformation(ns, "dsn", {"templates": {"dsn": {"text": "{{ .Secrets.username }}@one"}}})
    )
    operator()
    for name, exclude_raw in (("keep", False), ("fresh", True)):
        obj = dynamic_secret(ns, name, mount=database, path="creds/app", destination=name)
        obj["spec"]["destination"]["transformation"] = {
            "transformationRefs": [{"name": "dsn"}],
            "excludeRaw": exclude_raw,
        }
        cluster.apply(obj)
    first = {n: wait_for(lambda n=n: cluster.secret_data(ns, n), what=n) for n in ("keep", "fresh")}
    leases = {n: wait_for(lambda n=n: lease_status(cluster, ns, n).get("id"), what="lease") for n in first}
    assert first["keep"]["dsn"] == first["keep"]["username"] + "@one" and "_raw" in first["keep"]
    assert "_raw" not in first["fresh"]

    cluster.patch_spec(
        "SecretTransformation", ns, "dsn", {"templates": {"dsn": {"text": "{{ .Secrets.username }}@two"}}}
    )
    for n in first:
        wait_for(
            lambda n=n: (cluster.secret_data(ns, n) or {}).get("dsn", "").endswith("@two"),
            what=f"{n} re-rendered",
        )
    keep = cluster.secret_data(ns, "keep") or {}
    assert {k: v for k, v in keep.items() if k != "dsn"} == {
        k: v for k, v in first["keep"].items() if k != "dsn"
    }
    assert lease_status(cluster, ns, "keep")["id"] == leases["keep"]
    fresh = cluster.secret_data(ns, "fresh") or {}
    assert fresh["username"] != first["fresh"]["username"] and fresh["dsn"] == fresh["username"] + "@two"
    assert can_log_in(postgres, {"username": keep["username"], "password": keep["password"]})
