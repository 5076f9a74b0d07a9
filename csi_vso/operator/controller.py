"""The controller loop: watch caches feed a work queue, workers reconcile one object at a time.

- Watch caches (:mod:`watch`): one informer per kind across all namespaces, plus destination
  Secrets selected by our managed-by label (drift: an edit or delete of a Secret re-queues its
  owner, found by the owner-uid label).
- Work queue (:mod:`workqueue`): a key is never reconciled by two workers at once; different
  keys run in parallel on ``max_concurrent_reconciles`` threads. Each reconcile returns when to
  look again (jittered refresh); failures re-queue with exponential backoff 5 s -> 60 s.
- Failures are classified in one place (:func:`classify`): every outcome becomes a condition on
  the object and a (deduplicated) Warning event; the destination Secret is left as it was. A
  spec error is not retried (the next edit re-queues it); everything else is, with backoff, so
  a bad custom resource never becomes a hot loop or a crash.
- Watch events start a reconcile only when the spec (generation) changed or deletion began;
  status-only updates (our own) are ignored, so they cannot bypass the backoff.
- A change to a VaultAuth, VaultAuthGlobal or VaultConnection re-queues every secret (they may
  refer to it, and a fix there must heal them without waiting for their next refresh); a change
  to a VaultConnection or VaultAuthGlobal also re-queues every VaultAuth (their Ready depends on it).
- A change to a SecretTransformation re-queues exactly the secrets that reference it: every
  secret's ``transformationRefs`` are indexed as the watch delivers it (:mod:`transform.index`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from csi_vso import protected
from csi_vso.operator import api, authglobal, metrics, secretcache
from csi_vso.operator.addresses import AddressPattern
from csi_vso.operator.conditions import READY, SECRET_SYNCED, ReasonedError, set_condition
from csi_vso.operator.dynamic import DynamicReconciler
from csi_vso.operator.events import EventRecorder
from csi_vso.operator.pki import CertificateRejected, PKIReconciler
from csi_vso.operator.render import RenderError
from csi_vso.operator.rollout import Rollouts
from csi_vso.operator.runtime import Conflict, Runtime, generation_of
from csi_vso.operator.sessions import Sessions
from csi_vso.operator.static import KVVersionCache, SyncState, reconcile_static
from csi_vso.operator.transform import gather
from csi_vso.operator.transform.index import ReferenceIndex
from csi_vso.operator.transform.render import check_secret_transformation
from csi_vso.operator.transform.spec import TransformSpecError, parse_transformation
from csi_vso.operator.vault.cache import SessionCache
from csi_vso.operator.vault.errors import VaultError
from csi_vso.operator.watch import Informer, custom_object_informer, secret_informer
from csi_vso.operator.workqueue import Backoff, WorkQueue

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # (kind, namespace, name)
SECRET_KINDS = ("VaultStaticSecret", "VaultSecret", "VaultDynamicSecret", "VaultPKISecret")
REF_KINDS = ("VaultConnection", "VaultAuth", "VaultAuthGlobal")
# A VaultAuth's own Ready condition checks these (defaults merged in, the connection resolved and
# allowed): a change to one must re-check the VaultAuths at once, not at their next backoff.
AUTH_DEPENDENCY_KINDS = ("VaultConnection", api.AUTH_GLOBAL_KIND)
TRANSFORMATION_KIND = api.TRANSFORMATION_KIND
CONFLICT_RETRY = 1.0


@dataclass(frozen=True)
class ControllerSettings:
    operator_namespace: str
    max_concurrent_reconciles: int = 10
    informer_resync: float = 300.0
    backoff_base: float = 5.0
    backoff_cap: float = 60.0
    rollout_debounce: float = 2.0
    token_upkeep_interval: float = 5.0
    settings_refresh: float = 60.0  # re-read CA / AppRole Secrets behind a cached session this often
    identity: str = ""  # this replica, as the reporting instance of its events
    # --allowed-vault-addresses: where logins and requests may go (empty: anywhere)
    allowed_vault_addresses: tuple[AddressPattern, ...] = ()
    exclude_raw: bool = False  # VSO's --global-transformation-options=exclude-raw


@dataclass(frozen=True)
class Failure:
    reason: str
    message: str
    retry: bool
    warning: bool = True


def classify(exc: BaseException) -> Failure:
    """Map an exception from a reconcile to a condition reason, message and retry decision.

    Messages come from our own exceptions, which carry names and paths only. Kubernetes API
    errors are reduced to status and reason: their bodies may echo a request (a Secret's data).
    """
    if isinstance(exc, api.SpecError):
        return Failure("InvalidSpec", str(exc), retry=False)
    if isinstance(exc, ReasonedError):
        # References, destinations, transformations: retried, for the object at fault may
        # appear or be fixed (an edit of a referenced custom resource also re-queues at once).
        return Failure(exc.reason, str(exc), retry=True)
    if isinstance(exc, CertificateRejected):
        return Failure(exc.reason, str(exc), retry=exc.retry)
    if isinstance(exc, TransformSpecError):
        return Failure("InvalidSpec", str(exc), retry=False)
    if isinstance(exc, RenderError):
        return Failure("InvalidSecretData", str(exc), retry=True)
    if isinstance(exc, VaultError):
        return Failure(type(exc).__name__, str(exc), retry=True)
    if isinstance(exc, ApiException):
        return Failure("KubernetesAPIError", f"Kubernetes API answered {exc.status} {exc.reason}", retry=True)
    return Failure("InternalError", f"unexpected {type(exc).__name__}; see the operator log", retry=True)


class Controller:
    def __init__(
        self,
        api_client: client.ApiClient,
        settings: ControllerSettings,
        *,
        hmac_key: bytes,
        session_cache: SessionCache | None = None,
    ) -> None:
        self.settings = settings
        custom = client.CustomObjectsApi(api_client)
        core = client.CoreV1Api(api_client)
        self.informers: dict[str, Informer] = {
            kind: custom_object_informer(
                custom, api.GROUP, api.VERSION, api.PLURALS[kind], resync_period=settings.informer_resync
            )
            for kind in (*REF_KINDS, *SECRET_KINDS, TRANSFORMATION_KIND)
        }
        # (namespace, destination name) -> uids of the custom resources writing it: the only
        # Secrets the cache keeps whole (finding 2b; see secretcache).
        self._destinations: dict[tuple[str, str], set[str]] = {}
        self._destination_of: dict[str, tuple[str, str]] = {}
        self.informers["Secret"] = secret_informer(
            core,
            label_selector=f"{protected.MANAGED_BY_LABEL}={protected.MANAGED_BY_VALUE}",
            resync_period=settings.informer_resync,
            transform=lambda secret: secretcache.slim(secret, self._is_our_destination),
        )
        # A re-login abandons the old token, and the leases it issued end with it: every dynamic
        # secret is looked at again (those on the old token schedule new credentials).
        self.session_cache = session_cache or SessionCache(
            interval=settings.token_upkeep_interval,
            on_relogin=lambda: self._requeue_kind("VaultDynamicSecret"),
        )
        self.rt = Runtime(
            api_client=api_client,
            operator_namespace=settings.operator_namespace,
            hmac_key=hmac_key,
            informers=self.informers,
            sessions=Sessions(
                cache=self.session_cache,
                core=core,
                get_auth=lambda ns, name: self.rt.cached("VaultAuth", ns, name),
                get_connection=lambda ns, name: self.rt.cached("VaultConnection", ns, name),
                get_auth_global=lambda ns, name: self.rt.cached("VaultAuthGlobal", ns, name),
                operator_namespace=settings.operator_namespace,
                settings_ttl=settings.settings_refresh,
                allowed_addresses=settings.allowed_vault_addresses,
            ),
            events=EventRecorder(core, host=settings.identity),
            rollouts=Rollouts(client.AppsV1Api(api_client), debounce=settings.rollout_debounce),
            exclude_raw=settings.exclude_raw,
        )
        self.queue: WorkQueue[Key] = WorkQueue()
        self.backoff: Backoff[Key] = Backoff(settings.backoff_base, settings.backoff_cap)
        self._static_memory: dict[str, SyncState] = {}
        self._kv_versions = KVVersionCache()
        self._kv_lock = threading.Lock()
        self.dynamic = DynamicReconciler(self.rt)
        self.pki = PKIReconciler(self.rt)
        self._uid_to_key: dict[str, Key] = {}
        self._transformation_refs: ReferenceIndex[Key, gather.RefKey] = ReferenceIndex()
        self._signatures: dict[Key, tuple[int, bool, str]] = {}
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._stopped = threading.Event()
        for kind in (*REF_KINDS, *SECRET_KINDS, TRANSFORMATION_KIND):
            self.informers[kind].on_change(self._cr_handler(kind))
        self.informers["Secret"].on_change(self._on_secret)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, sync_timeout: float = 60.0) -> None:
        # Custom resources first: the Secret cache decides what to keep whole by their destinations.
        for group in ([k for k in self.informers if k != "Secret"], ["Secret"]):
            for kind in group:
                self.informers[kind].start()
            for kind in group:
                if not self.informers[kind].wait_for_sync(sync_timeout):
                    raise TimeoutError(f"the {kind} watch cache did not sync within {sync_timeout}s")
        self.session_cache.start()
        self.dynamic.start()
        for index in range(self.settings.max_concurrent_reconciles):
            worker = threading.Thread(target=self._work, name=f"reconcile-{index}", daemon=True)
            worker.start()
            self._workers.append(worker)
        log.info("controller started", extra={"workers": self.settings.max_concurrent_reconciles})

    def stop(self) -> None:
        self._stopped.set()
        self.queue.shutdown()
        for worker in self._workers:
            worker.join(timeout=30)
        self.dynamic.stop()
        for informer in self.informers.values():
            informer.stop()
        self.rt.rollouts.close()
        self.session_cache.close()

    # -- event handlers -------------------------------------------------------------------------

    def _cr_handler(self, kind: str) -> Callable[[str, Any], None]:
        def handle(event_type: str, obj: Any) -> None:
            if not isinstance(obj, dict):
                return
            metadata = obj.get("metadata") or {}
            key: Key = (kind, str(metadata.get("namespace")), str(metadata.get("name")))
            uid = str(metadata.get("uid"))
            if kind in SECRET_KINDS:
                self._track_destination(uid, None if event_type == "DELETED" else obj)
                self._index_transformation_refs(key, obj, deleted=event_type == "DELETED")
            if event_type == "DELETED":
                self.queue.forget(key)
                with self._lock:
                    self._uid_to_key.pop(uid, None)
                    self._signatures.pop(key, None)
                self._static_memory.pop(uid, None)
                self.rt.forget_status(uid)
                if kind == api.PKI_KIND:
                    self.pki.forget(uid)
                self.backoff.reset(key)
                self.rt.events.forget(uid)
                if kind in REF_KINDS:
                    self.rt.sessions.forget(uid)
                    self._requeue_all_secrets()
                if kind in AUTH_DEPENDENCY_KINDS:
                    self._requeue_kind("VaultAuth")  # their status depends on it
                if kind == TRANSFORMATION_KIND:
                    self._requeue_referrers(key)
                return
            # Only spec changes (generation) and deletion start a reconcile: our own status
            # patches and finalizer edits come back as MODIFIED too, and reacting to them would
            # turn every failure into a hot loop that bypasses the backoff.
            signature = (
                generation_of(obj),
                bool(metadata.get("deletionTimestamp")),
                self._template_inputs(kind, obj),
            )
            with self._lock:
                self._uid_to_key[uid] = key
                changed = self._signatures.get(key) != signature
                self._signatures[key] = signature
            if not changed:
                return
            self.queue.add(key)
            if kind in REF_KINDS:
                self._requeue_all_secrets()
            if kind in AUTH_DEPENDENCY_KINDS:
                self._requeue_kind("VaultAuth")
            if kind == TRANSFORMATION_KIND:
                self._requeue_referrers(key)

        return handle

    def _track_destination(self, uid: str, obj: dict[str, Any] | None) -> None:
        """Remember which Secret a custom resource writes (None: it was deleted)."""
        where = None
        if obj is not None:
            spec = obj.get("spec") or {}
            target = spec.get("destination") if isinstance(spec, dict) else None
            name = target.get("name") if isinstance(target, dict) else None
            if isinstance(name, str) and name:
                where = (str((obj.get("metadata") or {}).get("namespace")), name)
        with self._lock:
            previous = self._destination_of.pop(uid, None)
            if previous is not None:
                owners = self._destinations.get(previous, set())
                owners.discard(uid)
                if not owners:
                    self._destinations.pop(previous, None)
            if where is not None:
                self._destination_of[uid] = where
                self._destinations.setdefault(where, set()).add(uid)

    def _is_our_destination(self, namespace: str, name: str, claimed: set[str]) -> bool:
        with self._lock:
            return bool(self._destinations.get((namespace, name), set()) & claimed)

    @staticmethod
    def _template_inputs(kind: str, obj: dict[str, Any]) -> str:
        """The annotations and labels a secret's templates read (VSO passes the CR's own).

        Editing them does not bump the generation, yet changes the rendered data: for a secret
        with a transformation they are part of the watch signature, so the edit re-renders it.
        """
        if kind not in SECRET_KINDS:
            return ""
        spec = obj.get("spec")
        destination = spec.get("destination") if isinstance(spec, dict) else None
        if not isinstance(destination, dict) or destination.get("transformation") is None:
            return ""
        metadata = obj.get("metadata") or {}
        return repr(
            (
                sorted((metadata.get("annotations") or {}).items()),
                sorted((metadata.get("labels") or {}).items()),
            )
        )

    def _index_transformation_refs(self, key: Key, obj: dict[str, Any], *, deleted: bool) -> None:
        """Record which SecretTransformations this secret references (for :meth:`_requeue_referrers`)."""
        if deleted:
            self._transformation_refs.remove(key)
            return
        spec = obj.get("spec")
        destination = spec.get("destination") if isinstance(spec, dict) else None
        value = destination.get("transformation") if isinstance(destination, dict) else None
        transformation = parse_transformation(value, "transformation", [])
        self._transformation_refs.set(key, gather.ref_keys(transformation, key[1]))

    def _requeue_referrers(self, transformation_key: Key) -> None:
        _, namespace, name = transformation_key
        for key in self._transformation_refs.referrers((namespace, name)):
            self.queue.add(key)

    def _requeue_all_secrets(self) -> None:
        for kind in SECRET_KINDS:
            self._requeue_kind(kind)

    def _requeue_kind(self, kind: str) -> None:
        for obj in self.informers[kind].list():
            metadata = obj.get("metadata") or {}
            self.queue.add((kind, str(metadata.get("namespace")), str(metadata.get("name"))))

    def _on_secret(self, event_type: str, secret: Any) -> None:
        """Re-queue the owner of a destination Secret that changed or went away.

        The owner is found by our owner-uid label, or by the ownerReference when someone stripped
        the labels (the filtered watch then reports the Secret as leaving the selection).
        """
        metadata = getattr(secret, "metadata", None)
        if metadata is None:
            return
        uids = [(metadata.labels or {}).get(protected.OWNER_UID_LABEL)]
        uids += [ref.uid for ref in metadata.owner_references or []]
        with self._lock:
            keys = {self._uid_to_key[uid] for uid in uids if uid and uid in self._uid_to_key}
        for key in keys:
            self.queue.add(key)

    # -- workers --------------------------------------------------------------------------------

    def _work(self) -> None:
        while not self._stopped.is_set():
            key = self.queue.get(timeout=1.0)
            if key is None:
                continue
            try:
                self.process(key)
            except Exception:  # never let a worker die
                log.exception("reconcile crashed", extra={"key": "/".join(key)})
            finally:
                self.queue.done(key)

    def process(self, key: Key) -> None:
        """Reconcile one key now (also used directly by tests)."""
        kind, namespace, name = key
        obj = self.rt.cached(kind, namespace, name)
        if obj is None:
            return
        started = time.monotonic()
        try:
            delay = self._reconcile(kind, obj)
        except Conflict:
            metrics.RECONCILES.labels(kind=kind, outcome="conflict").inc()
            self.queue.add_after(key, CONFLICT_RETRY)
            return
        except Exception as exc:
            failure = classify(exc)
            metrics.RECONCILES.labels(kind=kind, outcome="error").inc()
            metrics.ERRORS.labels(kind=kind, reason=failure.reason).inc()
            if failure.reason == "InternalError":
                log.exception("reconcile failed", extra={"key": "/".join(key)})
            else:
                log.warning(
                    "reconcile failed",
                    extra={"key": "/".join(key), "reason": failure.reason, "error": failure.message},
                )
            delay = self.backoff.next_delay(key) if failure.retry else None
            self._report_failure(kind, obj, failure, delay, self.backoff.failures(key))
            if delay is not None:
                self.queue.add_after(key, delay)
            return
        finally:
            metrics.RECONCILE_SECONDS.labels(kind=kind).observe(time.monotonic() - started)
        metrics.RECONCILES.labels(kind=kind, outcome="ok").inc()
        self.backoff.reset(key)
        if delay is not None:
            self.queue.add_after(key, delay)

    def _reconcile(self, kind: str, obj: dict[str, Any]) -> float | None:
        if kind in ("VaultStaticSecret", "VaultSecret"):
            return reconcile_static(self.rt, obj, self._static_memory, self._kv_versions)
        if kind == "VaultDynamicSecret":
            return self.dynamic.reconcile(obj)
        if kind == api.PKI_KIND:
            return self.pki.reconcile(obj)
        if kind == "VaultConnection":
            spec = api.parse_connection(obj)
            metadata = obj.get("metadata") or {}
            self.rt.sessions.check_address(spec, f"{metadata.get('namespace')}/{metadata.get('name')}")
            self._report_valid(obj, "VaultConnection is valid")
            return None
        if kind == "VaultAuthGlobal":
            authglobal.validate(obj)
            self._report_valid(obj, "VaultAuthGlobal is valid")
            return None
        if kind == TRANSFORMATION_KIND:
            check_secret_transformation(obj)
            self._report_valid(obj, "SecretTransformation is valid")
            return None
        if kind == "VaultAuth":
            merged = authglobal.merge(
                obj, self.rt.getter("VaultAuthGlobal"), self.settings.operator_namespace
            )
            auth = api.parse_auth(merged)
            # The connection must exist where the secrets will look for it, be shared with this
            # namespace and point at an allowed address.
            self.rt.sessions.resolve_connection(auth, str((obj.get("metadata") or {}).get("namespace")))
            self._report_valid(obj, "VaultAuth is valid")
            return None
        raise ValueError(f"unknown kind {kind}")

    # -- status on failure / validity -----------------------------------------------------------

    def _report_valid(self, obj: dict[str, Any], message: str) -> None:
        generation = generation_of(obj)
        conditions = set_condition(
            (obj.get("status") or {}).get("conditions") or [],
            type=READY,
            status="True",
            reason="Valid",
            message=message,
            generation=generation,
        )
        self.rt.patch_status(
            obj, {"valid": True, "error": None, "observedGeneration": generation, "conditions": conditions}
        )
        self.rt.events.clear(str((obj.get("metadata") or {}).get("uid")))

    def _report_failure(
        self, kind: str, obj: dict[str, Any], failure: Failure, retry_in: float | None, attempts: int
    ) -> None:
        """Conditions say what failed and when the next attempt is (the backoff is visible there);
        the event carries the stable message only, so a repeating failure is one event."""
        generation = generation_of(obj)
        conditions = list((obj.get("status") or {}).get("conditions") or [])
        message = failure.message
        if retry_in is not None:
            message += f" (attempt {attempts}; retrying in {retry_in:g}s)"
        conditions = set_condition(
            conditions,
            type=READY,
            status="False",
            reason=failure.reason,
            message=message,
            generation=generation,
        )
        status: dict[str, Any] = {"observedGeneration": generation}
        if kind in SECRET_KINDS:
            conditions = set_condition(
                conditions,
                type=SECRET_SYNCED,
                status="False",
                reason=failure.reason,
                message=message,
                generation=generation,
            )
            if kind == api.PKI_KIND:  # VSO's PKI status carries valid/error too
                status.update(valid=False, error=failure.reason)
        else:
            status.update(valid=False, error=failure.message)
        status["conditions"] = conditions
        try:
            self.rt.patch_status(obj, status)
        except Exception as exc:  # reporting must not mask the original failure
            log.warning("could not write failure status", extra={"error": type(exc).__name__})
        self.rt.events.record(obj, "Warning", failure.reason, failure.message)
