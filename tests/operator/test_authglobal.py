"""VaultAuthGlobal merge rules (VSO's), as a table over pure functions."""

from __future__ import annotations

from typing import Any

import pytest

from csi_vso.operator import api, authglobal
from csi_vso.operator.refs import RefError

OPERATOR_NS = "vault-secrets-operator"


def _auth(spec: dict[str, Any], namespace: str = "apps") -> dict[str, Any]:
    return {
        "kind": "VaultAuth",
        "metadata": {"name": "a", "namespace": namespace, "uid": "u-a"},
        "spec": spec,
    }


def _global(
    spec: dict[str, Any], name: str = "g", namespace: str = "apps", generation: int = 1
) -> dict[str, Any]:
    return {
        "kind": "VaultAuthGlobal",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"u-{namespace}-{name}",
            "generation": generation,
        },
        "spec": spec,
    }


def _getter(*objs: dict[str, Any]) -> authglobal.Getter:
    table = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objs}
    return lambda namespace, name: table.get((namespace, name))


DOC_GLOBAL = {
    "defaultAuthMethod": "kubernetes",
    "kubernetes": {
        "audiences": ["vault"],
        "mount": "kubernetes",
        "namespace": "example-ns",
        "role": "auth-role",
        "serviceAccount": "default",
        "tokenExpirationSeconds": 600,
    },
}


def test_documented_example_inherits_everything_but_the_role() -> None:
    merged = authglobal.merge(
        _auth({"vaultAuthGlobalRef": {"name": "g"}, "kubernetes": {"role": "local-role"}}),
        _getter(_global(DOC_GLOBAL)),
        OPERATOR_NS,
    )
    spec = api.parse_auth(merged)
    assert spec.method == "kubernetes"
    assert spec.mount == "kubernetes"
    assert spec.vault_namespace == "example-ns"
    assert spec.kubernetes == api.ServiceAccountLogin(
        role="local-role", service_account="default", audiences=("vault",), token_expiration_seconds=600
    )
    assert authglobal.global_fingerprint(merged) == "u-apps-g:1"


@pytest.mark.parametrize(
    ("strategy", "want"),
    [
        (None, {"own": "1"}),
        ("none", {"own": "1"}),
        ("union", {"default": "d", "method": "m", "own": "1", "shared": "own"}),
        ("replace", {"own": "1", "shared": "own"}),
    ],
)
def test_merge_strategies_for_headers_and_params(strategy: str | None, want: dict[str, str]) -> None:
    gspec = {
        **DOC_GLOBAL,
        "headers": {"default": "d", "shared": "default"},
        "params": {"default": "d", "shared": "default"},
        "kubernetes": {
            **DOC_GLOBAL["kubernetes"],
            "headers": {"method": "m", "shared": "m"},
            "params": {"method": "m", "shared": "m"},
        },  # type: ignore[dict-item]
    }
    own = {"own": "1", "shared": "own"} if strategy not in (None, "none") else {"own": "1"}
    ref: dict[str, Any] = {"name": "g"}
    if strategy is not None:
        ref["mergeStrategy"] = {"headers": strategy, "params": strategy}
    merged = authglobal.merge(
        _auth({"vaultAuthGlobalRef": ref, "headers": own, "params": own}),
        _getter(_global(gspec)),
        OPERATOR_NS,
    )
    spec = api.parse_auth(merged)
    assert dict(spec.headers) == want
    assert dict(spec.params) == want


def test_replace_takes_the_first_non_empty_set() -> None:
    gspec = {**DOC_GLOBAL, "headers": {"default": "d"}}
    ref = {"name": "g", "mergeStrategy": {"headers": "replace"}}
    merged = authglobal.merge(_auth({"vaultAuthGlobalRef": ref}), _getter(_global(gspec)), OPERATOR_NS)
    assert dict(api.parse_auth(merged).headers) == {"default": "d"}


def test_vault_auth_values_win_and_mount_falls_back_to_the_global_default() -> None:
    gspec = {
        "defaultAuthMethod": "appRole",
        "defaultMount": "approle-team",
        "defaultVaultNamespace": "team",
        "vaultConnectionRef": "shared",
        "appRole": {"roleId": "global-role", "secretRef": "approle"},
    }
    merged = authglobal.merge(
        _auth({"vaultAuthGlobalRef": {"name": "g"}, "appRole": {"roleId": "mine"}}),
        _getter(_global(gspec)),
        OPERATOR_NS,
    )
    spec = api.parse_auth(merged)
    assert (spec.method, spec.mount, spec.vault_namespace) == ("appRole", "approle-team", "team")
    assert (spec.approle_role_id, spec.approle_secret) == ("mine", "approle")
    assert str(spec.connection_ref) == "shared"


