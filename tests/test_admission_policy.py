"""The ValidatingAdmissionPolicy in deploy/admission/ (issue 10, finding 2a), evaluated for real.

A real kube-apiserver enforces the policy; the devkit API server does not evaluate admission
policies at all. So the policy's own CEL expressions, read from the YAML exactly as shipped, are
compiled and run here with ``cel-python`` (a CEL implementation; the dev extra installs it)
against a table of admission requests: CREATE, UPDATE and DELETE, by the operator, a tenant,
look-alike service accounts and the garbage collector, with ``object`` and ``oldObject`` as the
API server passes them. :class:`Policy` follows the API server's steps: match the resource and
operation, evaluate ``variables`` in order (each may use the earlier ones), then every
validation; an expression that errors denies (``failurePolicy: Fail``).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml
from celpy import celtypes

from tests import test_helm

ROOT = Path(__file__).resolve().parents[1]
POLICY_FILE = ROOT / "deploy" / "admission" / "protected-secrets.yaml"  # rendered from the chart
OPERATOR_SA = ROOT / "deploy" / "operator" / "serviceaccount.yaml"
helm_tools = test_helm.tools  # the fixture that finds (or installs) helm, under a name of our own
OPERATOR = "system:serviceaccount:vault-secrets-operator:csi-vso-operator"
TENANT = "system:serviceaccount:team-a:deployer"
GC = "system:serviceaccount:kube-system:generic-garbage-collector"


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    message: str = ""


class Policy:
    """One ValidatingAdmissionPolicy's CEL, compiled once, applied like the API server does."""

    def __init__(self, policy: dict[str, Any]) -> None:
        self.env = celpy.Environment()
        spec = policy["spec"]
        assert spec["failurePolicy"] == "Fail"
        self.rules = spec["matchConstraints"]["resourceRules"]
        self.variables = [(v["name"], self._compile(v["expression"])) for v in spec.get("variables", [])]
        self.validations = [
            (self._compile(v["expression"]), self._compile(v["messageExpression"]), v.get("reason"))
            for v in spec["validations"]
        ]
        assert "matchConditions" not in spec  # not evaluated here: fail loudly if one is added

    def _compile(self, expression: str) -> Any:
        return self.env.program(self.env.compile(expression))

    def _matches(self, operation: str, resource: str) -> bool:
        return any(
            "" in rule["apiGroups"] and resource in rule["resources"] and operation in rule["operations"]
            for rule in self.rules
        )

    def review(
        self,
        operation: str,
        username: str,
        obj: dict[str, Any] | None,
        old: dict[str, Any] | None,
        groups: tuple[str, ...] = ("system:authenticated",),
    ) -> Verdict:
        if not self._matches(operation, "secrets"):
            return Verdict(True)
        request = {
            "operation": operation,
            "userInfo": {"username": username, "groups": list(groups)},
            "resource": {"group": "", "version": "v1", "resource": "secrets"},
            "namespace": ((obj or old) or {}).get("metadata", {}).get("namespace", ""),
        }
        activation: dict[str, Any] = {
            "request": celpy.json_to_cel(request),
            "object": celpy.json_to_cel(obj),
            "oldObject": celpy.json_to_cel(old),
        }
        variables: dict[Any, Any] = {}
        for name, program in self.variables:
            activation["variables"] = celtypes.MapType(variables)
            variables[celtypes.StringType(name)] = program.evaluate(activation)
        activation["variables"] = celtypes.MapType(variables)
        for check, message, reason in self.validations:
            try:
                ok = check.evaluate(activation)
            except celpy.CELEvalError as exc:  # failurePolicy: Fail
                return Verdict(False, f"expression error: {exc}")
            if not isinstance(ok, celtypes.BoolType):
                return Verdict(False, f"expression returned {type(ok).__name__}, not bool")
            if not ok:
                assert reason == "Forbidden"
                return Verdict(False, str(message.evaluate(activation)))
        return Verdict(True)


def _docs() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(POLICY_FILE.read_text()) if d]


@pytest.fixture(scope="module")
def policy() -> Policy:
    [vap] = [d for d in _docs() if d["kind"] == "ValidatingAdmissionPolicy"]
    return Policy(vap)


