"""PATCH bodies: JSON merge patch (RFC 7386), strategic merge patch and JSON patch (RFC 6902).

Pure functions over JSON values. Strategic merge follows the Kubernetes rules for the
shapes clients send to built-in kinds: maps merge recursively, ``null`` deletes a key,
lists with a merge key (containers by ``name``, ownerReferences by ``uid``, conditions by
``type``...) merge element-wise, ``finalizers`` merge as a set, every other list is
replaced; the ``$patch: replace|delete`` and ``$deleteFromPrimitiveList`` directives are
honoured and ``$setElementOrder`` / ``$retainKeys`` are accepted. Failures raise
:class:`PatchError`; the caller maps them to the status code the real server uses.
"""

from __future__ import annotations

import copy
from typing import Any


class PatchError(ValueError):
    """The patch does not apply (bad operation, failed ``test``, missing path)."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: maps merge, ``null`` removes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# field name -> merge key for lists of maps that merge element-wise in strategic merge patch
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "ownerReferences": "uid",
    "conditions": "type",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "secrets": "name",
}
_SET_LISTS = frozenset({"finalizers"})


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = dict(target) if isinstance(target, dict) else {}
    deletions: dict[str, list[Any]] = {}
    orders = {
        k.split("/", 1)[1]: v
        for k, v in patch.items()
        if k.startswith("$setElementOrder/") and isinstance(v, list)
    }
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            deletions[key.split("/", 1)[1]] = list(value or [])
            continue
        if key.startswith(("$setElementOrder/", "$retainKeys")) or key == "$patch":
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value, orders.get(key))
        else:
            merged = strategic_merge_patch(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
    for key, remove in deletions.items():
        if isinstance(result.get(key), list):
            result[key] = [v for v in result[key] if v not in remove]
    for key, order in orders.items():
        mergeable = key in _SET_LISTS or key in _MERGE_KEYS
        if key not in patch and mergeable and isinstance(result.get(key), list):
            result[key] = _merge_list(key, result[key], [], order)  # reorder only
    return result


def _merge_list(field: str, current: Any, patch: list[Any], order: list[Any] | None = None) -> list[Any]:
    current_list = list(current) if isinstance(current, list) else []
    if field in _SET_LISTS:
        merged: list[Any] = []
        for v in current_list + patch:
            if v not in merged:
                merged.append(v)
        named = order if order is not None else patch  # $setElementOrder names the ordered items
        in_patch = [v for v in merged if v in named]
        server_only = [v for v in merged if v not in named]
        return _element_order(in_patch, server_only, named, current_list, None)
    merge_key = _MERGE_KEYS.get(field)
    if field == "ports":
        merge_key = (
            "containerPort" if any(isinstance(p, dict) and "containerPort" in p for p in patch) else "port"
        )
    if merge_key is None or not all(isinstance(p, dict) for p in patch):
        if len(patch) == 1 and isinstance(patch[0], dict) and patch[0].get("$patch") == "replace":
            return []
        return copy.deepcopy(patch)
    out = list(current_list)
    for item in patch:
        directive = item.get("$patch")
        if directive == "replace":
            return [
                copy.deepcopy({k: v for k, v in p.items() if k != "$patch"}) for p in patch if p is not item
            ]
        key_value = item.get(merge_key)
        index = next(
            (i for i, e in enumerate(out) if isinstance(e, dict) and e.get(merge_key) == key_value), None
        )
        if directive == "delete":
            if index is not None:
                del out[index]
            continue
        if index is None:
            out.append(strategic_merge_patch({}, item))
        else:
            out[index] = strategic_merge_patch(out[index], item)
    named = order if order is not None else [p for p in patch if p.get("$patch") != "delete"]
    named_keys = [p.get(merge_key) for p in named if isinstance(p, dict)]
    in_patch = [e for e in out if isinstance(e, dict) and e.get(merge_key) in named_keys]
    server_only = [e for e in out if not (isinstance(e, dict) and e.get(merge_key) in named_keys)]
    return _element_order(in_patch, server_only, named, current_list, merge_key)


def _element_order(
    in_patch: list[Any],
    server_only: list[Any],
    patch_order: list[Any],
    server_order: list[Any],
    key: str | None,
) -> list[Any]:
    """The order the real strategic merge gives a merged list.

    Items named by the patch follow the patch's order (or its ``$setElementOrder``), the
    others the live object's order; the two are then interleaved by their positions in the
    live list, an item the live list does not have going first. So adding B to [A] gives
    [B, A], while modifying B in [A, B, C] keeps [A, B, C].
    """

    def position(seq: list[Any], item: Any) -> int:
        wanted = item.get(key) if key is not None and isinstance(item, dict) else item
        for i, v in enumerate(seq):
            if (v.get(key) if key is not None and isinstance(v, dict) else v) == wanted:
                return i
        return -1

    in_patch = sorted(in_patch, key=lambda item: position(patch_order, item))
    server_only = sorted(server_only, key=lambda item: position(server_order, item))
    out: list[Any] = []
    i = j = 0
    while i < len(server_only) or j < len(in_patch):
        if j >= len(in_patch):
            out.append(server_only[i])
            i += 1
        elif i >= len(server_only):
            out.append(in_patch[j])
            j += 1
        else:
            left, right = position(server_order, server_only[i]), position(server_order, in_patch[j])
            if left >= 0 and right >= 0 and left < right:
                out.append(server_only[i])
                i += 1
            else:
                out.append(in_patch[j])
                j += 1
    return out


# ------------------------------------------------------------------ JSON patch


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _split_pointer(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"invalid JSON pointer {pointer!r}")
    return [_unescape(t) for t in pointer[1:].split("/")]


def _resolve_parent(doc: Any, tokens: list[str], path: str) -> tuple[Any, str]:
    cur = doc
    for token in tokens[:-1]:
        if isinstance(cur, dict):
            if token not in cur:
                raise PatchError(f"doc is missing path: {path!r}")
            cur = cur[token]
        elif isinstance(cur, list):
            cur = cur[_index(cur, token, path, allow_end=False)]
        else:
            raise PatchError(f"doc is missing path: {path!r}")
    return cur, tokens[-1]


def _index(lst: list[Any], token: str, path: str, allow_end: bool) -> int:
    if token == "-" and allow_end:  # noqa: S105 - a JSON pointer token, not a password
        return len(lst)
    if not token.isdigit():
        raise PatchError(f"invalid array index {token!r} in {path!r}")
    i = int(token)
    if i > len(lst) or (i == len(lst) and not allow_end):
        raise PatchError(f"array index out of bounds in {path!r}")
    return i


def _get(doc: Any, path: str) -> Any:
    cur = doc
    for token in _split_pointer(path):
        if isinstance(cur, dict) and token in cur:
            cur = cur[token]
        elif isinstance(cur, list):
            cur = cur[_index(cur, token, path, allow_end=False)]
        else:
            raise PatchError(f"doc is missing path: {path!r}")
    return cur


def _add(doc: Any, path: str, value: Any) -> Any:
    tokens = _split_pointer(path)
    if not tokens:
        return value
    parent, last = _resolve_parent(doc, tokens, path)
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, path, allow_end=True), value)
    else:
        raise PatchError(f"doc is missing path: {path!r}")
    return doc


def _remove(doc: Any, path: str) -> Any:
    tokens = _split_pointer(path)
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent, last = _resolve_parent(doc, tokens, path)
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"unable to remove nonexistent key: {last}: missing value")
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, path, allow_end=False))
    raise PatchError(f"doc is missing path: {path!r}")


def json_patch(doc: Any, operations: Any) -> Any:
    """Apply RFC 6902 operations to a deep copy of ``doc``."""
    if not isinstance(operations, list):
        raise PatchError("json patch must be a list of operations")
    result = copy.deepcopy(doc)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid operation {op!r}")
        kind, path = op["op"], op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"operation {kind} at {path!r} is missing 'value'")
        if kind == "add":
            result = _add(result, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            _remove(result, path)
        elif kind == "replace":
            _get(result, path)
            tokens = _split_pointer(path)
            if not tokens:
                result = copy.deepcopy(op["value"])
            else:
                parent, last = _resolve_parent(result, tokens, path)
                if isinstance(parent, list):
                    parent[_index(parent, last, path, allow_end=False)] = copy.deepcopy(op["value"])
                else:
                    parent[last] = copy.deepcopy(op["value"])
        elif kind == "move":
            value = _remove(result, op.get("from", ""))
            result = _add(result, path, value)
        elif kind == "copy":
            result = _add(result, path, copy.deepcopy(_get(result, op.get("from", ""))))
        elif kind == "test":
            if _get(result, path) != op["value"]:
                raise PatchError(f"testing value {path} failed: test failed")
        else:
            raise PatchError(f"unexpected operation {kind!r}")
    return result