@pytest.mark.parametrize(
    ("global_ns", "allowed", "name", "ok"),
    [
        ("apps", None, "g", True),  # same namespace
        ("platform", None, "g", False),
        ("platform", ["apps"], "g", True),
        ("platform", ["other"], "g", False),
        ("platform", ["*"], "g", True),
        (OPERATOR_NS, None, "default", True),  # the operator's default global is open to all
    ],
)
def test_allowed_namespaces(global_ns: str, allowed: list[str] | None, name: str, ok: bool) -> None:
    gspec: dict[str, Any] = dict(DOC_GLOBAL)
    if allowed is not None:
        gspec["allowedNamespaces"] = allowed
    auth = _auth({"vaultAuthGlobalRef": {"name": name, "namespace": global_ns}})
    get = _getter(_global(gspec, name=name, namespace=global_ns))
    if ok:
        authglobal.merge(auth, get, OPERATOR_NS)
    else:
        with pytest.raises(RefError, match="does not allow namespace 'apps'") as caught:
            authglobal.merge(auth, get, OPERATOR_NS)
        assert caught.value.reason == "VaultAuthGlobalNotAllowed"


def test_allow_default_searches_own_then_operator_namespace() -> None:
    auth = _auth({"vaultAuthGlobalRef": {"allowDefault": True}})
    in_operator = _global(DOC_GLOBAL, name="default", namespace=OPERATOR_NS)
    in_own = _global({**DOC_GLOBAL, "defaultMount": "own"}, name="default", namespace="apps")
    assert authglobal.global_fingerprint(
        authglobal.merge(auth, _getter(in_operator), OPERATOR_NS)
    ).startswith(f"u-{OPERATOR_NS}-default")
    assert authglobal.global_fingerprint(
        authglobal.merge(auth, _getter(in_operator, in_own), OPERATOR_NS)
    ).startswith("u-apps-default")


@pytest.mark.parametrize(
    ("spec", "objs", "reason", "message"),
    [
        ({"vaultAuthGlobalRef": {}}, [], "VaultAuthGlobalInvalid", "no name and allowDefault is not true"),
        (
            {"vaultAuthGlobalRef": {"name": "missing"}},
            [],
            "VaultAuthGlobalNotFound",
            "apps/missing not found",
        ),
        (
            {"vaultAuthGlobalRef": {"name": "g"}},
            [_global({"kubernetes": {"role": "r"}})],
            "VaultAuthGlobalInvalid",
            "no defaultAuthMethod",
        ),
        (
            {"vaultAuthGlobalRef": {"name": "g"}, "method": "jwt"},
            [_global(DOC_GLOBAL)],
            "VaultAuthGlobalInvalid",
            "auth method jwt is configured neither",
        ),
        (
            {"vaultAuthGlobalRef": {"name": "g", "mergeStrategy": {"headers": "merge"}}},
            [_global(DOC_GLOBAL)],
            "VaultAuthGlobalInvalid",
            "mergeStrategy.headers 'merge'",
        ),
    ],
)
def test_bad_references_name_the_problem(
    spec: dict[str, Any], objs: list[dict[str, Any]], reason: str, message: str
) -> None:
    with pytest.raises(RefError, match=message) as caught:
        authglobal.merge(_auth(spec), _getter(*objs), OPERATOR_NS)
    assert caught.value.reason == reason


def test_without_a_ref_the_vault_auth_is_unchanged() -> None:
    auth = _auth({"method": "kubernetes", "kubernetes": {"role": "r", "serviceAccount": "s"}})
    assert authglobal.merge(auth, _getter(), OPERATOR_NS) == auth


def test_validate_reports_every_problem() -> None:
    with pytest.raises(api.SpecError) as caught:
        authglobal.validate(
            _global({"defaultAuthMethod": "ldap", "allowedNamespaces": "*", "kubernetes": "x"})
        )
    assert len(caught.value.problems) == 3
