"""``VaultAuthGlobal`` and ``VaultAuth.spec.vaultAuthGlobalRef``: shared login defaults (VSO's rules, pure).

A VaultAuth that names a VaultAuthGlobal is merged with it *before* it is parsed, so the rest of
the operator only ever sees a complete VaultAuth. The rules, as VSO's ``common`` package applies
them:

- Which global: ``vaultAuthGlobalRef.name`` in ``namespace`` (empty: the VaultAuth's own). With
  no name, ``allowDefault: true`` picks the VaultAuthGlobal named ``default``: in the ref's
  namespace if given, else the VaultAuth's namespace, then the operator's. No name and no
  ``allowDefault`` is an error.
- Who may use it: the VaultAuth's namespace must be the global's own, or listed in its
  ``allowedNamespaces`` (``*`` = any); ``default`` in the operator's namespace is open to all.
- ``method``: the VaultAuth's, else the global's ``defaultAuthMethod``.
- The method block (``kubernetes`` / ``jwt`` / ``appRole``): field by field, the VaultAuth's
  value when set, else the global's (``role``, ``serviceAccount``, ``audiences``, ...).
- ``mount`` and ``namespace``: the VaultAuth's, else the global method block's, else the
  global's ``defaultMount`` / ``defaultVaultNamespace``.
- ``params`` and ``headers`` follow ``mergeStrategy``: ``none`` (default: the VaultAuth's only),
  ``union`` (global defaults, then the global method block's, then the VaultAuth's; later wins),
  ``replace`` (the first non-empty of VaultAuth, global method block, global defaults).
- ``vaultConnectionRef``: the VaultAuth's, else the global's.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from csi_vso.operator.api import AUTH_GLOBAL_KIND, AUTH_METHODS, SpecError
from csi_vso.operator.refs import RefError

Getter = Callable[[str, str], dict[str, Any] | None]
DEFAULT_NAME = "default"
METHOD_BLOCKS = {"kubernetes": "kubernetes", "jwt": "jwt", "appRole": "appRole"}
# Fields of a global method block that are not part of the method's own configuration.
_PLACEMENT_FIELDS = ("namespace", "mount", "params", "headers")
MERGE_STRATEGIES = ("none", "union", "replace")
# Set on the merged (in-memory, never stored) VaultAuth: which global, at which generation.
FINGERPRINT_FIELD = "csi-vso.io/auth-global"


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _where(obj: Mapping[str, Any]) -> str:
    return f"{_meta(obj).get('namespace')}/{_meta(obj).get('name')}"


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {} or value == 0


def _first(*values: Any) -> Any:
    for value in values:
        if not _empty(value):
            return value
    return None


def allows_namespace(global_obj: Mapping[str, Any], namespace: str, operator_namespace: str) -> bool:
    """VSO's ``allowedNamespaces`` rule for a VaultAuthGlobal."""
    meta = _meta(global_obj)
    if namespace == meta.get("namespace"):
        return True
    if meta.get("name") == DEFAULT_NAME and meta.get("namespace") == operator_namespace:
        return True
    allowed = _spec(global_obj).get("allowedNamespaces") or []
    if not isinstance(allowed, list):
        return False
    return allowed == ["*"] or namespace in allowed


def _find_global(
    auth_obj: Mapping[str, Any], ref: Mapping[str, Any], get: Getter, operator_namespace: str
) -> dict[str, Any]:
    auth_namespace = str(_meta(auth_obj).get("namespace"))
    name = ref.get("name") or ""
    namespace = ref.get("namespace") or ""
    if not isinstance(name, str) or not isinstance(namespace, str):
        raise RefError(
            "VaultAuthGlobalInvalid", f"VaultAuth {_where(auth_obj)}: vaultAuthGlobalRef must name strings"
        )
    if name:
        candidates = [(namespace or auth_namespace, name)]
    elif ref.get("allowDefault") is True:
        candidates = (
            [(namespace, DEFAULT_NAME)]
            if namespace
            else [(auth_namespace, DEFAULT_NAME), (operator_namespace, DEFAULT_NAME)]
        )
    else:
        raise RefError(
            "VaultAuthGlobalInvalid",
            f"VaultAuth {_where(auth_obj)}: vaultAuthGlobalRef has no name and allowDefault is not true",
        )
    for ns, candidate in dict.fromkeys(candidates):
        found = get(ns, candidate)
        if found is not None and not _meta(found).get("deletionTimestamp"):
            return found
    tried = " or ".join(f"{ns}/{n}" for ns, n in dict.fromkeys(candidates))
    raise RefError("VaultAuthGlobalNotFound", f"VaultAuthGlobal {tried} not found")


def _merge_maps(strategy: str, own: Any, method_level: Any, defaults: Any) -> Any:
    maps = [m if isinstance(m, Mapping) else {} for m in (defaults, method_level, own)]
    if strategy == "union":
        merged: dict[str, Any] = {}
        for m in maps:
            merged.update(m)
        return merged
    if strategy == "replace":
        return dict(_first(maps[2], maps[1], maps[0]) or {})
    return own


