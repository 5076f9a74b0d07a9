"""The semantics of the API verbs, over the store: create, get, list, update, patch, delete.

This is where the real server's rules live: generateName, resourceVersion preconditions
(409 Conflict), unconditional updates allowed for built-in kinds but not custom resources,
the ``/status`` subresource (main-resource writes keep the old status, status writes keep
everything else), ``metadata.generation`` bumped only when the non-metadata, non-status
part changes (and once when deletion starts), no-op writes that do not bump the
resourceVersion, finalizers with ``deletionTimestamp``, and deletion propagation finalizers (``orphan``,
``foregroundDeletion``) that the garbage collector in ``controllers`` acts on.
Every method holds the store lock across its read-modify-write, so writes are atomic.
"""

from __future__ import annotations

import base64
import copy
import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from csi_vso.devkit.apiserver import (
    deployments,
    errors,
    list_options,
    patch,
    rbacvalidation,
    schema,
    validation,
)
from csi_vso.devkit.apiserver.errors import ApiError, FieldError
from csi_vso.devkit.apiserver.resources import Registry, ResourceType, types_for_crd
from csi_vso.devkit.apiserver.selectors import FieldSelector, LabelSelector, field_value
from csi_vso.devkit.apiserver.store import Expired, Store, Stored

Obj = dict[str, Any]

CRD_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_SYSTEM_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation")

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


def now_rfc3339(clock: Callable[[], float] = time.time) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(clock()))


@dataclass(frozen=True)
class DeleteOptions:
    propagation: str | None = None  # Background, Foreground, Orphan
    uid: str | None = None
    resource_version: str | None = None
    dry_run: bool = False

    @classmethod
    def parse(cls, body: Obj | None, query: dict[str, str]) -> DeleteOptions:
        body = body or {}
        propagation = body.get("propagationPolicy") or query.get("propagationPolicy")
        orphan = body.get("orphanDependents", query.get("orphanDependents"))
        if propagation is None and orphan is not None:
            propagation = "Orphan" if orphan in (True, "true") else "Background"
        if propagation not in (None, "Background", "Foreground", "Orphan"):
            raise errors.bad_request(f"propagationPolicy {propagation!r} is not supported")
        pre = body.get("preconditions") or {}
        dry = body.get("dryRun") or query.get("dryRun")
        return cls(propagation, pre.get("uid"), pre.get("resourceVersion"), bool(dry))


@dataclass
class ListResult:
    items: list[Stored]
    resource_version: int
    continue_token: str = ""
    remaining: int | None = None


