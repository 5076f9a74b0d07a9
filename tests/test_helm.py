"""The Helm chart, checked with the real helm and kubectl (pinned, from PyPI: csi_vso.devkit.kubetools).

- ``helm lint --strict`` is clean with the default values and with ``ci/all-values.yaml``;
- the default render is exactly deploy/ (scripts/gen_deploy.py writes it; this fails when
  someone edits one and not the other), and ``kubectl kustomize deploy/`` builds the same objects;
- every rendered built-in object survives the kubernetes client's typed models (no unknown or
  misspelled field), and the values schema refuses a wrong value naming it;
- every value in ci/all-values.yaml reaches the objects it is meant to change;
- the operator and provider start from the rendered args (parsed by the real CLI).

The tests skip, saying why, only when the tools cannot be installed on this machine.
"""

from __future__ import annotations

import copy
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from csi_vso.cli import build_parser
from csi_vso.devkit import kubetools
from csi_vso.operator.crds import build_crds

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "deploy" / "charts" / "csi-vso"
ALL_VALUES = CHART / "ci" / "all-values.yaml"

Doc = dict[str, Any]


def _gen_deploy() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_deploy", ROOT / "scripts" / "gen_deploy.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_deploy"] = module
    spec.loader.exec_module(module)
    return module


gen_deploy = _gen_deploy()


@pytest.fixture(scope="module")
def tools() -> dict[str, Path]:
    found = kubetools.find()
    if found:
        return found
    if reason := kubetools.supported_platform():
        pytest.skip(f"helm/kubectl cannot run here: {reason}")
    try:
        return kubetools.install()
    except kubetools.KubeToolsError as exc:
        pytest.skip(f"helm/kubectl could not be installed: {exc}")


def _run(*command: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, check=False)


def _objects(stream: str) -> list[Doc]:
    return [d for d in yaml.safe_load_all(stream) if d]


def _render(tools: dict[str, Path], *values: Path) -> list[Doc]:
    return _objects(gen_deploy.helm_template(list(values), helm=tools["helm"]))


def _one(objects: list[Doc], kind: str, name: str) -> Doc:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def _contains(big: Any, small: Any) -> bool:
    """``small`` is ``big`` or a part of it (Helm deep-merges maps from a values file into the defaults)."""
    if isinstance(small, dict):
        return isinstance(big, dict) and all(k in big and _contains(big[k], v) for k, v in small.items())
    return bool(big == small)


