"""VaultPKISecret reconcile: issue certificates, renew them before expiry, revoke and clear on delete.

The decision is pure (:func:`csi_vso.operator.pkiplan.plan_pki`); this module performs it:

- ISSUE (first time, spec changed, destination drifted, renewal due): one request to
  ``<mount>/issue/<role>`` (VSO's parameters), then one write of the destination Secret holding
  certificate and key together (keys: :mod:`csi_vso.operator.pkidata`), then the status (serial,
  expiration, issue time, MAC). A replaced certificate is not revoked: it expires on its own,
  and revoking every short-lived certificate at each renewal would only grow the CRL.
  Workloads in ``rolloutRestartTargets`` are restarted on a rotation (not on the first issue);
  CSI consumers need no restart, the provider swaps their files in place.
- A request Vault refuses (unknown role, a name the role does not allow, a bad parameter) or a
  ``ttl`` Vault had to cap to the role's ``max_ttl`` is :class:`CertificateRejected`: a condition
  and an event with Vault's words, and no Secret written (a capped certificate is discarded
  unused; its key was never stored, so nobody can present it).
- Deletion (our finalizer holds it): ``revoke: true`` revokes the current certificate,
  ``clear: true`` empties the destination Secret's data, then the finalizer goes; the garbage
  collector deletes a Secret the operator created through its ownerReference.

Nothing here logs or reports key material: messages carry the resource, path, serial number
and Vault's error strings only.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

from csi_vso.operator import destination, pkimetrics
from csi_vso.operator.conditions import synced_conditions
from csi_vso.operator.hmac import macs_equal
from csi_vso.operator.pkidata import TLS_CERT, TLS_KEY, certificate_data, certificate_fields
from csi_vso.operator.pkiplan import CertState, PKIPlan, describe_schedule, plan_pki, renew_at
from csi_vso.operator.pkispec import PKISecretSpec, parse_pki_secret
from csi_vso.operator.refs import RefError
from csi_vso.operator.runtime import Runtime, generation_of, owner_of
from csi_vso.operator.static import destination_drift
from csi_vso.operator.transform.gather import Plan as TransformPlan
from csi_vso.operator.transform.gather import TransformError, plan_for
from csi_vso.operator.transform.render import secret_data
from csi_vso.operator.vault.errors import VaultError, VaultInvalid, VaultNotFound, VaultUnavailable

log = logging.getLogger(__name__)

REISSUE_SOON = 1.0


class CertificateRejected(Exception):
    """Vault will not issue what the spec asks for; the message says why (Vault's words).

    ``retry``: a refused request costs Vault nothing and may succeed once the role is fixed, so
    it is retried with backoff; a capped ``ttl`` is not (every attempt would mint a certificate
    only to discard it): it waits for the spec to change.
    """

    reason = "CertificateRequestRejected"

    def __init__(self, message: str, *, retry: bool = True, reason: str | None = None) -> None:
        super().__init__(message)
        self.retry = retry
        if reason is not None:
            self.reason = reason


class PKIReconciler:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._memory: dict[str, CertState] = {}
        self._lock = threading.Lock()

    def _state(self, uid: str, obj: dict[str, Any]) -> CertState:
        with self._lock:
            state = self._memory.get(uid)
        return state if state is not None else CertState.from_storage(obj.get("status"))

    def _remember(self, uid: str, state: CertState, spec: PKISecretSpec) -> None:
        with self._lock:
            self._memory[uid] = state
        if state.serial_number:
            due = renew_at(state, spec.expiry_offset)
            pkimetrics.EXPIRIES.set(uid, float(state.expiration), due.timestamp())

    def forget(self, uid: str) -> None:
        with self._lock:
            self._memory.pop(uid, None)
        pkimetrics.EXPIRIES.forget(uid)

    def reconcile(self, obj: dict[str, Any]) -> float | None:
        rt = self.rt
        owner = owner_of(obj)
        if (obj.get("metadata") or {}).get("deletionTimestamp"):
            self._finalize(obj)
            return None
        spec = parse_pki_secret(obj)
        rt.ensure_finalizer(obj)
        generation = generation_of(obj)
        state = self._state(owner.uid, obj)
        existing = rt.read_destination(owner.namespace, spec.destination.name)
        drift = self._drift(existing, spec, owner, state)
        if drift is not None and existing is not None:
            # The cache may lag our own last write: confirm with a live read before re-issuing.
            existing = rt.read_destination_live(owner.namespace, spec.destination.name)
            drift = self._drift(existing, spec, owner, state)
        transformation = plan_for(
            obj,
            spec.destination.transformation,
            rt.getter("SecretTransformation"),
            exclude_raw=rt.exclude_raw,
        )
        digest = transformation.digest() if transformation is not None else None
        plan = plan_pki(
            state=state,
            expiry_offset=spec.expiry_offset,
            generation=generation,
            drift=drift,
            now=rt.clock(),
            transformation_digest=digest,
        )
        if plan.cause is not None:
            state = self._issue(obj, spec, state, existing, plan, transformation)
        self._remember(owner.uid, state, spec)
        self._report(obj, spec, state, generation)
        replan = plan_pki(
            state=state,
            expiry_offset=spec.expiry_offset,
            generation=generation,
            drift=None,
            now=rt.clock(),
            transformation_digest=digest,
        )
        return replan.delay if replan.cause is None else REISSUE_SOON

    def _drift(
        self, existing: dict[str, Any] | None, spec: PKISecretSpec, owner: destination.Owner, state: CertState
    ) -> str | None:
        if state.secret_mac is None:
            return None
        return destination_drift(
            existing,
            key=self.rt.hmac_key,
            owner_uid=owner.uid,
            secret_type=spec.secret_type,
            stored_mac=state.secret_mac,
        )

    # -- actions --------------------------------------------------------------------------------

    def _issue(
        self,
        obj: dict[str, Any],
        spec: PKISecretSpec,
        state: CertState,
        existing: dict[str, Any] | None,
        plan: PKIPlan,
        transformation: TransformPlan | None,
    ) -> CertState:
        rt = self.rt
        owner = owner_of(obj)
        assert plan.cause is not None
        destination.check_writable(existing, spec.destination, owner)  # before asking for a key
        resolved = rt.sessions.session_for(owner.namespace, spec.auth_ref)
        try:
            cert = resolved.session.issue_certificate(
                spec.issue_path, spec.request, mount=spec.mount, namespace=spec.vault_namespace
            )
        except VaultInvalid as exc:
            pkimetrics.ISSUE_ERRORS.labels(reason="rejected").inc()
            raise CertificateRejected(str(exc)) from None
        except VaultError as exc:
            pkimetrics.ISSUE_ERRORS.labels(reason=exc.outcome).inc()
            raise
        capped = cert.capped_ttl_warning()
        if capped is not None and "ttl" in spec.request:
            pkimetrics.ISSUE_ERRORS.labels(reason="ttl_capped").inc()
            raise CertificateRejected(
                f"{spec.issue_path}: ttl {spec.request['ttl']} is over the role's max_ttl; Vault said: "
                f"{capped}. The certificate was discarded, no Secret written; lower ttl (or raise "
                "max_ttl, then edit this resource)",
                retry=False,
            )
        now = rt.clock()
        if transformation is None:
            data = certificate_data(cert.data, tls=spec.is_tls)
        else:
            try:
                data = secret_data(transformation, secrets=certificate_fields(cert.data), raw=cert.data)
            except TransformError as exc:
                # Not retried with backoff: every attempt would mint a certificate only to
                # discard it. The next edit of the resource or its SecretTransformation retries.
                message = f"{exc} (certificate discarded, no Secret written)"
                raise CertificateRejected(message, retry=False, reason=exc.reason) from None
        synced = rt.sync_destination(owner=owner, spec=spec, data=data, existing=existing, now=now)
        new_state = CertState(
            serial_number=cert.serial_number,
            expiration=cert.expiration,
            last_rotation=int(now.timestamp()),
            secret_mac=synced.mac,
            last_generation=generation_of(obj),
            transformation_digest=transformation.digest() if transformation is not None else None,
        )
        self._remember(owner.uid, new_state, spec)  # before anything else can fail
        pkimetrics.ISSUED.labels(cause=plan.cause.value).inc()
        rotated = (
            existing is not None
            and destination.is_owned_by(existing, owner.uid)
            and bool(state.serial_number)
        )
        expires = datetime.fromtimestamp(cert.expiration, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        rt.events.record(
            obj,
            "Normal",
            "CertificateRotated" if rotated else "CertificateIssued",
            f"Secret {owner.namespace}/{spec.destination.name}: certificate {cert.serial_number} from "
            f"{spec.issue_path} ({plan.reason}), valid until {expires}",
            dedupe=False,
        )
        log.info(
            "certificate issued",
            extra={
                "resource": f"{owner.namespace}/{owner.name}",
                "serial_number": cert.serial_number,
                "cause": plan.cause.value,
            },
        )
        if rotated and spec.rollout_targets and not macs_equal(synced.previous_mac, synced.mac):
            rt.rollouts.request((t.kind, owner.namespace, t.name) for t in spec.rollout_targets)
        return new_state

    def _finalize(self, obj: dict[str, Any]) -> None:
        rt = self.rt
        owner = owner_of(obj)
        try:
            spec: PKISecretSpec | None = parse_pki_secret(obj)
        except Exception:  # a spec that never parsed issued nothing to revoke or clear
            spec = None
        state = self._state(owner.uid, obj)
        if spec is not None and spec.revoke and state.serial_number:
            self._revoke(obj, spec, state.serial_number)
        if spec is not None and spec.clear:
            self._clear(obj, spec)
        rt.remove_finalizer(obj)
        self.forget(owner.uid)
        rt.events.forget(owner.uid)

    def _revoke(self, obj: dict[str, Any], spec: PKISecretSpec, serial: str) -> None:
        rt = self.rt
        owner = owner_of(obj)
        try:
            resolved = rt.sessions.session_for(owner.namespace, spec.auth_ref)
            resolved.session.revoke_certificate(spec.mount, serial, namespace=spec.vault_namespace)
        except RefError as exc:  # its VaultAuth is gone: nobody can revoke; say so and let go
            pkimetrics.REVOKED.labels(outcome="failed").inc()
            rt.events.record(obj, "Warning", "RevokeFailed", f"certificate {serial} not revoked: {exc}")
            return
        except VaultUnavailable:
            raise  # keep the finalizer: retried with backoff until Vault answers
        except VaultNotFound:
            pkimetrics.REVOKED.labels(outcome="failed").inc()
            return  # the mount or certificate is gone: nothing left to revoke
        except VaultError as exc:  # refused for good (policy, already expired): do not hold deletion
            pkimetrics.REVOKED.labels(outcome="failed").inc()
            rt.events.record(obj, "Warning", "RevokeFailed", f"certificate {serial} not revoked: {exc}")
            return
        pkimetrics.REVOKED.labels(outcome="revoked").inc()
        rt.events.record(obj, "Normal", "CertificateRevoked", f"certificate {serial} revoked", dedupe=False)

    def _clear(self, obj: dict[str, Any], spec: PKISecretSpec) -> None:
        """Empty the destination's data (a TLS Secret keeps its two required keys, empty)."""
        rt = self.rt
        owner = owner_of(obj)
        existing = rt.read_destination_live(owner.namespace, spec.destination.name)
        if existing is None or not destination.is_owned_by(existing, owner.uid):
            return  # gone already, or never ours: nothing of ours to clear
        empty = {TLS_CERT: b"", TLS_KEY: b""} if spec.is_tls else {}
        rt.sync_destination(owner=owner, spec=spec, data=empty, existing=existing, now=rt.clock())

    # -- status ---------------------------------------------------------------------------------

    def _report(self, obj: dict[str, Any], spec: PKISecretSpec, state: CertState, generation: int) -> None:
        owner = owner_of(obj)
        message = (
            f"Secret {owner.namespace}/{spec.destination.name} holds "
            f"{describe_schedule(state, spec.expiry_offset)}"
        )
        conditions = synced_conditions(
            (obj.get("status") or {}).get("conditions") or [], message=message, generation=generation
        )
        status = {
            **state.for_storage(),
            "valid": True,
            "error": None,
            "observedGeneration": generation,
            "conditions": conditions,
        }
        self.rt.patch_status(obj, status)
        self.rt.events.clear(owner.uid)
