"""The manifests under deploy/ and the Dockerfile agree with the code they deploy.

- every YAML file parses, and kustomization.yaml lists every manifest outside examples/;
- every custom resource in deploy/examples/ (the seed article's four included) fits the CRD
  schemas exactly as the API server applies them (nothing rejected, nothing pruned), and
  broken variants are rejected with the offending field named; a round trip through the
  devkit API server shows the same;
- the SecretProviderClass example passes the provider's own parameter validation;
- the DaemonSet, the Deployment, RBAC and the CSI driver values agree with the CLI (socket
  dir, provider name, state dir, metrics ports, token audience) and with least privilege;
- the Dockerfile is multi-stage, runs as non-root by default and starts ``csi-vso``.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from csi_vso.cli import build_parser
from csi_vso.devkit.apiserver.schema import apply_schema
from csi_vso.operator.crds import build_crds
from csi_vso.provider import params, validation
from csi_vso.provider.errors import InvalidArgument
from csi_vso.provider.settings import ProviderSettings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
EXAMPLES = DEPLOY / "examples"
GROUP = "secrets.hashicorp.com"

Doc = dict[str, Any]


# The chart's templates are not plain YAML (tests/test_helm.py renders them with real Helm)
# and the monitoring objects need the Prometheus Operator's CRDs (tests/test_monitoring.py).
NOT_KUSTOMIZE = (DEPLOY / "charts", DEPLOY / "monitoring")


def _yaml_files() -> list[Path]:
    found = [*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")]
    return sorted(p for p in found if not any(p.is_relative_to(skip) for skip in NOT_KUSTOMIZE))


def _docs(path: Path) -> list[Doc]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _all_docs(under: Path = DEPLOY) -> Iterator[tuple[Path, Doc]]:
    for path in _yaml_files():
        if path.is_relative_to(under):
            for doc in _docs(path):
                yield path, doc


def _find(kind: str, name: str) -> Doc:
    matches = [d for _, d in _all_docs() if d.get("kind") == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def _container(workload: Doc) -> Doc:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def _cli(args: list[str]) -> Any:
    """What the CLI makes of a container's args (as kubelet passes them)."""
    return build_parser().parse_args(args)


# -- every file parses ------------------------------------------------------------------------

NOT_KUBERNETES_OBJECTS = {EXAMPLES / "secrets-store-csi-driver-values.yaml", DEPLOY / "kustomization.yaml"}


def test_deploy_has_the_expected_files() -> None:
    names = {p.relative_to(DEPLOY).as_posix() for p in _yaml_files()}
    for expected in (
        "kustomization.yaml",
        "namespaces.yaml",
        "provider/daemonset.yaml",
        "provider/rbac.yaml",
        "operator/deployment.yaml",
        "operator/rbac.yaml",
        "examples/05-secretproviderclass.yaml",
        "examples/06-pod.yaml",
        "examples/vso-article.yaml",
    ):
        assert expected in names


@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_every_yaml_file_parses_into_named_objects(path: Path) -> None:
    docs = _docs(path)
    assert docs, f"{path} holds no YAML document"
    if path in NOT_KUBERNETES_OBJECTS:
        return
    for doc in docs:
        assert isinstance(doc, dict)
        assert doc.get("apiVersion") and doc.get("kind"), f"{path}: a document without apiVersion/kind"
        assert doc.get("metadata", {}).get("name"), f"{path}: a {doc['kind']} without a name"


def test_kustomization_lists_every_manifest_outside_examples_and_nothing_missing() -> None:
    kustomization = _docs(DEPLOY / "kustomization.yaml")[0]
    listed = {DEPLOY / r for r in kustomization["resources"]}
    for path in listed:
        assert path.is_file(), f"kustomization lists {path.relative_to(DEPLOY)}, which does not exist"
    manifests = {p for p in _yaml_files() if not p.is_relative_to(EXAMPLES)} - {DEPLOY / "kustomization.yaml"}
    assert manifests == listed
    assert [i["name"] for i in kustomization["images"]] == ["csi-vso"]


def _builtin_objects() -> list[tuple[str, Doc]]:
    """Every document of a built-in Kubernetes kind (custom resources and CRDs excluded)."""
    from kubernetes import client

    found = []
    for path, doc in _all_docs():
        if path in NOT_KUBERNETES_OBJECTS or path.is_relative_to(DEPLOY / "crds"):
            continue
        if hasattr(client, f"V1{doc['kind']}") and not doc["apiVersion"].startswith(GROUP):
            found.append(
                (f"{path.relative_to(DEPLOY).as_posix()}:{doc['kind']}/{doc['metadata']['name']}", doc)
            )
    return found


