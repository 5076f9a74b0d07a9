"""What a reconcile may touch, in one object, plus the Kubernetes edges every reconciler shares.

:class:`Runtime` bundles the API clients, the watch caches, the Vault sessions, the HMAC key and
the operator's settings, so reconcilers take one argument and tests can build one against the
devkit API server. The shared edges live here too: reading the destination Secret (cache first),
writing it after the ownership check, patching a custom resource's status only when it changed,
and adding/removing our finalizer.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from csi_vso.operator import access_rbac, api, destination, metrics
from csi_vso.operator.events import EventRecorder
from csi_vso.operator.hmac import compute_mac
from csi_vso.operator.pkispec import PKISecretSpec
from csi_vso.operator.rollout import Rollouts
from csi_vso.operator.secretcache import MetadataOnly
from csi_vso.operator.sessions import Sessions
from csi_vso.operator.watch import Informer

log = logging.getLogger(__name__)

FINALIZER = "csi-vso.io/finalizer"


class Conflict(Exception):
    """Someone else changed the object between our read and our write: retry soon (temporary)."""


@dataclass(frozen=True)
class DestinationSync:
    """What syncing rendered data into a destination Secret did."""

    mac: str  # keyed MAC of the data now in the Secret
    previous_mac: str | None  # MAC of what it held before; None when it did not exist
    wrote: bool  # False: the Secret already matched, nothing was written


@dataclass
class Runtime:
    api_client: client.ApiClient
    operator_namespace: str
    hmac_key: bytes
    informers: dict[str, Informer]  # kind -> informer; "Secret" for destination Secrets
    sessions: Sessions
    events: EventRecorder
    rollouts: Rollouts
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    rng: random.Random = field(default_factory=random.Random)
    # VSO's --global-transformation-options=exclude-raw: no ``_raw`` key in any transformed Secret.
    exclude_raw: bool = False

    def __post_init__(self) -> None:
        self.core = client.CoreV1Api(self.api_client)
        self.custom = client.CustomObjectsApi(self.api_client)
        self.rbac = client.RbacAuthorizationV1Api(self.api_client)
        # (namespace, Secret) -> fingerprint of the Role/RoleBinding last applied, so a resync
        # that changes no policy costs no API call.
        self._access_applied: dict[tuple[str, str], str] = {}
        self._access_lock = threading.Lock()
        # uid -> (resourceVersion we patched from, the status it has since our patch); see patch_status
        self._status_written: dict[str, tuple[str, dict[str, Any]]] = {}
        self._status_lock = threading.Lock()

    # -- caches ---------------------------------------------------------------------------------

    def cached(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        obj = self.informers[kind].get(namespace, name)
        return obj if isinstance(obj, dict) else None

    def getter(self, kind: str) -> Callable[[str, str], dict[str, Any] | None]:
        return lambda namespace, name: self.cached(kind, namespace, name)

    # -- destination Secret ---------------------------------------------------------------------

    def read_destination(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Secret as a wire dict: from the cache when it is one of ours, else a live GET.

        The cache only holds Secrets labelled as managed by us, and keeps only the metadata of
        those it does not know as a custom resource's destination (:mod:`secretcache`); a foreign
        Secret with the same name must still be found (to refuse overwriting it), hence the GET
        on a cache miss or a metadata-only entry.
        """
        cached = self.informers["Secret"].get(namespace, name)
        if cached is not None and not isinstance(cached, MetadataOnly):
            return dict(self.api_client.sanitize_for_serialization(cached))
        return self.read_destination_live(namespace, name)

    def read_destination_live(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            live = self.core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict(self.api_client.sanitize_for_serialization(live))

    def write_destination(
        self, existing: Mapping[str, Any] | None, desired: dict[str, Any], owner: destination.Owner
    ) -> None:
        """Create, replace or (type change) recreate the destination Secret."""
        namespace = owner.namespace
        name = desired["metadata"]["name"]
        try:
            if existing is not None and destination.needs_recreate(existing, desired):
                # A Secret's type is immutable: a new type means delete and create (only ever
                # a Secret we own or were told to take over: check_writable ran before).
                self.core.delete_namespaced_secret(name, namespace)
                existing = None
            if existing is None:
                self.core.create_namespaced_secret(namespace, desired)
            else:
                body = dict(desired)
                body["metadata"] = {
                    **desired["metadata"],
                    "resourceVersion": (existing.get("metadata") or {}).get("resourceVersion"),
                }
                self.core.replace_namespaced_secret(name, namespace, body)
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict(f"Secret {namespace}/{name} changed while writing it; retrying") from None
            raise
        metrics.SECRET_WRITES.labels(kind=owner.kind).inc()
        log.info(
            "wrote destination Secret",
            extra={"secret": f"{namespace}/{name}", "owner": f"{owner.kind}/{owner.name}"},
        )

    # -- read access for pod tokens ---------------------------------------------------------------

    def ensure_access(self, owner: destination.Owner, secret_name: str, access: api.AccessPolicy) -> None:
        """Keep the Secret's Role and RoleBinding (:mod:`access_rbac`) as the policy says.

        Called before the Secret itself is written, so a widened policy is in force when the
        Secret announces it, and a narrowed one is withdrawn from the API server first. No
        subjects at all: the RoleBinding and Role are removed. A same-named Role or RoleBinding
        that is not ours is never overwritten (DestinationError ``AccessRBACNotOwned``).
        """
        bound = access_rbac.subjects(owner.namespace, access)
        desired = (
            [access_rbac.role(owner, secret_name), access_rbac.role_binding(owner, secret_name, bound)]
            if bound
            else []
        )
        key = (owner.namespace, secret_name)
        fingerprint = json.dumps([owner.uid, desired], sort_keys=True)
        with self._access_lock:
            if self._access_applied.get(key) == fingerprint:
                return
        name = access_rbac.object_name(secret_name)
        if desired:
            for obj in desired:
                self._apply_rbac(obj, owner)
        else:
            for kind in ("RoleBinding", "Role"):
                self._delete_rbac(kind, owner.namespace, name, owner)
        with self._access_lock:
            self._access_applied[key] = fingerprint
        log.info(
            "read access for pod tokens applied",
            extra={"secret": f"{owner.namespace}/{secret_name}", "subjects": len(bound)},
        )

    def _rbac_calls(self, kind: str) -> tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]:
        if kind == "Role":
            return (
                self.rbac.read_namespaced_role,
                self.rbac.create_namespaced_role,
                self.rbac.replace_namespaced_role,
            )
        return (
            self.rbac.read_namespaced_role_binding,
            self.rbac.create_namespaced_role_binding,
            self.rbac.replace_namespaced_role_binding,
        )

    def _apply_rbac(self, desired: dict[str, Any], owner: destination.Owner) -> None:
        kind, name, namespace = desired["kind"], desired["metadata"]["name"], owner.namespace
        read, create, replace = self._rbac_calls(kind)
        try:
            create(namespace, desired)
            return
        except ApiException as exc:
            if exc.status != 409:
                raise
        existing = dict(self.api_client.sanitize_for_serialization(read(name, namespace)))
        if not access_rbac.owned_by(existing, owner.uid):
            raise destination.DestinationError(
                "AccessRBACNotOwned",
                f"{kind} {namespace}/{name} exists and is not managed by this {owner.kind}; "
                "rename or remove it so the operator can grant pods read access to the Secret",
            )
        if not access_rbac.differs(existing, desired):
            return
        body = dict(desired)
        body["metadata"] = {
            **desired["metadata"],
            "resourceVersion": existing["metadata"].get("resourceVersion"),
        }
        try:
            replace(name, namespace, body)
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict(f"{kind} {namespace}/{name} changed while writing it; retrying") from None
            raise

    def _delete_rbac(self, kind: str, namespace: str, name: str, owner: destination.Owner) -> None:
        read, _, _ = self._rbac_calls(kind)
        delete = (
            self.rbac.delete_namespaced_role if kind == "Role" else self.rbac.delete_namespaced_role_binding
        )
        try:
            existing = dict(self.api_client.sanitize_for_serialization(read(name, namespace)))
            if access_rbac.owned_by(existing, owner.uid):
                delete(name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise

    # -- custom resources -----------------------------------------------------------------------

    def sync_destination(
        self,
        *,
        owner: destination.Owner,
        spec: api.StaticSecretSpec | api.DynamicSecretSpec | PKISecretSpec,
        data: dict[str, bytes],
        existing: Mapping[str, Any] | None,
        now: datetime,
    ) -> DestinationSync:
        """Write ``data`` into the spec's destination unless it already holds exactly that.

        Comparing keyed MACs (not values) decides, so a no-op sync costs no API write and the
        decision never needs the plaintext of what the Secret held beyond this call.
        """
        self.ensure_access(owner, spec.destination.name, spec.access)
        mac = compute_mac(self.hmac_key, owner.uid, data, spec.secret_type)
        desired = destination.build(
            owner=owner,
            destination=spec.destination,
            secret_type=spec.secret_type,
            data=data,
            mac=mac,
            access=spec.access,
            written_at=now,
        )
        previous_mac = (
            compute_mac(self.hmac_key, owner.uid, destination.decode_data(existing), spec.secret_type)
            if existing is not None
            else None
        )
        wrote = not destination.in_sync(existing, desired, previous_mac)
        if wrote:
            self.write_destination(existing, desired, owner)
        else:
            metrics.SKIPPED_WRITES.labels(kind=owner.kind).inc()
        metrics.SYNCS.labels(kind=owner.kind).inc()
        return DestinationSync(mac=mac, previous_mac=previous_mac, wrote=wrote)

    def patch_status(self, obj: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
        """Merge ``status`` into the object's status unless that changes nothing; returns whether it wrote.

        ``obj`` usually comes from the watch cache, which may not show our own last status patch
        yet (a reconcile triggered by the Secret we just wrote runs before the patch echoes
        back). While the cached object is still the very version we patched (same
        resourceVersion), the comparison uses the status as we left it, so the echo-less
        repeat costs no second, identical write. Any other writer changes the resourceVersion.
        """
        metadata = obj.get("metadata") or {}
        uid = str(metadata.get("uid"))
        version = str(metadata.get("resourceVersion") or "")
        current = obj.get("status") or {}
        with self._status_lock:
            written = self._status_written.get(uid)
        if written is not None and version and written[0] == version:
            current = written[1]
        if all(current.get(k) == v for k, v in status.items()):
            return False
        kind = str(obj.get("kind"))
        try:
            self.custom.patch_namespaced_custom_object_status(
                api.GROUP,
                api.VERSION,
                metadata["namespace"],
                api.PLURALS[kind],
                metadata["name"],
                {"status": dict(status)},
            )
        except ApiException as exc:
            if exc.status == 404:
                return False  # deleted meanwhile
            raise
        metrics.STATUS_WRITES.labels(kind=kind).inc()
        with self._status_lock:
            self._status_written[uid] = (version, {**current, **status})
        return True

    def forget_status(self, uid: str) -> None:
        with self._status_lock:
            self._status_written.pop(uid, None)

    def _patch_finalizers(self, obj: Mapping[str, Any], finalizers: list[str]) -> None:
        metadata = obj.get("metadata") or {}
        kind = str(obj.get("kind"))
        # resourceVersion makes this a compare-and-swap: finalizers is a list, and a merge
        # patch replaces lists whole, so we must not clobber someone else's concurrent change.
        patch = {"metadata": {"finalizers": finalizers, "resourceVersion": metadata.get("resourceVersion")}}
        try:
            self.custom.patch_namespaced_custom_object(
                api.GROUP, api.VERSION, metadata["namespace"], api.PLURALS[kind], metadata["name"], patch
            )
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict(
                    f"{kind} {metadata.get('namespace')}/{metadata.get('name')} changed; retrying"
                ) from None
            if exc.status != 404:
                raise

    def ensure_finalizer(self, obj: Mapping[str, Any]) -> bool:
        """Add our finalizer; True when a patch was sent (the watch will bring the new object)."""
        finalizers = list((obj.get("metadata") or {}).get("finalizers") or [])
        if FINALIZER in finalizers:
            return False
        self._patch_finalizers(obj, [*finalizers, FINALIZER])
        return True

    def remove_finalizer(self, obj: Mapping[str, Any]) -> None:
        finalizers = list((obj.get("metadata") or {}).get("finalizers") or [])
        if FINALIZER in finalizers:
            self._patch_finalizers(obj, [f for f in finalizers if f != FINALIZER])


def owner_of(obj: Mapping[str, Any]) -> destination.Owner:
    metadata = obj.get("metadata") or {}
    return destination.Owner(
        api_version=str(obj.get("apiVersion") or api.API_VERSION),
        kind=str(obj.get("kind")),
        name=str(metadata.get("name")),
        namespace=str(metadata.get("namespace")),
        uid=str(metadata.get("uid")),
    )


def generation_of(obj: Mapping[str, Any]) -> int:
    return int((obj.get("metadata") or {}).get("generation") or 0)


def rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