class Operations:
    def __init__(
        self, store: Store, registry: Registry, clock: Callable[[], float] = time.time, root_ca_pem: str = ""
    ) -> None:
        self.store = store
        self.registry = registry
        self.clock = clock
        self.root_ca_pem = root_ca_pem

    # ------------------------------------------------------------------ reads

    def get(self, rt: ResourceType, namespace: str, name: str) -> Stored:
        stored = self.store.get(rt.storage_key, namespace, name)
        if stored is None:
            raise errors.not_found(rt.plural, rt.group, name)
        return stored

    def list_objects(
        self,
        rt: ResourceType,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
        limit: int = 0,
        continue_token: str = "",
        read: list_options.ReadOptions | None = None,
    ) -> ListResult:
        """List, from the current state or (``Exact``, continued pages) from a snapshot."""
        only_name = fields.equality("metadata.name")
        only_ns = fields.equality("metadata.namespace")
        if namespace is None and only_ns is not None and rt.namespaced:
            namespace = only_ns
        start_after = ""
        at: int | None = None  # the version of the snapshot to read; None: current state
        if continue_token:
            try:
                token = json.loads(base64.urlsafe_b64decode(continue_token.encode()))
                start_after, at = token["start"], int(token["rv"])
            except (ValueError, KeyError, TypeError):
                raise errors.bad_request("continue key is not valid: illegal base64 data") from None
        with self.store.lock:
            current = self.store.rv
            if read is not None and read.resource_version is not None:
                if read.resource_version > current:
                    raise list_options.too_large(read.resource_version, current)
                if read.exact:
                    at = read.resource_version
            if at is not None and at != current:
                try:
                    candidates, rv = self.store.snapshot(rt.storage_key, namespace, at), at
                except Expired:
                    raise errors.gone(
                        "The provided continue parameter is too old to display a consistent list result. "
                        "You can start a new list without the continue parameter."
                        if continue_token
                        else list_options.EXPIRED_LIST
                    ) from None
            elif only_name is not None and namespace is not None:
                one = self.store.get(rt.storage_key, namespace, only_name)
                candidates, rv = ([one] if one else []), current
            else:
                candidates, rv = self.store.list_objects(rt.storage_key, namespace)
        items: list[Stored] = []
        token_out = ""
        remaining: int | None = None
        for i, stored in enumerate(candidates):
            meta = stored.meta
            if start_after and f"{meta.get('namespace', '')}/{meta['name']}" <= start_after:
                continue
            if not labels.empty and not labels.matches(meta.get("labels")):
                continue
            if not fields.empty and not fields.matches(_field_getter(stored.obj)):
                continue
            if limit and len(items) == limit:
                last = items[-1].meta
                key = f"{last.get('namespace', '')}/{last['name']}"
                token_out = base64.urlsafe_b64encode(json.dumps({"rv": rv, "start": key}).encode()).decode()
                remaining = len(candidates) - i
                break
            items.append(stored)
        return ListResult(items, rv, token_out, remaining)

    # ----------------------------------------------------------------- create

    def create(self, rt: ResourceType, namespace: str, body: Any, dry_run: bool = False) -> Stored:
        obj = self._decode_body(rt, body, namespace)
        meta = obj["metadata"]
        if meta.get("resourceVersion"):
            raise ApiError(500, "InternalError", "resourceVersion should not be set on objects to be created")
        if not meta.get("name") and meta.get("generateName"):
            suffix = "".join(random.choice(_GENERATE_ALPHABET) for _ in range(5))  # noqa: S311
            meta["name"] = meta["generateName"] + suffix
        for field in ("deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"):
            meta.pop(field, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339(self.clock)
        if rt.generation:
            meta["generation"] = 1
        self._prepare_create(rt, obj)
        with self.store.lock:
            if rt.namespaced:
                self._check_namespace_open(rt, namespace, meta.get("name", ""))
            if rt.plural == "pods" and rt.group == "":
                self._admit_pod(namespace, obj)
            obj = self._validate(rt, obj, None)
            name = meta["name"]
            if self.store.get(rt.storage_key, namespace, name) is not None:
                raise errors.already_exists(rt.plural, rt.group, name)
            if dry_run:
                return Stored(obj)
            stored = self.store.put(rt.storage_key, namespace, name, obj)
            self._after_write(rt, stored)
            return stored

    def _prepare_create(self, rt: ResourceType, obj: Obj) -> None:
        core = rt.group == ""
        if rt.crd_name:
            if rt.has_status:  # status is written through /status only
                obj.pop("status", None)
        elif core and rt.plural == "namespaces":
            obj["spec"] = {"finalizers": ["kubernetes"]}
            obj["status"] = {"phase": "Active"}
        elif core and rt.plural == "pods":
            obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        elif rt.group == "apps":
            obj["status"] = {}
        elif rt.group == "apiextensions.k8s.io":
            obj["metadata"].setdefault("finalizers", [])
            if CRD_FINALIZER not in obj["metadata"]["finalizers"]:
                obj["metadata"]["finalizers"].append(CRD_FINALIZER)
            obj["status"] = _crd_status(obj)

    def _admit_pod(self, namespace: str, obj: Obj) -> None:
        """ServiceAccount admission: default the account and require that it exists."""
        spec = obj.setdefault("spec", {})
        account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
        spec["serviceAccountName"] = account
        spec["serviceAccount"] = account
        if self.store.get("serviceaccounts", namespace, account) is None:
            raise errors.forbidden_request(
                "pods",
                "",
                obj["metadata"].get("name", ""),
                f"error looking up service account {namespace}/{account}: "
                f'serviceaccount "{account}" not found',
            )

    def _check_namespace_open(self, rt: ResourceType, namespace: str, name: str) -> None:
        ns = self.store.get("namespaces", "", namespace)
        if ns is None:
            raise errors.not_found("namespaces", "", namespace)
        if ns.meta.get("deletionTimestamp"):
            err = errors.forbidden_request(
                rt.plural,
                rt.group,
                name,
                f"unable to create new content in namespace {namespace} because it is being terminated",
            )
            assert err.details is not None
            err.details["causes"] = [
                {
                    "reason": "NamespaceTerminating",
                    "message": f"namespace {namespace} is being terminated",
                    "field": "metadata.namespace",
                }
            ]
            raise err

    # ----------------------------------------------------------------- update

    def update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        subresource: str | None = None,
        dry_run: bool = False,
        from_patch: bool = False,
    ) -> Stored:
        with self.store.lock:
            old = self.get(rt, namespace, name)
            obj = self._decode_body(rt, body, namespace)
            meta = obj["metadata"]
            if meta.get("name", name) != name:
                raise errors.bad_request(
                    f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
                )
            meta["name"] = name
            rv = meta.get("resourceVersion")
            if rv and rv != old.meta["resourceVersion"]:
                raise errors.conflict(rt.plural, rt.group, name, errors.STALE)
            if not rv and not rt.unconditional_update and not from_patch:
                raise errors.invalid(
                    rt.kind,
                    rt.group,
                    name,
                    [
                        errors.invalid_value(
                            "metadata.resourceVersion", "0x0", "must be specified for an update"
                        )
                    ],
                )
            if meta.get("uid") and meta["uid"] != old.meta["uid"]:
                raise errors.conflict(
                    rt.plural,
                    rt.group,
                    name,
                    f"Precondition failed: UID in precondition: {meta['uid']}, "
                    f"UID in object meta: {old.meta['uid']}",
                )
            new = self._merge_system_fields(rt, old.obj, obj, subresource)
            new = self._validate(rt, new, old.obj)
            self._check_finalizers(rt, old.obj, new)
            if rt.generation and _spec_part(rt, new) != _spec_part(rt, old.obj):
                new["metadata"]["generation"] = old.meta.get("generation", 1) + 1
            if rt.group == "apiextensions.k8s.io" and subresource is None:
                new["status"] = {**(new.get("status") or {}), **_crd_status(new)}
            if _same(new, old.obj):
                return old
            if dry_run:
                return Stored(new)
            if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
                final = self.store.delete(rt.storage_key, namespace, name)
                assert final is not None
                self._after_delete(rt, final)
                return final
            stored = self.store.put(rt.storage_key, namespace, name, new)
            self._after_write(rt, stored)
            return stored

    def _merge_system_fields(self, rt: ResourceType, old: Obj, obj: Obj, subresource: str | None) -> Obj:
        if subresource == "status":
            new = copy.deepcopy(old)
            if "status" in obj:
                new["status"] = obj["status"]
            else:
                new.pop("status", None)
            new["metadata"]["resourceVersion"] = obj["metadata"].get("resourceVersion", "")
            return new
        new = obj
        meta = new["metadata"]
        for field in _SYSTEM_META:
            if field in old["metadata"]:
                meta[field] = old["metadata"][field]
            else:
                meta.pop(field, None)
        meta.pop("managedFields", None)
        if rt.has_status or (rt.plural == "namespaces" and rt.group == ""):
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        if rt.plural == "namespaces" and rt.group == "" and subresource != "finalize":
            new["spec"] = old.get("spec", {})
        return new

    def _check_finalizers(self, rt: ResourceType, old: Obj, new: Obj) -> None:
        if not old["metadata"].get("deletionTimestamp"):
            return
        before = set(old["metadata"].get("finalizers") or [])
        added = [f for f in new["metadata"].get("finalizers") or [] if f not in before]
        if added:
            raise errors.invalid(
                rt.kind,
                rt.group,
                old["metadata"]["name"],
                [
                    errors.forbidden(
                        "metadata.finalizers",
                        "no new finalizers can be added if the object is being deleted, "
                        f"found new finalizers {added!r}",
                    )
                ],
            )

    # ------------------------------------------------------------------ patch

    def patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        content_type: str,
        raw: bytes,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> Stored:
        return self.patch_or_apply(rt, namespace, name, content_type, raw, subresource, dry_run)[0]

    def patch_or_apply(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        content_type: str,
        raw: bytes,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> tuple[Stored, bool]:
        """PATCH; returns (object, created) — an apply patch creates a missing object (201)."""
        content_type = content_type.split(";")[0].strip().lower()
        accepted = [JSON_PATCH, MERGE_PATCH, APPLY_PATCH] + ([STRATEGIC_PATCH] if rt.strategic_merge else [])
        if content_type not in accepted:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: "
                + ", ".join(accepted),
            )
        try:
            body = yaml.safe_load(raw) if content_type == APPLY_PATCH else json.loads(raw or b"null")
        except (ValueError, yaml.YAMLError) as exc:
            raise errors.bad_request(f"error decoding patch: {exc}") from None
        with self.store.lock:
            current = self.store.get(rt.storage_key, namespace, name)
            if current is None:
                if content_type == APPLY_PATCH and subresource is None:
                    return self.create(rt, namespace, body, dry_run), True
                raise errors.not_found(rt.plural, rt.group, name)
            base = copy.deepcopy(current.obj)
            try:
                if content_type == JSON_PATCH:
                    if not isinstance(body, list):
                        raise errors.bad_request(
                            "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
                        )
                    patched = patch.json_patch(base, body)
                elif content_type == STRATEGIC_PATCH:
                    _require_map(body)
                    patched = patch.strategic_merge_patch(base, body)
                else:
                    _require_map(body)
                    patched = patch.merge_patch(base, body)
            except patch.PatchError as exc:
                raise ApiError(422, "Invalid", str(exc)) from None
            if not isinstance(patched, dict):
                raise errors.bad_request("patched object is not a JSON object")
            patched.setdefault("metadata", {})
            if patched["metadata"].get("resourceVersion") is None:
                patched["metadata"]["resourceVersion"] = current.meta["resourceVersion"]
            return self.update(rt, namespace, name, patched, subresource, dry_run, from_patch=True), False

    # ----------------------------------------------------------------- delete

    def delete(
        self, rt: ResourceType, namespace: str, name: str, options: DeleteOptions
    ) -> tuple[Stored, bool]:
        """Delete or start deleting; returns (object, deleted now)."""
        with self.store.lock:
            old = self.get(rt, namespace, name)
            meta = old.meta
            if options.uid and options.uid != meta["uid"]:
                raise errors.conflict(
                    rt.plural,
                    rt.group,
                    name,
                    f"Precondition failed: UID in precondition: {options.uid}, "
                    f"UID in object meta: {meta['uid']}",
                )
            if options.resource_version and options.resource_version != meta["resourceVersion"]:
                raise errors.conflict(
                    rt.plural,
                    rt.group,
                    name,
                    f"Precondition failed: ResourceVersion in precondition: {options.resource_version}, "
                    f"ResourceVersion in object meta: {meta['resourceVersion']}",
                )
            finalizers = list(meta.get("finalizers") or [])
            extra = {"Orphan": "orphan", "Foreground": "foregroundDeletion"}.get(options.propagation or "")
            if extra and extra not in finalizers:
                finalizers.append(extra)
            if options.propagation == "Background" and not meta.get("deletionTimestamp"):
                # An explicit Background delete drops propagation finalizers a client sent itself.
                finalizers = [f for f in finalizers if f not in ("orphan", "foregroundDeletion")]
            is_namespace = rt.group == "" and rt.plural == "namespaces"
            pending = bool(finalizers) or is_namespace
            if not pending:
                if options.dry_run:
                    return old, True
                final = self.store.delete(rt.storage_key, namespace, name)
                assert final is not None
                self._after_delete(rt, final)
                return final, True
            new = copy.deepcopy(old.obj)
            new_meta = new["metadata"]
            if not new_meta.get("deletionTimestamp") and new_meta.get("generation"):
                # The real server bumps generation when deletion starts, so controllers that
                # skip unchanged generations still see it.
                new_meta["generation"] += 1
            new_meta.setdefault("deletionTimestamp", now_rfc3339(self.clock))
            new_meta.setdefault("deletionGracePeriodSeconds", 0)
            if finalizers:
                new_meta["finalizers"] = finalizers
            if is_namespace:
                new["status"] = {**(new.get("status") or {}), "phase": "Terminating"}
            if _same(new, old.obj) or options.dry_run:
                return old, False
            stored = self.store.put(rt.storage_key, namespace, name, new)
            return stored, False

    def delete_collection(
        self,
        rt: ResourceType,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
        options: DeleteOptions,
    ) -> list[Stored]:
        with self.store.lock:
            found = self.list_objects(rt, namespace, labels, fields).items
            out: list[Stored] = []
            for stored in found:
                meta = stored.meta
                try:
                    out.append(self.delete(rt, meta.get("namespace", ""), meta["name"], options)[0])
                except ApiError as exc:
                    if exc.code != 404:
                        raise
            return out

    # ---------------------------------------------------------------- helpers

    def _decode_body(self, rt: ResourceType, body: Any, namespace: str) -> Obj:
        if not isinstance(body, dict):
            raise errors.bad_request(f"Object '{rt.kind}' is not a JSON object")
        obj = copy.deepcopy(body)
        kind = obj.get("kind")
        if kind and kind != rt.kind:
            raise errors.bad_request(
                f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})"
                if rt.crd_name
                else f'{kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                f'no kind "{kind}" is registered for version "{rt.api_version}"'
            )
        api_version = obj.get("apiVersion")
        if api_version and api_version.split("/")[0] != (rt.group or rt.version) and rt.group:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match "
                f"the expected API version ({rt.api_version})"
            )
        obj["kind"] = rt.kind
        obj["apiVersion"] = rt.api_version
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if rt.group == "" and rt.plural == "secrets":
            validation.normalize_secret(obj)
        elif rt.group == "apps" and rt.plural == "deployments":
            deployments.apply_defaults(obj)
        if rt.group == rbacvalidation.GROUP:
            rbacvalidation.default(rt.plural, obj)
        return obj

    def _validate(self, rt: ResourceType, obj: Obj, old: Obj | None) -> Obj:
        problems: list[FieldError] = validation.validate_metadata(rt, obj)
        problems += validation.validate_kind(rt, obj, old)
        if rt.crd_schema:
            obj, schema_problems = schema.apply_schema(rt.crd_schema, obj)
            problems += schema_problems
        if problems:
            name = obj["metadata"].get("name") or obj["metadata"].get("generateName", "")
            raise errors.invalid(rt.kind, rt.group, name, problems)
        return obj

    def _after_write(self, rt: ResourceType, stored: Stored) -> None:
        is_crd = rt.group == "apiextensions.k8s.io" and rt.plural == "customresourcedefinitions"
        if is_crd and not stored.meta.get("deletionTimestamp"):
            self.registry.set_crd(stored.meta["name"], types_for_crd(stored.obj))
        is_namespace = rt.group == "" and rt.plural == "namespaces"
        if is_namespace and not stored.meta.get("deletionTimestamp"):
            self._populate_namespace(stored.meta["name"])

    def _populate_namespace(self, ns: str) -> None:
        """What a cluster's controllers put in every namespace: the ``default`` ServiceAccount
        and the ``kube-root-ca.crt`` ConfigMap (so code and tests meet them here too)."""
        if self.store.get("serviceaccounts", ns, "default") is None:
            sa_type = self.registry.lookup("", "v1", "serviceaccounts")
            assert sa_type is not None
            self.create(sa_type, ns, {"metadata": {"name": "default"}})
        if self.root_ca_pem and self.store.get("configmaps", ns, "kube-root-ca.crt") is None:
            cm_type = self.registry.lookup("", "v1", "configmaps")
            assert cm_type is not None
            body = {
                "metadata": {
                    "name": "kube-root-ca.crt",
                    "annotations": {
                        "kubernetes.io/description": "Contains a CA bundle that can be used "
                        "to verify the kube-apiserver when using internal endpoints such as "
                        "the internal service IP or kubernetes.default.svc. No other usage "
                        "is guaranteed across distributions of Kubernetes clusters."
                    },
                },
                "data": {"ca.crt": self.root_ca_pem},
            }
            self.create(cm_type, ns, body)

    def _after_delete(self, rt: ResourceType, final: Stored) -> None:
        if rt.group == "apiextensions.k8s.io" and rt.plural == "customresourcedefinitions":
            self.registry.set_crd(final.meta["name"], [])