@pytest.mark.parametrize(("name", "doc"), _builtin_objects(), ids=lambda v: v if isinstance(v, str) else "")
def test_builtin_object_has_no_misspelled_or_unknown_field(name: str, doc: Doc) -> None:
    """Through the client's typed model and back: a field the Kubernetes API does not know is dropped."""
    from kubernetes import client

    model = getattr(client, f"V1{doc['kind']}").from_dict(copy.deepcopy(doc))
    assert client.ApiClient().sanitize_for_serialization(model) == doc


def test_crd_files_are_the_crds_the_operator_serves() -> None:
    on_disk = {d["metadata"]["name"]: d for _, d in _all_docs(DEPLOY / "crds")}
    assert on_disk == {c["metadata"]["name"]: c for c in build_crds()}


# -- custom resources against the CRD schemas --------------------------------------------------

SCHEMAS = {
    crd["spec"]["names"]["kind"]: crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for crd in build_crds()
}


def _example_custom_resources() -> list[tuple[str, Doc]]:
    found = []
    for path, doc in _all_docs(EXAMPLES):
        if doc.get("apiVersion", "").startswith(GROUP + "/"):
            found.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return found


def _strip_defaults(schema: Doc, before: Any, after: Any) -> Any:
    """``after`` without the values the schema defaulted (fields absent from ``before``)."""
    if isinstance(after, dict) and isinstance(before, dict):
        properties = schema.get("properties", {})
        return {
            k: _strip_defaults(properties.get(k, {}), before[k], v)
            for k, v in after.items()
            if k in before or "default" not in properties.get(k, {})
        }
    if isinstance(after, list) and isinstance(before, list):
        return [_strip_defaults(schema.get("items", {}), b, a) for b, a in zip(before, after, strict=True)]
    return after


def test_every_kind_has_an_example_and_the_article_kinds_are_covered() -> None:
    kinds = {doc["kind"] for _, doc in _example_custom_resources()}
    assert kinds == {
        "VaultConnection",
        "VaultAuth",
        "VaultStaticSecret",
        "VaultSecret",
        "VaultDynamicSecret",
        "VaultPKISecret",
    }
    article = [d["kind"] for d in _docs(EXAMPLES / "vso-article.yaml")]
    assert article == ["VaultConnection", "VaultAuth", "VaultSecret", "VaultDynamicSecret"]