def secret(
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    data: dict[str, str] | None = None,
    owners: list[str] | None = None,
) -> dict[str, Any]:
    """A Secret as the API server hands it to admission (defaults applied)."""
    metadata: dict[str, Any] = {"name": "s", "namespace": "team-a", "uid": "u-1"}
    if labels is not None:
        metadata["labels"] = labels
    if annotations is not None:
        metadata["annotations"] = annotations
    if owners is not None:
        metadata["ownerReferences"] = [
            {"apiVersion": "secrets.hashicorp.com/v1beta1", "kind": "VaultStaticSecret", "name": o, "uid": o}
            for o in owners
        ]
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": "Opaque"}
    if data is not None:
        body["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return body


PROTECTED = {
    "app.kubernetes.io/managed-by": "csi-vso",
    "csi-vso.io/protected": "true",
    "csi-vso.io/owner-uid": "cr-1",
}
MAC = {"csi-vso.io/content-mac": "abc"}
OURS = secret(labels=PROTECTED, annotations=MAC, data={"password": "v1"}, owners=["cr-1"])

CREATE_OR_UPDATE_REFUSED = (
    "only the csi-vso operator may create or update a Secret carrying csi-vso.io/ labels or annotations "
    "or app.kubernetes.io/managed-by=csi-vso (ValidatingAdmissionPolicy csi-vso-protected-secrets)"
)
REMOVE_REFUSED = (
    "only the csi-vso operator may remove the csi-vso.io/ labels and annotations or "
    "app.kubernetes.io/managed-by=csi-vso from a Secret (ValidatingAdmissionPolicy csi-vso-protected-secrets)"
)

# (case, operation, user, object, oldObject, allowed, message)
CASES: list[tuple[str, str, str, dict[str, Any] | None, dict[str, Any] | None, bool, str]] = [
    # forging protection: any one mark is enough to be refused
    (
        "tenant forges every label",
        "CREATE",
        TENANT,
        secret(labels=PROTECTED, data={"x": "y"}),
        None,
        False,
        CREATE_OR_UPDATE_REFUSED,
    ),
    (
        "tenant forges protected",
        "CREATE",
        TENANT,
        secret(labels={"csi-vso.io/protected": "true"}),
        None,
        False,
        CREATE_OR_UPDATE_REFUSED,
    ),
    (
        "tenant forges managed-by",
        "CREATE",
        TENANT,
        secret(labels={"app.kubernetes.io/managed-by": "csi-vso"}),
        None,
        False,
        CREATE_OR_UPDATE_REFUSED,
    ),
    (
        "tenant forges owner-uid",
        "CREATE",
        TENANT,
        secret(labels={"csi-vso.io/owner-uid": "cr-1"}),
        None,
        False,
        CREATE_OR_UPDATE_REFUSED,
    ),
    (
        "tenant forges a policy annotation",
        "CREATE",
        TENANT,
        secret(annotations={"csi-vso.io/allowed-kubernetes-namespaces": '["*"]'}),
        None,
        False,
        CREATE_OR_UPDATE_REFUSED,
    ),
    (
        "tenant forges protected=false",
        "CREATE",
        TENANT,
        secret(labels={"csi-vso.io/protected": "false"}),
        None,
        False,
        CREATE_OR_UPDATE_REFUSED,
    ),
    # not ours: let through
    ("tenant plain Secret", "CREATE", TENANT, secret(data={"x": "y"}), None, True, ""),
    (
        "another tool's managed-by",
        "CREATE",
        TENANT,
        secret(labels={"app.kubernetes.io/managed-by": "Helm"}),
        None,
        True,
        "",
    ),
    (
        "look-alike annotation prefix",
        "CREATE",
        TENANT,
        secret(annotations={"csi-vso.iox/a": "b", "x.csi-vso.io/a": "b"}),
        None,
        True,
        "",
    ),
    (
        "tenant edits a plain Secret",
        "UPDATE",
        TENANT,
        secret(data={"x": "2"}),
        secret(data={"x": "1"}),
        True,
        "",
    ),
    # the operator does everything
    ("operator creates", "CREATE", OPERATOR, OURS, None, True, ""),
    (
        "operator updates",
        "UPDATE",
        OPERATOR,
        secret(labels=PROTECTED, annotations=MAC, data={"password": "v2"}),
        OURS,
        True,
        "",
    ),
    (
        "operator takes over (overwrite: true)",
        "UPDATE",
        OPERATOR,
        OURS,
        secret(data={"password": "old"}),
        True,
        "",
    ),
    ("operator un-marks", "UPDATE", OPERATOR, secret(data={"password": "v1"}), OURS, True, ""),
    # tampering with a protected Secret
    (
        "tenant rewrites protected data",
        "UPDATE",
        TENANT,
        secret(labels=PROTECTED, annotations=MAC, data={"password": "evil"}, owners=["cr-1"]),
        OURS,
        False,
        CREATE_OR_UPDATE_REFUSED,
    ),
    (
        "tenant widens the policy",
        "UPDATE",
        TENANT,
        secret(
            labels=PROTECTED,
            annotations={**MAC, "csi-vso.io/allowed-kubernetes-namespaces": '["*"]'},
            data={"password": "v1"},
            owners=["cr-1"],
        ),
        OURS,
        False,
        CREATE_OR_UPDATE_REFUSED,
    ),
    (
        "tenant adds a label to a protected Secret",
        "UPDATE",
        TENANT,
        secret(labels={**PROTECTED, "x": "y"}, annotations=MAC, data={"password": "v1"}, owners=["cr-1"]),
        OURS,
        False,
        CREATE_OR_UPDATE_REFUSED,
    ),
    (
        "tenant marks a plain Secret",
        "UPDATE",
        TENANT,
        secret(labels=PROTECTED, data={"x": "y"}),
        secret(data={"x": "y"}),
        False,
        CREATE_OR_UPDATE_REFUSED,
    ),
    (
        "tenant strips every mark",
        "UPDATE",
        TENANT,
        secret(data={"password": "v1"}, owners=["cr-1"]),
        OURS,
        False,
        REMOVE_REFUSED,
    ),
    (
        "tenant strips the MAC annotation only",
        "UPDATE",
        TENANT,
        secret(data={"password": "v1"}, annotations={}),
        secret(annotations=MAC, data={"password": "v1"}),
        False,
        REMOVE_REFUSED,
    ),
    # identities that only look like the operator's
    (
        "operator's name in a tenant namespace",
        "CREATE",
        "system:serviceaccount:team-a:csi-vso-operator",
        OURS,
        None,
        False,
        CREATE_OR_UPDATE_REFUSED,
    ),
    ("operator name with a suffix", "CREATE", OPERATOR + "-2", OURS, None, False, CREATE_OR_UPDATE_REFUSED),
    ("a human cluster admin", "CREATE", "alice", OURS, None, False, CREATE_OR_UPDATE_REFUSED),
    # the garbage collector may only touch metadata that is not content or marks
    (
        "GC orphans (drops ownerReferences)",
        "UPDATE",
        GC,
        secret(labels=PROTECTED, annotations=MAC, data={"password": "v1"}, owners=[]),
        OURS,
        True,
        "",
    ),
    (
        "kube-controller-manager orphans",
        "UPDATE",
        "system:kube-controller-manager",
        secret(labels=PROTECTED, annotations=MAC, data={"password": "v1"}),
        OURS,
        True,
        "",
    ),
    (
        "GC identity changing data",
        "UPDATE",
        GC,
        secret(labels=PROTECTED, annotations=MAC, data={"password": "evil"}, owners=["cr-1"]),
        OURS,
        False,
        CREATE_OR_UPDATE_REFUSED,
    ),
    ("GC identity creating", "CREATE", GC, OURS, None, False, CREATE_OR_UPDATE_REFUSED),
    # deletion is not matched: the operator re-creates what it owns, the GC deletes dependents
    ("tenant deletes a protected Secret", "DELETE", TENANT, None, OURS, True, ""),
    ("GC deletes a protected Secret", "DELETE", GC, None, OURS, True, ""),
]


@pytest.mark.parametrize(
    ("operation", "user", "obj", "old", "allowed", "message"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_finding2a_only_the_operator_writes_secrets_with_csi_vso_marks(
    policy: Policy,
    operation: str,
    user: str,
    obj: dict[str, Any] | None,
    old: dict[str, Any] | None,
    allowed: bool,
    message: str,
) -> None:
    verdict = policy.review(operation, user, obj, old)
    assert verdict == Verdict(allowed, message)


def test_finding2a_groups_do_not_exempt_anyone(policy: Policy) -> None:
    verdict = policy.review("CREATE", "alice", OURS, None, groups=("system:masters", "system:authenticated"))
    assert not verdict.allowed


def test_finding2a_policy_names_the_deployed_operator_service_account_and_is_bound() -> None:
    account = yaml.safe_load(OPERATOR_SA.read_text())
    deployed = f"system:serviceaccount:{account['metadata']['namespace']}:{account['metadata']['name']}"
    assert deployed == OPERATOR
    docs = {d["kind"]: d for d in _docs()}
    operator_variable = next(
        v["expression"]
        for v in docs["ValidatingAdmissionPolicy"]["spec"]["variables"]
        if v["name"] == "operator"
    )
    assert operator_variable == f"'{deployed}'"
    binding = docs["ValidatingAdmissionPolicyBinding"]
    assert (
        binding["apiVersion"]
        == docs["ValidatingAdmissionPolicy"]["apiVersion"]
        == "admissionregistration.k8s.io/v1"
    )
    assert binding["spec"]["policyName"] == docs["ValidatingAdmissionPolicy"]["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert "matchResources" not in binding["spec"]  # every namespace: a forgery anywhere reaches every node


def test_finding2a_chart_names_the_configured_operator_and_can_leave_the_policy_out(
    helm_tools: dict[str, Path], tmp_path: Path
) -> None:
    """The chart renders the policy for the operator it installs, and not at all when disabled."""
    moved = tmp_path / "moved.yaml"
    moved.write_text(yaml.safe_dump({"operator": {"namespace": "ops", "serviceAccount": {"name": "op"}}}))
    rendered = [
        d for d in test_helm._render(helm_tools, moved) if d["kind"].startswith("ValidatingAdmissionPolicy")
    ]
    assert sorted(d["kind"] for d in rendered) == [
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    moved_policy = Policy(next(d for d in rendered if d["kind"] == "ValidatingAdmissionPolicy"))
    assert moved_policy.review("CREATE", "system:serviceaccount:ops:op", OURS, None).allowed
    assert not moved_policy.review("CREATE", OPERATOR, OURS, None).allowed

    disabled = tmp_path / "disabled.yaml"
    disabled.write_text(yaml.safe_dump({"admissionPolicy": {"enabled": False}}))
    assert not [
        d
        for d in test_helm._render(helm_tools, disabled)
        if d["kind"].startswith("ValidatingAdmissionPolicy")
    ]