def _key(doc: Doc) -> tuple[str, str, str]:
    return (doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"])


# -- lint, one source of truth ----------------------------------------------------------------


@pytest.mark.parametrize("values", [None, ALL_VALUES], ids=["defaults", "all-values"])
def test_helm_lint_strict_is_clean(tools: dict[str, Path], values: Path | None) -> None:
    extra = ["--values", str(values)] if values else []
    result = _run(tools["helm"], "lint", "--strict", CHART, *extra)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_deploy_is_what_the_chart_renders_with_default_values(tools: dict[str, Path]) -> None:
    stale = gen_deploy.stale_files(helm=tools["helm"])
    assert stale == [], f"regenerate with `python scripts/gen_deploy.py`: {stale}"


def test_kubectl_kustomize_builds_the_chart_objects_plus_the_crds(tools: dict[str, Path]) -> None:
    built = _run(tools["kubectl"], "kustomize", ROOT / "deploy")
    assert built.returncode == 0, built.stderr
    kustomized = {_key(d): d for d in _objects(built.stdout)}
    rendered = {_key(d): d for d in _render(tools)}
    crds = {_key(c) for c in build_crds()}
    assert set(kustomized) == set(rendered) | crds
    for key, doc in rendered.items():
        assert kustomized[key] == doc, f"{key} differs between kustomize and helm template"


# -- every rendered object is a valid object --------------------------------------------------


def _builtin_model(kind: str) -> Any:
    from kubernetes import client

    return getattr(client, f"V1{kind}", None)


@pytest.mark.parametrize("values", [None, ALL_VALUES], ids=["defaults", "all-values"])
def test_rendered_objects_have_no_unknown_field(tools: dict[str, Path], values: Path | None) -> None:
    from kubernetes import client

    objects = _render(tools, *([values] if values else []))
    checked = 0
    for doc in objects:
        model = _builtin_model(doc["kind"])
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            assert set(doc) == {"apiVersion", "kind", "metadata", "spec"}
            continue
        assert model is not None, f"{doc['kind']} is neither a built-in kind nor a Prometheus Operator one"
        assert client.ApiClient().sanitize_for_serialization(model.from_dict(copy.deepcopy(doc))) == doc
        checked += 1
    assert checked >= 12


def test_values_schema_refuses_a_wrong_value_and_names_it(tools: dict[str, Path]) -> None:
    for bad, field in (
        ("operator.replicas=two", "/operator/replicas"),
        ("provider.name=no/slash", "/provider/name"),
        ("operator.logLevel=loud", "/operator/logLevel"),
        ("operator.unknownValue=1", "unknownValue"),
    ):
        result = _run(tools["helm"], "template", "x", CHART, "--set", bad)
        assert result.returncode != 0, bad
        assert field in result.stderr, result.stderr


# -- the all-values file changes what it says -------------------------------------------------


def test_every_value_in_the_all_values_file_reaches_the_objects(tools: dict[str, Path]) -> None:
    values = yaml.safe_load(ALL_VALUES.read_text())
    objects = _render(tools, ALL_VALUES)
    op, pv = values["operator"], values["provider"]
    image = f"{values['image']['repository']}:{values['image']['tag']}"

    assert not [o for o in objects if o["kind"] == "Namespace"], "namespaces.create: false"
    for doc in objects:
        assert doc["metadata"]["labels"]["team"] == "platform", _key(doc)
        assert doc["metadata"]["annotations"]["owner"] == "platform-team", _key(doc)

    deployment = _one(objects, "Deployment", "csi-vso-operator")
    daemonset = _one(objects, "DaemonSet", "csi-vso-provider")
    for workload, v in ((deployment, op), (daemonset, pv)):
        assert workload["metadata"]["namespace"] == v["namespace"]
        pod = workload["spec"]["template"]
        spec, container = pod["spec"], pod["spec"]["containers"][0]
        assert container["image"] == image
        assert container["imagePullPolicy"] == values["image"]["pullPolicy"]
        assert spec["imagePullSecrets"] == values["imagePullSecrets"]
        assert spec["serviceAccountName"] == v["serviceAccount"]["name"]
        assert spec["priorityClassName"] == v["priorityClassName"]
        assert _contains(spec["nodeSelector"], v["nodeSelector"])
        assert spec["tolerations"] == v["tolerations"]
        assert _contains(spec["affinity"], v["affinity"])
        assert spec["terminationGracePeriodSeconds"] == v["terminationGracePeriodSeconds"]
        assert _contains(spec["securityContext"], v["podSecurityContext"])
        assert _contains(container["securityContext"], v["securityContext"])
        assert _contains(container["resources"], v["resources"])
        assert _contains(pod["metadata"]["annotations"], v["podAnnotations"])
        assert v["podLabels"].items() <= pod["metadata"]["labels"].items()
        assert container["ports"][0]["containerPort"] == v["metrics"]["port"]
        args = container["args"]
        assert f"--metrics-addr=0.0.0.0:{v['metrics']['port']}" in args
        assert f"--log-level={v['logLevel']}" in args
        assert f"--log-format={v['logFormat']}" in args
        assert args[-len(v["extraArgs"]) :] == v["extraArgs"]
        assert all(e in container["env"] for e in v["extraEnv"])
        account = _one(objects, "ServiceAccount", v["serviceAccount"]["name"])
        assert account["metadata"]["namespace"] == v["namespace"]
        assert v["serviceAccount"]["annotations"].items() <= account["metadata"]["annotations"].items()

    assert deployment["spec"]["replicas"] == op["replicas"]
    assert "topologySpreadConstraints" not in deployment["spec"]["template"]["spec"]
    pdb = _one(objects, "PodDisruptionBudget", "csi-vso-operator")
    assert pdb["spec"]["minAvailable"] == op["podDisruptionBudget"]["minAvailable"]

    pv_args = daemonset["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--socket-dir={pv['providersDir']}" in pv_args
    assert f"--provider-name={pv['name']}" in pv_args
    assert f"--state-dir={pv['stateDir']}" in pv_args
    assert f"--token-audience={pv['tokenAudience']}" in pv_args
    assert "--require-pod-token" not in pv_args
    assert pv_args.count("--require-mounted-target") == 1  # only the one extraArgs adds
    assert daemonset["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] == pv["maxUnavailable"]
    volumes = daemonset["spec"]["template"]["spec"]["volumes"]
    host_paths = {v["name"]: v["hostPath"]["path"] for v in volumes if "hostPath" in v}
    assert host_paths["providers-dir"] == pv["providersDir"]
    assert host_paths["kubelet-pods"] == f"{pv['kubeletDir']}/pods"
    assert host_paths["state"] == pv["stateDir"]

    for binding_kind, name in (
        ("ClusterRoleBinding", "csi-vso-operator"),
        ("ClusterRoleBinding", "csi-vso-provider"),
    ):
        subject = _one(objects, binding_kind, name)["subjects"][0]
        v = op if name.endswith("operator") else pv
        assert (subject["name"], subject["namespace"]) == (v["serviceAccount"]["name"], v["namespace"])

    monitoring = values["monitoring"]
    for kind, key, endpoints in (
        ("ServiceMonitor", "serviceMonitor", "endpoints"),
        ("PodMonitor", "podMonitor", "podMetricsEndpoints"),
    ):
        for component in ("operator", "provider"):
            doc = _one(objects, kind, f"csi-vso-{component}")
            assert doc["metadata"]["namespace"] == values[component]["namespace"]
            assert monitoring[key]["labels"].items() <= doc["metadata"]["labels"].items()
            assert doc["spec"][endpoints][0]["interval"] == monitoring[key]["interval"]


# -- the processes start from what the chart renders -------------------------------------------


@pytest.mark.parametrize("values", [None, ALL_VALUES], ids=["defaults", "all-values"])
def test_rendered_args_are_accepted_by_the_real_cli(tools: dict[str, Path], values: Path | None) -> None:
    objects = _render(tools, *([values] if values else []))
    for kind, name in (("Deployment", "csi-vso-operator"), ("DaemonSet", "csi-vso-provider")):
        container = _one(objects, kind, name)["spec"]["template"]["spec"]["containers"][0]
        parsed = build_parser().parse_args(container["args"])
        assert parsed.command == container["args"][0]
        port = container["ports"][0]["containerPort"]
        assert parsed.metrics_addr == f"0.0.0.0:{port}"