@pytest.mark.parametrize(
    ("name", "doc"), _example_custom_resources(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_example_fits_its_crd_schema_without_losing_a_field(name: str, doc: Doc) -> None:
    schema = SCHEMAS[doc["kind"]]
    result, errors = apply_schema(schema, copy.deepcopy(doc))
    assert [e.message for e in errors] == []
    # A field the schema does not declare would be pruned on a real cluster: the user's
    # setting would silently vanish. Every field of every example must survive.
    assert _strip_defaults(schema, doc, result) == doc


def _example(kind: str, name: str) -> Doc:
    return copy.deepcopy(
        next(d for _, d in _example_custom_resources() if (d["kind"], d["metadata"]["name"]) == (kind, name))
    )


def _set(path: str, value: Any) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        *parents, last = path.split(".")
        node = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        if value is _DELETE:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


_DELETE = object()

# (example kind, example name, mutation, the field the error must name)
BROKEN = [
    ("VaultConnection", "default", _set("spec.address", _DELETE), "spec.address"),
    ("VaultConnection", "default", _set("spec.skipTLSVerify", "no"), "spec.skipTLSVerify"),
    ("VaultConnection", "default", _set("spec.timeout", "ten seconds"), "spec.timeout"),
    # (No longer a missing kubernetes.role: as in VSO, a VaultAuth may inherit it from a VaultAuthGlobal.)
    (
        "VaultAuth",
        "static-auth",
        _set("spec.kubernetes.tokenExpirationSeconds", 60),
        "spec.kubernetes.tokenExpirationSeconds",
    ),
    (
        "VaultAuth",
        "default",
        _set("spec.kubernetes.tokenExpirationSeconds", 60),
        "spec.kubernetes.tokenExpirationSeconds",
    ),
    (
        "VaultAuth",
        "default",
        _set("spec.kubernetes.tokenExpirationSeconds", 3601),
        "spec.kubernetes.tokenExpirationSeconds",
    ),
    ("VaultAuth", "default", _set("spec.kubernetes.audiences", "vault"), "spec.kubernetes.audiences"),
    ("VaultSecret", "db-creds", _set("spec.destination.name", _DELETE), "spec.destination.name"),
    ("VaultSecret", "db-creds", _set("spec.destination.create", "true"), "spec.destination.create"),
    ("VaultStaticSecret", "app-config", _set("spec.path", _DELETE), "spec.path"),
    ("VaultStaticSecret", "app-config", _set("spec.refreshAfter", "30 seconds"), "spec.refreshAfter"),
    ("VaultStaticSecret", "app-config", _set("spec.version", -1), "spec.version"),
    (
        "VaultStaticSecret",
        "app-config",
        _set("spec.allowedServiceAccounts", "app"),
        "spec.allowedServiceAccounts",
    ),
    (
        "VaultDynamicSecret",
        "app-db-creds",
        _set("spec.revocationDuration", "5 minutes"),
        "spec.revocationDuration",
    ),
    ("VaultDynamicSecret", "app-db-creds", _set("spec.rollout", "always"), "spec.rollout"),
    (
        "VaultDynamicSecret",
        "app-db-creds",
        _set("spec.allowedKubernetesNamespaces", "*"),
        "spec.allowedKubernetesNamespaces",
    ),
    ("VaultDynamicSecret", "app-db", _set("spec.renewalPercent", 150), "spec.renewalPercent"),
    ("VaultDynamicSecret", "app-db", _set("spec.requestHTTPMethod", "DELETE"), "spec.requestHTTPMethod"),
    (
        "VaultDynamicSecret",
        "app-db",
        _set("spec.rolloutRestartTargets", [{"kind": "CronJob", "name": "x"}]),
        "spec.rolloutRestartTargets[0].kind",
    ),
]


@pytest.mark.parametrize(
    ("kind", "name", "mutate", "field"), BROKEN, ids=[f"{k}-{f}" for k, _, _, f in BROKEN]
)
def test_broken_example_is_rejected_with_the_field_named(
    kind: str, name: str, mutate: Callable[[Doc], None], field: str
) -> None:
    doc = _example(kind, name)
    mutate(doc)
    _, errors = apply_schema(SCHEMAS[kind], doc)
    assert errors, f"{kind} with a broken {field} was accepted"
    assert {e.field for e in errors} == {field}, [e.message for e in errors]


def test_examples_round_trip_through_the_api_server(kube: Any, namespace: str) -> None:
    """Every example, created in the API server, is stored with all its fields; a broken one gets 422."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    api = kube.api_client()
    ext = client.ApiextensionsV1Api(api)
    custom = client.CustomObjectsApi(api)
    for crd in build_crds():
        try:
            ext.create_custom_resource_definition(body=crd)
        except ApiException as exc:
            assert exc.status == 409  # another test installed them in this session's server
    plural = {c["spec"]["names"]["kind"]: c["spec"]["names"]["plural"] for c in build_crds()}
    # Each example goes into this test's namespace under a unique name: the schema is the same
    # whatever the namespace, and two examples share the name "default".
    for index, (_, doc) in enumerate(_example_custom_resources()):
        body = copy.deepcopy(doc)
        body["metadata"] = {"name": f"example-{index}", "namespace": namespace}
        stored = _created(custom, namespace, plural[doc["kind"]], body)
        spec_schema = SCHEMAS[doc["kind"]]["properties"]["spec"]
        assert _strip_defaults(spec_schema, doc["spec"], stored["spec"]) == doc["spec"]

    broken = _example("VaultDynamicSecret", "app-db-creds")
    broken["metadata"] = {"name": "broken", "namespace": namespace}
    broken["spec"]["rollout"] = "always"
    with pytest.raises(ApiException) as raised:
        custom.create_namespaced_custom_object(GROUP, "v1beta1", namespace, "vaultdynamicsecrets", broken)
    assert raised.value.status == 422
    status = json.loads(raised.value.body)
    assert [c["field"] for c in status["details"]["causes"]] == ["spec.rollout"]


def _created(custom: Any, namespace: str, plural: str, body: Doc) -> Doc:
    """Create, retrying briefly while a just-created CRD is not served yet (404)."""
    from kubernetes.client.exceptions import ApiException

    for _ in range(50):
        try:
            return dict(custom.create_namespaced_custom_object(GROUP, "v1beta1", namespace, plural, body))
        except ApiException as exc:
            if exc.status != 404:
                raise
            time.sleep(0.1)
    raise AssertionError(f"{plural} never became available")


# -- the SecretProviderClass and pod examples --------------------------------------------------


def test_secretproviderclass_example_passes_the_providers_validation() -> None:
    spc = _find("SecretProviderClass", "app-secrets")
    pod = _find("Pod", "app")
    assert spc["spec"]["provider"] == build_parser().parse_args(["provider"]).provider_name
    volume = pod["spec"]["volumes"][0]["csi"]
    assert volume["driver"] == "secrets-store.csi.k8s.io"
    assert volume["volumeAttributes"]["secretProviderClass"] == spc["metadata"]["name"]
    attributes = {
        **spc["spec"]["parameters"],
        **volume["volumeAttributes"],
        params.POD_NAME: pod["metadata"]["name"],
        params.POD_NAMESPACE: pod["metadata"]["namespace"],
        params.POD_UID: "0b0b0b0b-0000-4000-8000-000000000001",
        params.SERVICE_ACCOUNT: pod["spec"]["serviceAccountName"],
        params.EPHEMERAL: "true",
    }
    parsed = params.parse_request(
        attributes=json.dumps(attributes),
        secrets="null",
        target_path="/var/lib/kubelet/pods/x/mount",
        permission="420",
    )
    spec = validation.validate(parsed)
    assert spec.write_mode is validation.WriteMode.PROVIDER
    assert [o.secret_name for o in spec.objects] == ["app-config", "app-config", "app-db"]
    # The pod's service account is the one the example Secrets allow.
    for kind, name in (("VaultStaticSecret", "app-config"), ("VaultDynamicSecret", "app-db")):
        assert _example(kind, name)["spec"]["allowedServiceAccounts"] == [pod["spec"]["serviceAccountName"]]


def test_pki_secretproviderclass_example_mounts_the_tls_files_of_the_pki_destination() -> None:
    spc = _find("SecretProviderClass", "app-tls")
    pki = _example("VaultPKISecret", "app-tls")
    attributes = {
        **spc["spec"]["parameters"],
        params.POD_NAME: "app",
        params.POD_NAMESPACE: pki["metadata"]["namespace"],
        params.POD_UID: "0b0b0b0b-0000-4000-8000-000000000001",
        params.SERVICE_ACCOUNT: pki["spec"]["allowedServiceAccounts"][0],
    }
    parsed = params.parse_request(
        attributes=json.dumps(attributes), secrets="null", target_path="/t", permission="420"
    )
    spec = validation.validate(parsed)
    assert spec.write_mode is validation.WriteMode.PROVIDER
    assert {o.secret_name for o in spec.objects} == {pki["spec"]["destination"]["name"]}
    assert sorted(o.file_name or o.key or "" for o in spec.objects) == ["ca.crt", "tls.crt", "tls.key"]
    assert pki["spec"]["destination"]["type"] == "kubernetes.io/tls"


def test_secretproviderclass_with_an_escaping_file_name_is_rejected_by_the_provider() -> None:
    spc = copy.deepcopy(_find("SecretProviderClass", "app-secrets"))
    spc["spec"]["parameters"]["objects"] = (
        "- secretName: app-config\n  key: password\n  fileName: ../../etc/passwd\n"
    )
    attributes = {
        **spc["spec"]["parameters"],
        params.POD_NAME: "app",
        params.POD_NAMESPACE: "app",
        params.POD_UID: "0b0b0b0b-0000-4000-8000-000000000001",
        params.SERVICE_ACCOUNT: "app",
    }
    parsed = params.parse_request(
        attributes=json.dumps(attributes), secrets="null", target_path="/t", permission="420"
    )
    with pytest.raises(InvalidArgument) as raised:
        validation.validate(parsed)
    assert raised.value.problems and all(p.startswith("objects[0].fileName") for p in raised.value.problems)


# -- the provider DaemonSet agrees with `csi-vso provider` -------------------------------------


def _volume_for_mount(pod_spec: Doc, mount_path: str) -> Doc:
    container = pod_spec["containers"][0]
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == mount_path)
    return dict(next(v for v in pod_spec["volumes"] if v["name"] == mount["name"]))


def _port(addr: str) -> int:
    return int(addr.rsplit(":", 1)[1])


def test_provider_daemonset_agrees_with_the_cli() -> None:
    ds = _find("DaemonSet", "csi-vso-provider")
    pod_spec = ds["spec"]["template"]["spec"]
    container = _container(ds)
    defaults = _cli(["provider"])
    used = _cli(container["args"])  # every arg must be a flag the CLI knows
    assert used.command == "provider"
    # Same socket dir, provider name and state dir as the CLI defaults, so the image and the
    # manifest cannot drift; and the socket dir is the one the driver dials.
    assert str(used.socket_dir) == str(defaults.socket_dir) == "/var/run/secrets-store-csi-providers"
    assert used.provider_name == defaults.provider_name == "vso"
    assert str(used.state_dir) == str(defaults.state_dir) == "/var/lib/csi-vso"
    # Secrets only into the driver's tmpfs on a node; the CLI default stays off for plain dirs.
    assert used.require_mounted_target is True and defaults.require_mounted_target is False
    assert _volume_for_mount(pod_spec, str(used.socket_dir))["hostPath"]["path"] == str(used.socket_dir)
    assert _volume_for_mount(pod_spec, str(used.state_dir))["hostPath"]["path"] == str(used.state_dir)
    # Pod tokens kept for restarts: on the host's /run (tmpfs), the CLI default, not the disk.
    assert str(used.token_dir) == str(defaults.token_dir) == "/run/csi-vso/tokens"
    assert _volume_for_mount(pod_spec, "/run/csi-vso")["hostPath"]["path"] == "/run/csi-vso"
    # Metrics/probes: same port as the CLI default, bound beyond loopback so kubelet reaches it.
    assert _port(used.metrics_addr) == _port(defaults.metrics_addr) == 8095
    assert not used.metrics_addr.startswith("127.")
    assert container["ports"][0]["containerPort"] == 8095
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {
        container["readinessProbe"]["httpGet"]["port"],
        container["livenessProbe"]["httpGet"]["port"],
    } == {container["ports"][0]["name"]}
    # Pod volumes: same path as on the host, with the driver's later tmpfs mounts propagated in.
    kubelet = next(m for m in container["volumeMounts"] if m["mountPath"] == "/var/lib/kubelet/pods")
    assert kubelet["mountPropagation"] == "HostToContainer"
    assert _volume_for_mount(pod_spec, "/var/lib/kubelet/pods")["hostPath"]["path"] == "/var/lib/kubelet/pods"
    # Every node, whatever its taints.
    assert {"operator": "Exists"} in pod_spec["tolerations"]
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


def test_provider_runs_as_root_but_with_no_capability_and_no_privilege() -> None:
    ds = _find("DaemonSet", "csi-vso-provider")
    pod_spec = ds["spec"]["template"]["spec"]
    sc = _container(ds)["securityContext"]
    assert sc["runAsUser"] == 0  # kubelet's pod volume tree is root-owned, mode 0750
    assert sc["privileged"] is False
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert pod_spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert not pod_spec.get("hostNetwork") and not pod_spec.get("hostPID")
    assert "Bidirectional" not in json.dumps(pod_spec)
    assert (
        _find("Namespace", ds["metadata"]["namespace"])["metadata"]["labels"][
            "pod-security.kubernetes.io/enforce"
        ]
        == "privileged"
    )


# -- the operator Deployment agrees with `csi-vso operator` ------------------------------------


def test_operator_deployment_agrees_with_the_cli() -> None:
    deployment = _find("Deployment", "csi-vso-operator")
    container = _container(deployment)
    env = {e["name"] for e in container.get("env", [])}
    # kubelet expands $(VAR) from the container's env before the CLI sees the args.
    args = [re.sub(r"\$\((\w+)\)", lambda m: f"value-of-{m.group(1)}", a) for a in container["args"]]
    assert all(var in env for a in container["args"] for var in re.findall(r"\$\((\w+)\)", a))
    defaults = _cli(["operator"])
    used = _cli(args)
    assert used.command == "operator"
    assert used.operator_namespace == "value-of-POD_NAMESPACE"
    assert used.leader_elect is True and defaults.leader_elect is True
    assert deployment["spec"]["replicas"] == 2
    assert _port(used.metrics_addr) == _port(defaults.metrics_addr) == 8096
    assert container["ports"][0]["containerPort"] == 8096
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_operator_runs_as_non_root_with_a_read_only_root_filesystem() -> None:
    deployment = _find("Deployment", "csi-vso-operator")
    pod_sc = deployment["spec"]["template"]["spec"]["securityContext"]
    sc = _container(deployment)["securityContext"]
    assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] != 0
    assert sc == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert (
        _find("Namespace", deployment["metadata"]["namespace"])["metadata"]["labels"][
            "pod-security.kubernetes.io/enforce"
        ]
        == "restricted"
    )


# -- RBAC --------------------------------------------------------------------------------------


def _rules(kind: str, name: str) -> list[tuple[str, str, frozenset[str]]]:
    role = _find(kind, name)
    return [
        (group, resource, frozenset(rule["verbs"]))
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    ]


@pytest.mark.parametrize("path", ["examples/provider-cluster-mode-rbac.yaml", "operator/rbac.yaml"])
def test_every_rbac_rule_has_a_comment_saying_why(path: str) -> None:
    lines = (DEPLOY / path).read_text().splitlines()
    rule_starts = [i for i, line in enumerate(lines) if re.match(r"^\s*- apiGroups:", line)]
    assert rule_starts
    for index in rule_starts:
        assert lines[index - 1].strip().startswith("#"), (
            f"{path}:{index + 1}: a rule without a comment above it"
        )


# Kubernetes client methods -> the (API group, resource, verb) RBAC must grant for them.
_CORE = {"secret": "secrets", "pod": "pods", "service_account": "serviceaccounts", "event": "events"}
_APPS = {"deployment": "deployments", "stateful_set": "statefulsets", "daemon_set": "daemonsets"}
_RBAC = {"role": "roles", "role_binding": "rolebindings"}
_VERBS = {
    "read": "get",
    "get": "get",  # CustomObjectsApi names its reads get_*
    "delete_collection": "deletecollection",
    "list": "list",
    "create": "create",
    "replace": "update",
    "patch": "patch",
    "delete": "delete",
}
_CALL = re.compile(
    r"\.(read|get|list|create|replace|patch|delete_collection|delete)_(namespaced_|cluster_)?([a-z_]+?)"
    r"(_for_all_namespaces)?\b"
)


def _needed_permissions(package: str) -> set[tuple[str, str, str]]:
    """Every (group, resource, verb) the package's kubernetes client calls need, read from its source."""
    needed: set[tuple[str, str, str]] = set()
    for path in (ROOT / "csi_vso" / package).rglob("*.py"):
        text = path.read_text()
        in_file: set[tuple[str, str, str]] = set()
        for verb, _, noun, _ in _CALL.findall(text):
            rbac_verb = _VERBS[verb]
            if noun in _CORE:
                in_file.add(("", _CORE[noun], rbac_verb))
            elif noun in _APPS:
                in_file.add(("apps", _APPS[noun], rbac_verb))
            elif noun in _RBAC:
                in_file.add(("rbac.authorization.k8s.io", _RBAC[noun], rbac_verb))
            elif noun == "service_account_token":
                in_file.add(("", "serviceaccounts/token", rbac_verb))
            elif noun == "token_review":
                in_file.add(("authentication.k8s.io", "tokenreviews", rbac_verb))
            elif noun in ("custom_object", "custom_object_status"):
                suffix = "/status" if noun.endswith("status") else ""
                for crd in build_crds():
                    in_file.add((GROUP, crd["spec"]["names"]["plural"] + suffix, rbac_verb))
        # A list function handed to an informer is also called with watch=True.
        if "SharedInformer(" in text or "watch=True" in text or 'kwargs.get("watch")' in text:
            in_file |= {(g, r, "watch") for g, r, v in in_file if v == "list"}
        if "LeaseLock" in text:
            in_file |= {("coordination.k8s.io", "leases", v) for v in ("get", "create", "update")}
        needed |= in_file
    return needed


def _granted(*roles: tuple[str, str]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for kind, name in roles for g, r, verbs in _rules(kind, name) for v in verbs}


@pytest.mark.parametrize(
    ("package", "roles"),
    [
        ("provider", [("ClusterRole", "csi-vso-provider-cluster-mode")]),
        ("operator", [("ClusterRole", "csi-vso-operator"), ("Role", "csi-vso-operator-leader-election")]),
    ],
)
def test_rbac_grants_every_call_the_code_makes(package: str, roles: list[tuple[str, str]]) -> None:
    """For the provider: every call it could make as itself, which only --secret-access=cluster does."""
    needed = _needed_permissions(package)
    assert needed, f"found no Kubernetes API calls in csi_vso/{package}"
    assert needed - _granted(*roles) == set(), "calls the RBAC in deploy/ does not allow"


def test_provider_rbac_grants_nothing_in_pod_token_mode_and_cluster_mode_is_separate() -> None:
    """The DaemonSet's own identity holds no rule at all (no secrets, no tokenreviews, no pods):
    it reads as the mounting pods. The weaker cluster mode's grant is an example, not deployed."""
    assert _rules("ClusterRole", "csi-vso-provider") == []
    assert sorted(_rules("ClusterRole", "csi-vso-provider-cluster-mode")) == [
        ("", "pods", frozenset({"get"})),
        ("", "secrets", frozenset({"list", "watch"})),
        ("authentication.k8s.io", "tokenreviews", frozenset({"create"})),
    ]
    assert _granted(("ClusterRole", "csi-vso-provider-cluster-mode")) == _needed_permissions("provider")
    kustomized = (DEPLOY / "kustomization.yaml").read_text()
    assert "provider-cluster-mode-rbac.yaml" not in kustomized


def test_operator_rbac_is_least_privilege() -> None:
    rules = _rules("ClusterRole", "csi-vso-operator")
    assert all("*" not in v and r != "*" and g != "*" for g, r, v in rules)
    # Nothing granted that the code does not call (the watch caches count as list + watch).
    granted = _granted(("ClusterRole", "csi-vso-operator"), ("Role", "csi-vso-operator-leader-election"))
    assert granted == _needed_permissions("operator")
    # Leases only in the operator's own namespace, never cluster-wide.
    assert not any(r == "leases" for _, r, _ in rules)
    assert (
        _find("Role", "csi-vso-operator-leader-election")["metadata"]["namespace"] == "vault-secrets-operator"
    )


@pytest.mark.parametrize(
    ("binding_kind", "binding", "workload_kind", "workload"),
    [
        ("ClusterRoleBinding", "csi-vso-provider", "DaemonSet", "csi-vso-provider"),
        ("ClusterRoleBinding", "csi-vso-operator", "Deployment", "csi-vso-operator"),
        ("RoleBinding", "csi-vso-operator-leader-election", "Deployment", "csi-vso-operator"),
    ],
)
def test_bindings_name_the_service_account_the_workload_runs_as(
    binding_kind: str, binding: str, workload_kind: str, workload: str
) -> None:
    bound = _find(binding_kind, binding)
    runs = _find(workload_kind, workload)
    account = runs["spec"]["template"]["spec"]["serviceAccountName"]
    namespace = runs["metadata"]["namespace"]
    assert bound["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]
    assert _find("ServiceAccount", account)["metadata"]["namespace"] == namespace
    assert _find(bound["roleRef"]["kind"], bound["roleRef"]["name"])


# -- the Secrets Store CSI driver install values -----------------------------------------------


def test_csi_driver_values_turn_on_rotation_and_the_pod_token_requests() -> None:
    values = _docs(EXAMPLES / "secrets-store-csi-driver-values.yaml")[0]
    provider = _cli(_container(_find("DaemonSet", "csi-vso-provider"))["args"])
    assert values["enableSecretRotation"] is True
    assert values["linux"]["providersDir"] == str(provider.socket_dir)
    # The deployed provider reads as the pod: kubelet must mint the API-audience token (key "").
    assert provider.secret_access == "pod-token" == ProviderSettings().secret_access
    audience = provider.token_audience
    assert audience == ProviderSettings().token_audience == "csi-vso"
    assert [r["audience"] for r in values["tokenRequests"]] == ["", audience]
    text = (EXAMPLES / "secrets-store-csi-driver-values.yaml").read_text()
    assert "--set enableSecretRotation=true" in text
    assert f"--set 'tokenRequests[0].audience=' --set 'tokenRequests[1].audience={audience}'" in text


# -- Dockerfile --------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_slim_non_root_and_starts_csi_vso() -> None:
    text = "\n".join(
        line for line in (ROOT / "Dockerfile").read_text().splitlines() if not line.startswith("#")
    )
    instructions = [line for line in text.splitlines() if line and not line.startswith(("#", " "))]
    stages = [line for line in instructions if line.startswith("FROM ")]
    assert len(stages) == 2
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.\d+-slim", text, re.M)
    final = text[text.rindex("\nFROM ") :]
    # The final stage copies the built venv and installs nothing (no compilers, no pip).
    assert "COPY --from=build /opt/csi-vso /opt/csi-vso" in final
    assert not re.search(r"apt-get|pip install|gcc|build-essential", final)
    assert re.search(r"^USER 65532:65532$", final, re.M)
    assert 'ENTRYPOINT ["csi-vso"]' in final
    # Generated gRPC code ships inside the package directory that is copied.
    assert "COPY csi_vso ./csi_vso" in text
    assert (ROOT / "csi_vso/providerapi/provider_pb2.py").is_file()
    # Runtime dependencies only: the install names no extras.
    assert re.search(r"pip install \.(\s|$)", text) and "[dev]" not in text and "[demo]" not in text


# -- the Vault policy the examples document ----------------------------------------------------


def _documented_policy() -> str:
    """The ``vault policy write app`` heredoc in 02-vault-auth.yaml's comment, as Vault reads it."""
    lines = (EXAMPLES / "02-vault-auth.yaml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if "vault policy write app - <<'EOF'" in line)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].strip() == "#   EOF")
    return "\n".join(line.removeprefix("#   ") for line in lines[start + 1 : end]) + "\n"


def test_documented_vault_policy_grants_what_the_examples_need_and_no_more(openbao: Any) -> None:
    """Loaded into a real OpenBao: it parses, and a token with only it may do exactly what 03/04 need."""
    root = openbao.client()
    name = "csi-vso-example-app"
    root.sys.create_or_update_policy(name=name, policy=_documented_policy())
    try:
        token = root.auth.token.create(policies=[name], no_default_policy=True, ttl="5m")["auth"][
            "client_token"
        ]
        static = _example("VaultStaticSecret", "app-config")["spec"]
        dynamic = _example("VaultDynamicSecret", "app-db")["spec"]
        pki = _example("VaultPKISecret", "app-tls")["spec"]
        wanted = {
            f"{pki['mount']}/issue/{pki['role']}": ["update"],
            f"{pki['mount']}/revoke": ["update"],
            f"{pki['mount']}/issue/admin": ["deny"],
            f"{static['mount']}/data/{static['path']}": ["read"],  # KV v2 keeps data under data/
            f"{dynamic['mount']}/{dynamic['path']}": ["read"],
            "sys/leases/renew": ["update"],
            "sys/leases/lookup": ["update"],
            "sys/leases/revoke": ["update"],
            # The operator replaces dynamic credentials before the token that issued them dies.
            "auth/token/lookup-accessor": ["update"],
            f"{static['mount']}/data/other/config": ["deny"],
            f"{dynamic['mount']}/creds/admin": ["deny"],
        }
        answer = root.adapter.post("/v1/sys/capabilities", json={"token": token, "paths": list(wanted)})
        capabilities = answer.get("data", answer)
        assert {path: sorted(capabilities[path]) for path in wanted} == wanted
    finally:
        root.sys.delete_policy(name=name)


def test_manifests_and_kustomization_name_the_image_of_this_version() -> None:
    """A release bumps pyproject's version; the image tag deployed must follow it."""
    import tomllib

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for kind, name in (("DaemonSet", "csi-vso-provider"), ("Deployment", "csi-vso-operator")):
        assert _container(_find(kind, name))["image"] == f"csi-vso:{version}", f"{kind} {name}"
    images = _docs(DEPLOY / "kustomization.yaml")[0]["images"]
    assert images == [{"name": "csi-vso", "newTag": version}]


def _docker_ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore ``patterns`` exclude ``path`` or a directory above it (Go match rules:
    ``*`` and ``?`` stay within one path segment, ``**`` spans any; a later ``!`` re-includes)."""

    def regex(pattern: str) -> re.Pattern[str]:
        out = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out, i = out + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                out, i = out + ".*", i + 2
            elif pattern[i] == "*":
                out, i = out + "[^/]*", i + 1
            elif pattern[i] == "?":
                out, i = out + "[^/]", i + 1
            else:
                out, i = out + re.escape(pattern[i]), i + 1
        return re.compile(out + r"\Z")

    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for raw in patterns:
        negate = raw.startswith("!")
        matcher = regex(raw.removeprefix("!").strip("/"))
        if any(matcher.match(prefix) for prefix in prefixes):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_what_the_dockerfile_copies_and_drops_local_state() -> None:
    import subprocess

    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    sources = [
        src
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ") and "--from=" not in line
        for src in line.split()[1:-1]
    ]
    assert sorted(sources) == ["README.md", "csi_vso", "pyproject.toml"]
    tracked = subprocess.run(
        ["git", "ls-files", *sources], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert "csi_vso/providerapi/provider_pb2_grpc.py" in tracked  # generated code ships
    assert [p for p in tracked if _docker_ignored(p, patterns)] == []
    for local in (".venv/bin/python", ".git/HEAD", "csi_vso/__pycache__/cli.cpython-311.pyc", "tests/x.py"):
        assert _docker_ignored(local, patterns), local