def merge(auth_obj: Mapping[str, Any], get_global: Getter, operator_namespace: str) -> dict[str, Any]:
    """The VaultAuth with its VaultAuthGlobal folded in (a copy); unchanged without a ref.

    Raises RefError (reason ``VaultAuthGlobalNotFound``, ``VaultAuthGlobalNotAllowed`` or
    ``VaultAuthGlobalInvalid``) naming the objects involved.
    """
    ref = _spec(auth_obj).get("vaultAuthGlobalRef")
    if ref is None:
        return dict(auth_obj)
    if not isinstance(ref, Mapping):
        raise RefError(
            "VaultAuthGlobalInvalid", f"VaultAuth {_where(auth_obj)}: vaultAuthGlobalRef must be an object"
        )
    global_obj = _find_global(auth_obj, ref, get_global, operator_namespace)
    auth_namespace = str(_meta(auth_obj).get("namespace"))
    global_where = _where(global_obj)
    if not allows_namespace(global_obj, auth_namespace, operator_namespace):
        raise RefError(
            "VaultAuthGlobalNotAllowed",
            f"VaultAuthGlobal {global_where} does not allow namespace {auth_namespace!r} "
            "(see its allowedNamespaces)",
        )
    strategy = ref.get("mergeStrategy") or {}
    if not isinstance(strategy, Mapping):
        strategy = {}
    headers_strategy = strategy.get("headers") or "none"
    params_strategy = strategy.get("params") or "none"
    for what, value in (("headers", headers_strategy), ("params", params_strategy)):
        if value not in MERGE_STRATEGIES:
            raise RefError(
                "VaultAuthGlobalInvalid",
                f"VaultAuth {_where(auth_obj)}: mergeStrategy.{what} {value!r} is not one of "
                + ", ".join(MERGE_STRATEGIES),
            )
    merged = copy.deepcopy(dict(auth_obj))
    spec: dict[str, Any] = dict(_spec(auth_obj))
    gspec = _spec(global_obj)
    method = spec.get("method") or gspec.get("defaultAuthMethod")
    if not method:
        raise RefError(
            "VaultAuthGlobalInvalid",
            f"no auth method set in VaultAuth {_where(auth_obj)} "
            f"and no defaultAuthMethod in VaultAuthGlobal {global_where}",
        )
    block = METHOD_BLOCKS.get(str(method))
    if block is None:
        raise RefError(
            "VaultAuthGlobalInvalid", f"auth method {method!r} cannot be merged with a VaultAuthGlobal"
        )
    own_block = spec.get(block)
    global_block = gspec.get(block)
    if not isinstance(own_block, Mapping):
        own_block = None
    if not isinstance(global_block, Mapping):
        global_block = None
    if own_block is None and global_block is None:
        raise RefError(
            "VaultAuthGlobalInvalid",
            f"auth method {method} is configured neither in VaultAuth {_where(auth_obj)} "
            f"nor in VaultAuthGlobal {global_where}",
        )
    global_block = global_block or {}
    combined = {k: v for k, v in global_block.items() if k not in _PLACEMENT_FIELDS}
    for key, value in (own_block or {}).items():
        if not _empty(value) or key not in combined:
            combined[key] = value
    spec["method"] = method
    spec[block] = combined
    mount = _first(spec.get("mount"), global_block.get("mount"), gspec.get("defaultMount"))
    if mount is not None:
        spec["mount"] = mount
    vault_namespace = _first(
        spec.get("namespace"), global_block.get("namespace"), gspec.get("defaultVaultNamespace")
    )
    if vault_namespace is not None:
        spec["namespace"] = vault_namespace
    params = _merge_maps(params_strategy, spec.get("params"), global_block.get("params"), gspec.get("params"))
    headers = _merge_maps(
        headers_strategy, spec.get("headers"), global_block.get("headers"), gspec.get("headers")
    )
    for key, value in (("params", params), ("headers", headers)):
        if value is None:
            spec.pop(key, None)
        else:
            spec[key] = value
    connection = _first(spec.get("vaultConnectionRef"), gspec.get("vaultConnectionRef"))
    if connection is not None:
        spec["vaultConnectionRef"] = connection
    merged["spec"] = spec
    # Who the merged login depends on: part of the session key, so editing the global re-logs in.
    global_meta = _meta(global_obj)
    merged["metadata"] = {
        **dict(_meta(auth_obj)),
        FINGERPRINT_FIELD: f"{global_meta.get('uid')}:{global_meta.get('generation') or 0}",
    }
    return merged


def global_fingerprint(merged_auth: Mapping[str, Any]) -> str:
    """Identity and generation of the VaultAuthGlobal folded into ``merged_auth`` ('' when none)."""
    return str(_meta(merged_auth).get(FINGERPRINT_FIELD) or "")


def validate(global_obj: Mapping[str, Any]) -> None:
    """Shape checks of a VaultAuthGlobal on its own; raises SpecError listing every problem.

    Most of a global is only judged once merged into a VaultAuth (a missing role may be given by
    the VaultAuth); what can be wrong on its own is reported here, on the global's status.
    """
    spec = global_obj.get("spec")
    if spec is None:
        spec = {}
    if not isinstance(spec, Mapping):
        raise SpecError(AUTH_GLOBAL_KIND, ["spec must be an object"])
    problems = []
    method = spec.get("defaultAuthMethod")
    if method not in (None, "") and method not in AUTH_METHODS:
        problems.append(
            f"defaultAuthMethod {method!r} is not supported (use one of: {', '.join(AUTH_METHODS)})"
        )
    allowed = spec.get("allowedNamespaces")
    if allowed is not None and (
        not isinstance(allowed, list) or not all(isinstance(v, str) for v in allowed)
    ):
        problems.append("allowedNamespaces must be a list of strings")
    for key in ("params", "headers"):
        value = spec.get(key)
        if value is not None and (
            not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values())
        ):
            problems.append(f"{key} must map strings to strings")
    for block in METHOD_BLOCKS.values():
        value = spec.get(block)
        if value is not None and not isinstance(value, Mapping):
            problems.append(f"{block} must be an object")
    for key in ("vaultConnectionRef", "defaultVaultNamespace", "defaultMount"):
        value = spec.get(key)
        if value is not None and not isinstance(value, str):
            problems.append(f"{key} must be a string")
    if problems:
        raise SpecError(AUTH_GLOBAL_KIND, problems)