def _field_getter(obj: Obj) -> Callable[[str], str]:
    return lambda path: field_value(obj, path)


def _require_map(body: Any) -> None:
    if not isinstance(body, dict):
        raise errors.bad_request("patch body must be a JSON object")


def _spec_part(rt: ResourceType, obj: Obj) -> Obj:
    skip = {"metadata", "status"} if rt.has_status else {"metadata"}
    return {k: v for k, v in obj.items() if k not in skip}


def _same(new: Obj, old: Obj) -> bool:
    """True when an update changes nothing but the resourceVersion (a no-op write)."""
    if new.keys() != old.keys():
        return False
    for key, value in new.items():
        if key == "metadata":
            a = {k: v for k, v in value.items() if k != "resourceVersion"}
            b = {k: v for k, v in old["metadata"].items() if k != "resourceVersion"}
            if a != b:
                return False
        elif value != old[key]:
            return False
    return True


def _crd_status(crd: Obj) -> Obj:
    spec = crd.get("spec") or {}
    names = dict(spec.get("names") or {})
    names.setdefault("singular", str(names.get("kind", "")).lower())
    names.setdefault("listKind", f"{names.get('kind', '')}List")
    ts = crd["metadata"].get("creationTimestamp", "")
    storage = [v["name"] for v in spec.get("versions") or [] if v.get("storage")]
    return {
        "acceptedNames": names,
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "reason": "NoConflicts",
                "message": "no conflicts found",
                "lastTransitionTime": ts,
            },
            {
                "type": "Established",
                "status": "True",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
                "lastTransitionTime": ts,
            },
        ],
        "storedVersions": storage,
    }
