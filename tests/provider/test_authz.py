"""Access decisions for protected Secrets (DESIGN.md section 3), as a table."""

from __future__ import annotations

import pytest

from csi_vso import protected
from csi_vso.provider.authz import VerifiedPod, authorize, namespace_allowed, service_account_allowed
from csi_vso.provider.errors import NotFound, PermissionDenied

POD = VerifiedPod(namespace="team-a", name="app-0", uid="uid-1", service_account="app")
LABELS = protected.protected_labels("owner-uid")
NS = protected.ALLOWED_NAMESPACES_ANNOTATION
SA = protected.ALLOWED_SERVICE_ACCOUNTS_ANNOTATION


@pytest.mark.parametrize(
    ("secret_namespace", "annotations", "allowed"),
    [
        ("team-a", {}, True),
        ("platform", {}, False),
        ("platform", {NS: '["team-b"]'}, False),
        ("platform", {NS: '["team-b","team-a"]'}, True),
        ("platform", {NS: '["*"]'}, True),
        ("platform", {NS: "team-a"}, False),  # unreadable widens nothing
        ("team-a", {NS: "garbage"}, True),  # own namespace needs no policy
    ],
)
def test_namespace_policy(secret_namespace: str, annotations: dict[str, str], allowed: bool) -> None:
    assert namespace_allowed(POD.namespace, secret_namespace, annotations) is allowed


@pytest.mark.parametrize(
    ("annotations", "allowed"),
    [
        ({}, True),
        ({SA: "[]"}, False),
        ({SA: '["app"]'}, True),
        ({SA: '["team-a/app"]'}, True),
        ({SA: '["team-b/app"]'}, False),
        ({SA: '["other","*"]'}, True),
        ({SA: '["other"]'}, False),
        ({SA: "app"}, False),  # unreadable narrowing admits nobody
    ],
)
def test_service_account_policy(annotations: dict[str, str], allowed: bool) -> None:
    assert service_account_allowed(POD, annotations) is allowed


def test_unprotected_secret_is_reported_exactly_like_a_missing_one() -> None:
    with pytest.raises(NotFound) as err:
        authorize(POD, secret_namespace="team-a", secret_name="db", labels={"app": "x"}, annotations={})
    assert err.value.message == "protected Secret team-a/db not found"


@pytest.mark.parametrize(
    ("secret_namespace", "annotations", "message"),
    [
        (
            "platform",
            {},
            "pod team-a/app-0 may not mount protected Secret platform/db: namespace 'team-a' is not in its "
            "csi-vso.io/allowed-kubernetes-namespaces policy",
        ),
        (
            "team-a",
            {SA: '["other"]'},
            "pod team-a/app-0 may not mount protected Secret team-a/db: service account 'app' is not in its "
            "csi-vso.io/allowed-service-accounts policy",
        ),
    ],
)
def test_denials_name_the_secret_and_the_rule(
    secret_namespace: str, annotations: dict[str, str], message: str
) -> None:
    with pytest.raises(PermissionDenied) as err:
        authorize(
            POD, secret_namespace=secret_namespace, secret_name="db", labels=LABELS, annotations=annotations
        )
    assert err.value.message == message


def test_allowed_mount_returns() -> None:
    authorize(
        POD,
        secret_namespace="platform",
        secret_name="db",
        labels=LABELS,
        annotations={NS: protected.encode_list(["team-a"]), SA: protected.encode_list(["team-a/app"])},
    )
