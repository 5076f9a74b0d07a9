"""CRDs and spec parsing: the article's manifests fit the schemas and parse; bad specs name every problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from csi_vso.operator import api, crds
from tests.operator import schema_check

MANIFESTS = Path(__file__).parent / "manifests"
REPO = Path(__file__).resolve().parents[2]


def article() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((MANIFESTS / "article.yaml").read_text()) if d]


def crd_for(kind: str) -> dict[str, Any]:
    for crd in crds.build_crds():
        if crd["spec"]["names"]["kind"] == kind:
            return crd
    raise KeyError(kind)


def test_deploy_crds_match_generator() -> None:
    files = sorted((REPO / "deploy" / "crds").glob("*.yaml"))
    assert [p.name for p in files] == sorted(crds.file_name(c) for c in crds.build_crds())
    for crd in crds.build_crds():
        on_disk = yaml.safe_load((REPO / "deploy" / "crds" / crds.file_name(crd)).read_text())
        assert on_disk == crd, f"deploy/crds/{crds.file_name(crd)} is stale: regenerate it"


def test_every_crd_has_status_subresource_and_ready_column() -> None:
    for crd in crds.build_crds():
        version = crd["spec"]["versions"][0]
        assert version["subresources"] == {"status": {}}
        assert "Ready" in [c["name"] for c in version["additionalPrinterColumns"]]


def test_vaultsecret_and_vaultstaticsecret_share_one_schema() -> None:
    a = crd_for("VaultSecret")["spec"]["versions"][0]["schema"]
    b = crd_for("VaultStaticSecret")["spec"]["versions"][0]["schema"]
    assert a["openAPIV3Schema"]["properties"]["spec"] == b["openAPIV3Schema"]["properties"]["spec"]


@pytest.mark.parametrize("index", range(4))
def test_article_manifests_fit_the_crd_schema(index: int) -> None:
    manifest = article()[index]
    schema = crd_for(manifest["kind"])["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert schema_check.problems(schema, manifest) == []


def test_schema_checker_catches_unknown_and_mistyped_fields() -> None:
    schema = crd_for("VaultSecret")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    bad = {"spec": {"mount": "kv", "path": "p", "destination": {"name": "x", "create": "yes"}, "bogus": 1}}
    assert schema_check.problems(schema, bad) == [
        ".spec.destination.create: expected boolean, got str",
        ".spec.bogus: unknown field (would be pruned)",
    ]


def test_article_manifests_parse() -> None:
    connection, auth, static, dynamic = article()
    c = api.parse_connection(connection)
    assert (c.address, c.ca_cert_secret, c.skip_tls_verify, c.timeout) == (
        "https://vault.example.com:8200",
        "vault-tls",
        False,
        30.0,
    )
    a = api.parse_auth(auth)
    assert a.method == "kubernetes" and a.mount == "kubernetes" and a.vault_namespace == "admin"
    assert a.connection_ref == api.ObjectRef("default") and a.allowed_namespaces is None
    assert a.kubernetes == api.ServiceAccountLogin("my-role", "my-sa", (), 600)
    s = api.parse_static_secret(static)
    assert (s.kv_version, s.secret_type, s.mount, s.path) == (None, "Opaque", "secret", "database/creds/app")
    assert s.destination == api.Destination("db-creds-secret", create=True, overwrite=False)
    assert s.auth_ref == api.ObjectRef("static-auth") and s.refresh_after == 3600.0
    d = api.parse_dynamic_secret(dynamic)
    assert (d.revocation_duration, d.rollout_pods, d.renewal_percent, d.method) == (300.0, True, 67, "GET")
    assert d.access == api.AccessPolicy((), ())


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("5m", 300.0), ("1h30m", 5400.0), ("1.5h", 5400.0), ("250ms", 0.25), ("2h0m0s", 7200.0)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert api.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "m", "5 m", "5d", "1h-3m", "-5s"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        api.parse_duration(text)


def static(spec: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "VaultStaticSecret", "spec": spec}


@pytest.mark.parametrize(
    ("spec", "attr", "expected"),
    [
        ({"type": "kv-v2"}, "kv_version", 2),
        ({"type": "kv-v1"}, "kv_version", 1),
        ({"type": "kubernetes.io/basic-auth"}, "secret_type", "kubernetes.io/basic-auth"),
        ({"type": "kubernetes.io/basic-auth"}, "kv_version", None),
        (
            {"type": "kv-v2", "destination": {"name": "d", "type": "kubernetes.io/tls"}},
            "secret_type",
            "kubernetes.io/tls",
        ),
        ({}, "secret_type", "Opaque"),
        ({"refreshAfter": "10s"}, "refresh_after", 10.0),
        ({"version": 3, "type": "kv-v2"}, "version", 3),
        ({"vaultAuthRef": "ops/auth"}, "auth_ref", api.ObjectRef("auth", "ops")),
        ({}, "auth_ref", api.ObjectRef("default")),
        ({"mount": "/kv/", "path": "/a/b/"}, "path", "a/b"),
        (
            {"allowedKubernetesNamespaces": ["*"], "allowedServiceAccounts": ["app", "ns/x"]},
            "access",
            api.AccessPolicy(("*",), ("app", "ns/x")),
        ),
        (
            {"rolloutRestartTargets": [{"kind": "Deployment", "name": "web"}]},
            "rollout_targets",
            (api.RolloutTarget("Deployment", "web"),),
        ),
    ],
)
def test_static_spec_fields(spec: dict[str, Any], attr: str, expected: object) -> None:
    base = {"mount": "kv", "path": "p", "destination": {"name": "d"}}
    base.update(spec)
    assert getattr(api.parse_static_secret(static(base)), attr) == expected


@pytest.mark.parametrize(
    ("spec", "problems"),
    [
        ({}, ("mount is required", "path is required", "destination is required")),
        (
            {
                "mount": "kv",
                "path": "p",
                "destination": {"name": "Bad_Name", "create": "yes"},
                "refreshAfter": "soon",
            },
            (
                "refreshAfter: 'soon' is not a duration like 30s, 5m or 1h30m",
                "destination.name 'Bad_Name' is not a valid Secret name",
                "destination.create must be true or false",
            ),
        ),
        (
            {"mount": "kv", "path": "p", "destination": {"name": "d"}, "type": "kv-v1", "version": 2},
            ("version can only be pinned for kv-v2 secrets",),
        ),
        (
            {"mount": "kv", "path": "p", "destination": {"name": "d"}, "type": "not a type!"},
            ("type 'not a type!' is neither kv-v1, kv-v2 nor a Secret type",),
        ),
        (
            {
                "mount": "kv",
                "path": "p",
                "destination": {"name": "d"},
                "rolloutRestartTargets": [{"kind": "Pod", "name": "x"}],
                "allowedKubernetesNamespaces": ["Bad NS"],
            },
            (
                "rolloutRestartTargets[0].kind 'Pod' is not one of Deployment, StatefulSet, DaemonSet",
                "allowedKubernetesNamespaces: 'Bad NS' is not a namespace name or '*'",
            ),
        ),
    ],
)
def test_static_spec_reports_every_problem(spec: dict[str, Any], problems: tuple[str, ...]) -> None:
    with pytest.raises(api.SpecError) as caught:
        api.parse_static_secret(static(spec))
    assert caught.value.problems == problems


@pytest.mark.parametrize(
    ("spec", "problems"),
    [
        ({"method": "ldap"}, ("method 'ldap' is not supported (use one of: kubernetes, jwt, appRole)",)),
        ({}, ("method is required",)),
        (
            {"method": "kubernetes"},
            (
                "kubernetes is required when method is kubernetes",
                "kubernetes.role is required",
                "kubernetes.serviceAccount is required",
            ),
        ),
        (
            {
                "method": "kubernetes",
                "kubernetes": {"role": "r", "serviceAccount": "sa", "tokenExpirationSeconds": 60},
            },
            ("kubernetes.tokenExpirationSeconds must be at least 600 (got 60)",),
        ),
        ({"method": "jwt", "jwt": {"role": "r"}}, ("jwt needs serviceAccount or secretRef",)),
        (
            {"method": "appRole", "appRole": {}},
            ("appRole.roleId is required", "appRole.secretRef is required"),
        ),
    ],
)
def test_auth_spec_problems(spec: dict[str, Any], problems: tuple[str, ...]) -> None:
    with pytest.raises(api.SpecError) as caught:
        api.parse_auth({"spec": spec})
    assert caught.value.problems == problems
    assert str(caught.value).startswith("invalid VaultAuth: ")


@pytest.mark.parametrize(
    ("spec", "problems"),
    [
        ({}, ("address is required",)),
        ({"address": "vault:8200"}, ("address 'vault:8200' must be an http:// or https:// URL",)),
        (
            {"address": "http://v", "caCertSecretRef": "a", "tlsSecretRef": "b", "timeout": "x"},
            (
                "caCertSecretRef and tlsSecretRef name different Secrets; set one",
                "timeout: 'x' is not a duration like 30s, 5m or 1h30m",
            ),
        ),
    ],
)
def test_connection_spec_problems(spec: dict[str, Any], problems: tuple[str, ...]) -> None:
    with pytest.raises(api.SpecError) as caught:
        api.parse_connection({"spec": spec})
    assert caught.value.problems == problems


@pytest.mark.parametrize(
    ("spec", "attr", "expected"),
    [
        ({}, "method", "GET"),
        ({"params": {"ttl": "1m"}}, "method", "PUT"),
        ({"requestHTTPMethod": "POST"}, "method", "PUT"),
        ({"renewalPercent": 50}, "renewal_percent", 50),
        ({"revoke": True}, "revoke", True),
        ({"rollout": "none"}, "rollout_pods", False),
        ({"revocationDuration": "30s"}, "revocation_duration", 30.0),
    ],
)
def test_dynamic_spec_fields(spec: dict[str, Any], attr: str, expected: object) -> None:
    base = {"mount": "db", "path": "creds/r", "destination": {"name": "d"}, **spec}
    assert getattr(api.parse_dynamic_secret({"spec": base}), attr) == expected


def test_dynamic_spec_problems() -> None:
    with pytest.raises(api.SpecError) as caught:
        api.parse_dynamic_secret(
            {
                "spec": {
                    "mount": "db",
                    "path": "c",
                    "destination": {"name": "d"},
                    "renewalPercent": 95,
                    "rollout": "nodes",
                    "requestHTTPMethod": "DELETE",
                }
            }
        )
    assert caught.value.problems == (
        "requestHTTPMethod 'DELETE' is not GET, PUT or POST",
        "renewalPercent must be at most 90 (got 95)",
        "rollout 'nodes' is not 'pods' or 'none'",
    )


@pytest.mark.parametrize(
    ("allowed", "namespace", "ok"),
    [
        (None, "own", True),
        (None, "other", False),
        (("*",), "other", True),
        (("a",), "a", True),
        (("a",), "b", False),
    ],
)
def test_auth_allows_namespace(allowed: tuple[str, ...] | None, namespace: str, ok: bool) -> None:
    auth = api.parse_auth({"spec": {"method": "appRole", "appRole": {"roleId": "r", "secretRef": "s"}}})
    auth = api.AuthSpec(**{**auth.__dict__, "allowed_namespaces": allowed})
    assert api.auth_allows_namespace(auth, "own", namespace) is ok


@pytest.mark.parametrize(
    ("method", "extra", "mount"),
    [
        ("kubernetes", {"kubernetes": {"role": "r", "serviceAccount": "sa"}}, "kubernetes"),
        ("jwt", {"jwt": {"role": "r", "serviceAccount": "sa"}}, "jwt"),
        ("appRole", {"appRole": {"roleId": "id", "secretRef": "s"}}, "approle"),
    ],
)
def test_auth_default_mount_is_vaults_own(method: str, extra: dict[str, Any], mount: str) -> None:
    """Vault paths are case-sensitive: `vault auth enable approle` mounts at approle, not appRole."""
    auth = {"metadata": {"name": "a", "namespace": "ns"}, "spec": {"method": method, **extra}}
    assert api.parse_auth(auth).mount == mount
