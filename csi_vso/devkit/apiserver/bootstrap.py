"""The ClusterRoles and ClusterRoleBindings every real cluster starts with (the ones we use).

A real kube-apiserver creates its bootstrap RBAC policy at start-up (labelled
``kubernetes.io/bootstrapping: rbac-defaults``). Code and tests that run on a cluster rely
on these names — OpenBao's token reviewer is bound to ``system:auth-delegator``, every
authenticated caller may ask SelfSubjectReview through ``system:basic-user``, service
accounts may read the OIDC discovery documents through
``system:service-account-issuer-discovery`` — so the in-memory server creates the same
objects with the same rules and bindings. ``view``/``edit``/``admin`` are given their
rules for the kinds this server serves; on a real cluster they are aggregated from
labelled ClusterRoles (no aggregation controller here).
"""

from __future__ import annotations

import copy
from typing import Any

Obj = dict[str, Any]

_READ = ["get", "list", "watch"]
_WRITE = ["create", "delete", "deletecollection", "patch", "update"]


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> Obj:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


def _urls(urls: list[str], verbs: list[str]) -> Obj:
    return {"nonResourceURLs": urls, "verbs": verbs}


_META: Obj = {
    "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
    "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
}

_VIEW_CORE = [
    "configmaps",
    "endpoints",
    "events",
    "limitranges",
    "namespaces",
    "namespaces/status",
    "persistentvolumeclaims",
    "persistentvolumeclaims/status",
    "pods",
    "pods/log",
    "pods/status",
    "replicationcontrollers",
    "replicationcontrollers/scale",
    "replicationcontrollers/status",
    "resourcequotas",
    "resourcequotas/status",
    "serviceaccounts",
    "services",
    "services/status",
]
_VIEW_APPS = [
    "controllerrevisions",
    "daemonsets",
    "daemonsets/status",
    "deployments",
    "deployments/scale",
    "deployments/status",
    "replicasets",
    "replicasets/scale",
    "replicasets/status",
    "statefulsets",
    "statefulsets/scale",
    "statefulsets/status",
]
_EDIT_CORE = [
    "configmaps",
    "events",
    "persistentvolumeclaims",
    "pods",
    "replicationcontrollers",
    "replicationcontrollers/scale",
    "secrets",
    "serviceaccounts",
    "services",
]
_EDIT_APPS = [
    "daemonsets",
    "deployments",
    "deployments/scale",
    "replicasets",
    "replicasets/scale",
    "statefulsets",
    "statefulsets/scale",
]

_VIEW = [
    _rule([""], _VIEW_CORE, _READ),
    _rule(["apps"], _VIEW_APPS, _READ),
    _rule(["coordination.k8s.io"], ["leases"], _READ),
]
_EDIT = [
    *_VIEW,
    _rule([""], ["secrets"], _READ),
    _rule([""], _EDIT_CORE, _WRITE),
    _rule([""], ["serviceaccounts/token"], ["create"]),
    _rule([""], ["serviceaccounts"], ["impersonate"]),
    _rule(["apps"], _EDIT_APPS, _WRITE),
    _rule(["coordination.k8s.io"], ["leases"], _WRITE),
]
_ADMIN = [
    *_EDIT,
    _rule(["authorization.k8s.io"], ["localsubjectaccessreviews"], ["create"]),
    _rule(["rbac.authorization.k8s.io"], ["rolebindings", "roles"], [*_WRITE, *_READ]),
]

CLUSTER_ROLES: dict[str, list[Obj]] = {
    "cluster-admin": [_rule(["*"], ["*"], ["*"]), _urls(["*"], ["*"])],
    "system:discovery": [
        _urls(
            [
                "/api",
                "/api/*",
                "/apis",
                "/apis/*",
                "/healthz",
                "/livez",
                "/openapi",
                "/openapi/*",
                "/readyz",
                "/version",
                "/version/",
            ],
            ["get"],
        )
    ],
    "system:public-info-viewer": [_urls(["/healthz", "/livez", "/readyz", "/version", "/version/"], ["get"])],
    "system:basic-user": [
        _rule(["authorization.k8s.io"], ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], ["create"]),
        _rule(["authentication.k8s.io"], ["selfsubjectreviews"], ["create"]),
    ],
    "system:auth-delegator": [
        _rule(["authentication.k8s.io"], ["tokenreviews"], ["create"]),
        _rule(["authorization.k8s.io"], ["subjectaccessreviews"], ["create"]),
    ],
    "system:service-account-issuer-discovery": [
        _urls(
            [
                "/.well-known/openid-configuration",
                "/.well-known/openid-configuration/",
                "/openid/v1/jwks",
                "/openid/v1/jwks/",
            ],
            ["get"],
        )
    ],
    "view": _VIEW,
    "edit": _EDIT,
    "admin": _ADMIN,
}

# binding name (= ClusterRole name) -> groups bound
CLUSTER_ROLE_BINDINGS: dict[str, list[str]] = {
    "cluster-admin": ["system:masters"],
    "system:discovery": ["system:authenticated"],
    "system:public-info-viewer": ["system:authenticated", "system:unauthenticated"],
    "system:basic-user": ["system:authenticated"],
    "system:service-account-issuer-discovery": ["system:serviceaccounts"],
}


def cluster_roles() -> list[Obj]:
    return [
        {"metadata": {"name": name, **copy.deepcopy(_META)}, "rules": copy.deepcopy(rules)}
        for name, rules in CLUSTER_ROLES.items()
    ]


def cluster_role_bindings() -> list[Obj]:
    return [
        {
            "metadata": {"name": name, **copy.deepcopy(_META)},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g} for g in groups
            ],
        }
        for name, groups in CLUSTER_ROLE_BINDINGS.items()
    ]
