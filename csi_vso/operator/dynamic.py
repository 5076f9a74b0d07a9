"""VaultDynamicSecret reconcile: issue, renew, rotate and revoke leased credentials.

The decision is pure (:func:`csi_vso.operator.leases.plan_dynamic`); this module performs it:

- ISSUE: read new credentials (GET, or PUT with ``params``), write the protected Secret, record
  the lease; the previous lease is revoked after ``revocationDuration`` (absent: it is left to
  expire on its TTL, as VSO does). Workloads are restarted when credentials *rotate* (not on
  first issue): ``rolloutRestartTargets`` and, with ``rollout: pods``, every workload whose pod
  template consumes the Secret via env or a secret volume.
- RENEW: ``sys/leases/renew`` with the lease's duration as increment. A truncated, failed or
  non-renewable renewal means new credentials now, while the old ones still work
  (:func:`csi_vso.operator.vault.leases.judge_renewal`). Vault being down is not a reason to
  rotate: the error is raised, the controller backs off, the lease is retried before it ends.
- After a restart, the first reconcile of a lease read back from status looks it up in Vault
  once: a lease Vault no longer knows is replaced; a live one is kept and renewed on schedule.
- A changed transformation (a referenced SecretTransformation or the CR's annotations/labels
  edited): the Secret is rendered again from the ``_raw`` copy of the current credentials it
  holds, without a new lease; with ``excludeRaw`` there is no copy, so new credentials are
  issued, as for a spec change.
- Deletion (our finalizer holds it): with ``revoke: true`` the current lease and any pending
  old ones are revoked, then the finalizer is removed; the garbage collector deletes the
  destination Secret through its ownerReference.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from csi_vso.operator import api, destination, metrics
from csi_vso.operator.conditions import LEASE_RENEWAL, set_condition, synced_conditions
from csi_vso.operator.hmac import macs_equal
from csi_vso.operator.leases import Action, DynamicPlan, LeaseState, due_revocations, plan_dynamic
from csi_vso.operator.refs import RefError
from csi_vso.operator.runtime import Runtime, generation_of, owner_of
from csi_vso.operator.sessions import Resolved
from csi_vso.operator.static import destination_drift
from csi_vso.operator.transform import gather
from csi_vso.operator.transform.render import RAW_KEY, secret_data
from csi_vso.operator.vault import leases as vault_leases
from csi_vso.operator.vault.errors import VaultError, VaultNotFound, VaultUnavailable
from csi_vso.operator.vault.model import Lease

log = logging.getLogger(__name__)


class DynamicReconciler:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._memory: dict[str, LeaseState] = {}
        self._verified: set[str] = set()  # leases confirmed with Vault by this process
        # token accessor -> (when to replace its leases' credentials, why); see _issuer_deadline
        self._issuers: dict[str, tuple[datetime | None, str]] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        """Nothing runs in the background: renewals are scheduled through the work queue."""

    def stop(self) -> None:
        """See :meth:`start`."""

    def _state(self, uid: str, obj: dict[str, Any]) -> LeaseState:
        with self._lock:
            state = self._memory.get(uid)
        return state if state is not None else LeaseState.from_storage(obj.get("status"))

    def _remember(self, uid: str, state: LeaseState) -> None:
        with self._lock:
            self._memory[uid] = state

    def reconcile(self, obj: dict[str, Any]) -> float | None:
        rt = self.rt
        owner = owner_of(obj)
        metadata = obj.get("metadata") or {}
        if metadata.get("deletionTimestamp"):
            self._finalize(obj)
            return None
        spec = api.parse_dynamic_secret(obj)
        transform_plan = gather.plan_for(
            obj,
            spec.destination.transformation,
            rt.getter("SecretTransformation"),
            exclude_raw=rt.exclude_raw,
        )
        digest = transform_plan.digest() if transform_plan is not None else ""
        rt.ensure_finalizer(obj)
        generation = generation_of(obj)
        state = self._state(owner.uid, obj)
        now = rt.clock()

        existing = rt.read_destination(owner.namespace, spec.destination.name)
        drift = None
        if state.secret_mac is not None:
            drift = destination_drift(
                existing,
                key=rt.hmac_key,
                owner_uid=owner.uid,
                secret_type=spec.secret_type,
                stored_mac=state.secret_mac,
            )
            if drift is not None and existing is not None:
                existing = rt.read_destination_live(owner.namespace, spec.destination.name)
                drift = destination_drift(
                    existing,
                    key=rt.hmac_key,
                    owner_uid=owner.uid,
                    secret_type=spec.secret_type,
                    stored_mac=state.secret_mac,
                )
        plan = plan_dynamic(spec=spec, state=state, generation=generation, drift=drift, now=now)
        if plan.action is not Action.ISSUE and state.transformation_digest != digest:
            state = self._rerender(obj, spec, state, existing, transform_plan, digest, now)
            if state.transformation_digest != digest:
                plan = _issue("the transformation changed and the Secret keeps no _raw copy to render from")
        resolved: Resolved | None = None

        def session() -> Resolved:
            nonlocal resolved
            if resolved is None:
                resolved = rt.sessions.session_for(owner.namespace, spec.auth_ref)
            return resolved

        vault_ns = spec.vault_namespace
        if plan.action is not Action.ISSUE and state.lease_id and state.lease_id not in self._verified:
            # First look at this lease in this process (a restart): does Vault still know it?
            try:
                info = session().session.lookup_lease(state.lease_id, namespace=vault_ns)
                self._verified.add(state.lease_id)
                if info.ttl <= 0:
                    plan = _issue("Vault reports the lease expired")
            except VaultNotFound:
                plan = _issue("Vault no longer knows the lease")
            except VaultUnavailable:
                raise
            except VaultError:
                # Not allowed to look leases up: the renewal will tell whether the lease lives.
                self._verified.add(state.lease_id)

        issuer_deadline: datetime | None = None
        if plan.action is not Action.ISSUE and state.lease_id and state.token_accessor:
            issuer_deadline, why = self._issuer_deadline(state.token_accessor, session, now)
            if issuer_deadline is not None and now >= issuer_deadline:
                plan = _issue(why)
                issuer_deadline = None

        if plan.action is Action.RENEW:
            requested = state.duration
            try:
                granted = session().session.renew_lease(state.lease_id, requested, namespace=vault_ns)
            except VaultUnavailable:
                metrics.LEASE_RENEWALS.labels(outcome="unavailable").inc()
                raise
            except VaultError:
                granted = None
            verdict = vault_leases.judge_renewal(
                lease=state.as_lease(), requested_increment=requested, granted=granted
            )
            if verdict.verdict is vault_leases.Verdict.KEEP:
                assert granted is not None
                metrics.LEASE_RENEWALS.labels(outcome="renewed").inc()
                state = state.renewed(granted, now)
            else:
                metrics.LEASE_RENEWALS.labels(outcome="replaced").inc()
                plan = _issue(verdict.reason)

        if plan.action is Action.ISSUE:
            state = self._issue(obj, spec, state, existing, session(), now, plan.reason, transform_plan)

        state = self._revoke_due(state, now, session if state.pending else None, vault_ns)
        self._remember(owner.uid, state)
        self._report(obj, spec, state, generation)
        later = rt.clock()
        replan = plan_dynamic(spec=spec, state=state, generation=generation, drift=None, now=later)
        if replan.action is not Action.WAIT:
            return 0.5
        if issuer_deadline is not None:
            until = max(0.0, (issuer_deadline - later).total_seconds())
            return until if replan.delay is None else min(replan.delay, until)
        return replan.delay

    def _issuer_deadline(
        self, accessor: str, session: Callable[[], Resolved], now: datetime
    ) -> tuple[datetime | None, str]:
        """When to replace credentials whose issuing token nobody renews any more (None: no need).

        Our own current token is renewed by the session cache: its leases live. Any other token
        (a previous process's, or ours before a re-login) is looked up once: its leases end when
        it expires, so the credentials are replaced halfway through its remaining life.
        """
        if accessor == session().session.token_accessor:
            return None, ""
        with self._lock:
            if accessor in self._issuers:
                return self._issuers[accessor]
        answer: tuple[datetime | None, str]
        try:
            ttl = session().session.lookup_token_ttl(accessor)
            answer = (
                (None, "")
                if ttl <= 0
                else (
                    now + timedelta(seconds=ttl / 2),
                    "the Vault token that issued the lease is no longer renewed",
                )
            )
        except VaultNotFound:
            answer = (now, "the Vault token that issued the lease is gone (and its lease with it)")
        except VaultUnavailable:
            raise
        except VaultError as exc:  # not allowed to look tokens up: rely on the renewal to notice
            log.warning(
                "cannot look up the token that issued a lease; renewals will tell", extra={"error": str(exc)}
            )
            answer = (None, "")
        with self._lock:
            self._issuers[accessor] = answer
        return answer

    # -- actions --------------------------------------------------------------------------------

    def _issue(
        self,
        obj: dict[str, Any],
        spec: api.DynamicSecretSpec,
        state: LeaseState,
        existing: dict[str, Any] | None,
        resolved: Resolved,
        now: datetime,
        reason: str,
        transform_plan: gather.Plan | None = None,
    ) -> LeaseState:
        rt = self.rt
        owner = owner_of(obj)
        destination.check_writable(existing, spec.destination, owner)  # before creating a lease
        params = dict(spec.params) if spec.params else None
        secret = resolved.session.read_dynamic(
            spec.mount, spec.path, method=spec.method, params=params, namespace=spec.vault_namespace
        )
        lease = secret.lease
        vault_data = secret.data
        if spec.allow_static_creds and not lease.id:
            # Static credentials: the countdown to Vault's rotation becomes the schedule, not data
            # (it changes at every read and would make every read a "rotation").
            lease = Lease(id="", duration=_static_ttl(vault_data), renewable=False)
            vault_data = _without_ttl(vault_data)
        data = secret_data(transform_plan, secrets=vault_data, raw=_without_ttl(secret.data))
        synced = rt.sync_destination(owner=owner, spec=spec, data=data, existing=existing, now=now)
        # Not written: static credentials read before Vault rotated them, nothing new.
        changed, mac, previous_mac = synced.wrote, synced.mac, synced.previous_mac
        rotated = existing is not None and destination.is_owned_by(existing, owner.uid)
        new_state = state.issued(
            lease,
            "",
            mac,
            generation_of(obj),
            now,
            spec.revocation_duration,
            token_accessor=resolved.session.token_accessor if lease.id else "",
            transformation_digest=transform_plan.digest() if transform_plan is not None else "",
        )
        if lease.id:
            self._verified.add(lease.id)
        self._remember(owner.uid, new_state)  # before anything else can fail: the lease is ours now
        if not changed:
            return new_state
        verb = "rotated" if rotated else "issued"
        rt.events.record(
            obj,
            "Normal",
            "CredentialsRotated" if rotated else "CredentialsIssued",
            f"Secret {owner.namespace}/{spec.destination.name}: credentials {verb} from "
            f"{spec.mount}/{spec.path} ({reason}); lease TTL {lease.duration}s",
            dedupe=False,
        )
        if rotated and not macs_equal(previous_mac, mac):
            targets = [(t.kind, owner.namespace, t.name) for t in spec.rollout_targets]
            if spec.rollout_pods:
                targets += rt.rollouts.consumers(owner.namespace, spec.destination.name)
            if targets:
                rt.rollouts.request(targets)
        return new_state

    def _rerender(
        self,
        obj: dict[str, Any],
        spec: api.DynamicSecretSpec,
        state: LeaseState,
        existing: dict[str, Any] | None,
        transform_plan: gather.Plan | None,
        digest: str,
        now: datetime,
    ) -> LeaseState:
        """Render the current credentials again from the Secret's ``_raw`` copy (no new lease).

        Returns ``state`` unchanged when there is no usable copy (the caller issues instead).
        """
        owner = owner_of(obj)
        if existing is None or not destination.is_owned_by(existing, owner.uid):
            return state
        raw_bytes = destination.decode_data(existing).get(RAW_KEY)
        if raw_bytes is None:
            return state
        try:
            raw = json.loads(raw_bytes)
        except ValueError:
            return state
        if not isinstance(raw, dict):
            return state
        vault_data = _without_ttl(raw) if spec.allow_static_creds and not state.lease_id else raw
        data = secret_data(transform_plan, secrets=vault_data, raw=raw)
        synced = self.rt.sync_destination(owner=owner, spec=spec, data=data, existing=existing, now=now)
        if synced.wrote:
            self.rt.events.record(
                obj,
                "Normal",
                "SecretRendered",
                f"Secret {owner.namespace}/{spec.destination.name} rendered again: "
                "the transformation changed",
                dedupe=False,
            )
        new_state = replace(state, secret_mac=synced.mac, transformation_digest=digest)
        self._remember(owner.uid, new_state)
        return new_state

    def _revoke_due(self, state: LeaseState, now: datetime, session: Any, vault_ns: str | None) -> LeaseState:
        due = due_revocations(state, now)
        if not due:
            return state
        done: set[str] = set()
        for lease_id in due:
            try:
                session().session.revoke_lease(lease_id, namespace=vault_ns)
                metrics.LEASE_REVOCATIONS.labels(cause="rotation").inc()
                done.add(lease_id)
            except VaultNotFound:
                done.add(lease_id)  # already gone
            except VaultUnavailable:
                break  # keep it pending; the next reconcile retries
            except VaultError as exc:
                # Revocation refused (policy): it cannot succeed by retrying; the lease expires
                # on its own TTL. Said once, in the log, by id only.
                log.warning("could not revoke an old lease; it will expire", extra={"error": str(exc)})
                done.add(lease_id)
        return state.without_pending(done)

    def _finalize(self, obj: dict[str, Any]) -> None:
        rt = self.rt
        owner = owner_of(obj)
        try:
            spec: api.DynamicSecretSpec | None = api.parse_dynamic_secret(obj)
        except api.SpecError:
            spec = None
        state = self._state(owner.uid, obj)
        if spec is not None and spec.revoke:
            lease_ids = [p.lease_id for p in state.pending]
            if state.lease_id:
                lease_ids.append(state.lease_id)
            resolved: Resolved | None = None
            if lease_ids:
                try:
                    resolved = rt.sessions.session_for(owner.namespace, spec.auth_ref)
                except RefError as exc:  # its VaultAuth is gone: nobody can revoke; say so, let go
                    rt.events.record(obj, "Warning", "RevokeFailed", f"leases not revoked: {exc}")
            if resolved is not None:
                for lease_id in lease_ids:
                    try:
                        resolved.session.revoke_lease(lease_id, namespace=spec.vault_namespace)
                        metrics.LEASE_REVOCATIONS.labels(cause="deleted").inc()
                    except VaultNotFound:
                        pass
                    except VaultUnavailable:
                        raise  # keep the finalizer: retried with backoff until Vault answers
                    except VaultError as exc:
                        # Refused for good (policy): do not hold the deletion hostage forever.
                        rt.events.record(obj, "Warning", "RevokeFailed", f"lease not revoked: {exc}")
        # The destination Secret goes with the CR through its ownerReference (garbage collector).
        rt.remove_finalizer(obj)
        with self._lock:
            self._memory.pop(owner.uid, None)
        rt.events.forget(owner.uid)

    # -- status ---------------------------------------------------------------------------------

    def _report(
        self, obj: dict[str, Any], spec: api.DynamicSecretSpec, state: LeaseState, generation: int
    ) -> None:
        owner = owner_of(obj)
        where = f"{owner.namespace}/{spec.destination.name}"
        message = f"Secret {where} holds credentials from {spec.mount}/{spec.path}"
        conditions = synced_conditions(
            (obj.get("status") or {}).get("conditions") or [], message=message, generation=generation
        )
        if state.lease_id:
            # Derived from the state only, so an idle reconcile rewrites nothing.
            expires = state.expires_at()
            lease_message = f"lease {state.duration}s, renewable: {str(state.renewable).lower()}"
            if expires is not None:
                lease_message += f", valid until {expires.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"
            conditions = set_condition(
                conditions,
                type=LEASE_RENEWAL,
                status="True",
                reason="LeaseValid",
                message=lease_message,
                generation=generation,
            )
        status = {**state.for_storage(), "observedGeneration": generation, "conditions": conditions}
        self.rt.patch_status(obj, status)
        self.rt.events.clear(owner.uid)


def _static_ttl(data: Any) -> int:
    """Seconds until Vault rotates static credentials (their ``ttl``; 0: unknown).

    Vault's rotation queue runs every few seconds, so a read right at the rotation time may
    still answer ``ttl: 0`` with the old password: look again a second later, until it rotated.
    """
    ttl = data.get("ttl") if isinstance(data, Mapping) else None
    if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl < 0:
        return 0
    return max(ttl, 1)


def _without_ttl(data: Mapping[str, Any]) -> dict[str, Any]:
    """Static credentials' data without the countdown ``ttl`` (it is schedule, not data)."""
    return {k: v for k, v in data.items() if k != "ttl"}


def _issue(reason: str) -> DynamicPlan:
    return DynamicPlan(Action.ISSUE, reason)
