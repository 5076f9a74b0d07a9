"""VaultStaticSecret / VaultSecret reconcile: decide (pure), then read Vault and write (edges).

The decision that keeps Vault and API load at O(secrets) per refresh interval
(:func:`plan_static`): a reconcile triggered by anything but a spec change or a due refresh
(our own status patch echoing back, a resync, an unrelated Secret event) reads *nothing* from
Vault when the destination Secret still matches ``status.secretMAC``. Vault is read when

- the spec changed (``metadata.generation`` differs from ``status.lastGeneration``),
- the refresh is due (80 % of ``refreshAfter`` since the last sync: kept in memory, and read
  back from ``status.lastSyncTime`` after a restart), or
- the destination drifted: missing, data edited (its recomputed MAC differs), marks stripped, or
- the transformation changed (a referenced SecretTransformation or the CR's annotations/labels
  were edited): its digest differs from ``status.transformationDigest``, so the data must be
  rendered again although neither the spec nor Vault changed.

After a read, the Secret is written only when the rendered data or our metadata differ (the
MAC comparison in :func:`csi_vso.operator.destination.in_sync`); otherwise the skip is counted.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from csi_vso.operator import api, destination
from csi_vso.operator.conditions import synced_conditions
from csi_vso.operator.hmac import compute_mac, macs_equal
from csi_vso.operator.runtime import Runtime, generation_of, owner_of, rfc3339_micro
from csi_vso.operator.transform import gather
from csi_vso.operator.transform.render import secret_data

REFRESH_LOW = 0.8
REFRESH_HIGH = 0.9


def parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass(frozen=True)
class SyncState:
    """What the operator stored in status last time (``from_storage`` of the CR's status)."""

    last_generation: int | None
    secret_mac: str | None
    last_sync: datetime | None
    transformation_digest: str = ""  # '' when the secret has no transformation

    @classmethod
    def from_storage(cls, status: Mapping[str, Any] | None) -> SyncState:
        status = status or {}
        generation = status.get("lastGeneration")
        mac = status.get("secretMAC")
        digest = status.get("transformationDigest")
        return cls(
            last_generation=generation if isinstance(generation, int) else None,
            secret_mac=mac if isinstance(mac, str) and mac else None,
            last_sync=parse_time(status.get("lastSyncTime")),
            transformation_digest=digest if isinstance(digest, str) else "",
        )


@dataclass(frozen=True)
class Plan:
    """``read_reason`` None: nothing to read; requeue after ``delay`` seconds."""

    read_reason: str | None
    delay: float


def refresh_delay(refresh_after: float, rng: random.Random) -> float:
    """Seconds until the next refresh: 80-90 % of ``refreshAfter`` (jitter spreads the load)."""
    return refresh_after * rng.uniform(REFRESH_LOW, REFRESH_HIGH)


def destination_drift(
    existing: Mapping[str, Any] | None,
    *,
    key: bytes,
    owner_uid: str,
    secret_type: str,
    stored_mac: str | None,
) -> str | None:
    """Why the destination no longer matches what we wrote (None: it matches)."""
    if existing is None:
        return "the destination Secret is missing"
    if not destination.is_owned_by(existing, owner_uid):
        return "the destination Secret is not marked as ours"
    current = compute_mac(key, owner_uid, destination.decode_data(existing), secret_type)
    if not macs_equal(current, stored_mac):
        return "the destination Secret's data changed"
    return None


def plan_static(
    *,
    spec: api.StaticSecretSpec,
    generation: int,
    state: SyncState,
    drift: str | None,
    now: datetime,
    rng: random.Random,
    transformation_digest: str = "",
) -> Plan:
    """Decide whether this reconcile reads Vault, and when to look again."""
    if state.last_generation != generation:
        return Plan("the spec changed", refresh_delay(spec.refresh_after, rng))
    if state.transformation_digest != transformation_digest:
        return Plan("the transformation changed", refresh_delay(spec.refresh_after, rng))
    if state.last_sync is None:
        return Plan("never synced", refresh_delay(spec.refresh_after, rng))
    if drift is not None:
        return Plan(drift, refresh_delay(spec.refresh_after, rng))
    due = state.last_sync + timedelta(seconds=spec.refresh_after * REFRESH_LOW)
    if now >= due:
        return Plan("the refresh is due", refresh_delay(spec.refresh_after, rng))
    # Not due: come back at a jittered point in the window, relative to the last sync.
    target = state.last_sync + timedelta(seconds=refresh_delay(spec.refresh_after, rng))
    return Plan(None, max(0.0, (target - now).total_seconds()))


# --------------------------------------------------------------------------- the edges


@dataclass
class KVVersionCache:
    """KV version per (auth, Vault namespace, mount), so detection costs one read per mount, not per CR."""

    ttl: float = 600.0
    entries: dict[tuple[str, str, str], tuple[int, float]] = field(default_factory=dict)

    def get(self, key: tuple[str, str, str], now: float) -> int | None:
        entry = self.entries.get(key)
        return entry[0] if entry is not None and entry[1] > now else None

    def put(self, key: tuple[str, str, str], version: int, now: float) -> None:
        self.entries[key] = (version, now + self.ttl)


def reconcile_static(
    rt: Runtime, obj: dict[str, Any], memory: dict[str, SyncState], kv_versions: KVVersionCache
) -> float | None:
    """One reconcile of a VaultStaticSecret/VaultSecret; returns the requeue delay (None: none)."""
    metadata = obj.get("metadata") or {}
    owner = owner_of(obj)
    if metadata.get("deletionTimestamp"):
        _finalize(rt, obj, owner)
        memory.pop(owner.uid, None)
        return None
    # No finalizer for static secrets: nothing to undo in Vault, and the destination Secret's
    # ownerReference lets the garbage collector delete it with the custom resource.
    spec = api.parse_static_secret(obj)
    # Resolved before anything is read or written: a bad reference or template is reported with
    # the destination left as it was.
    transform_plan = gather.plan_for(
        obj, spec.destination.transformation, rt.getter("SecretTransformation"), exclude_raw=rt.exclude_raw
    )
    digest = transform_plan.digest() if transform_plan is not None else ""
    generation = generation_of(obj)
    state = memory.get(owner.uid) or SyncState.from_storage(obj.get("status"))
    existing = rt.read_destination(owner.namespace, spec.destination.name)
    drift = (
        destination_drift(
            existing,
            key=rt.hmac_key,
            owner_uid=owner.uid,
            secret_type=spec.secret_type,
            stored_mac=state.secret_mac,
        )
        if state.secret_mac
        else "no data synced yet"
    )
    if drift is not None and state.last_generation == generation and existing is not None:
        # The cache may lag our own last write; confirm drift with a live read before acting.
        existing = rt.read_destination_live(owner.namespace, spec.destination.name)
        drift = destination_drift(
            existing,
            key=rt.hmac_key,
            owner_uid=owner.uid,
            secret_type=spec.secret_type,
            stored_mac=state.secret_mac,
        )
    now = rt.clock()
    plan = plan_static(
        spec=spec,
        generation=generation,
        state=state,
        drift=drift,
        now=now,
        rng=rt.rng,
        transformation_digest=digest,
    )
    if plan.read_reason is None:
        _report_synced(rt, obj, spec, state, generation, wrote=False)
        return plan.delay

    resolved = rt.sessions.session_for(owner.namespace, spec.auth_ref)
    vault_ns = spec.vault_namespace if spec.vault_namespace is not None else resolved.vault_namespace
    kv_version = spec.kv_version
    if kv_version is None:
        cache_key = (resolved.auth_name, vault_ns or "", spec.mount)
        kv_version = kv_versions.get(cache_key, time.monotonic())
        if kv_version is None:
            kv_version = resolved.session.detect_kv_version(spec.mount, namespace=vault_ns)
            kv_versions.put(cache_key, kv_version, time.monotonic())
    secret = resolved.session.read_kv(
        spec.mount, spec.path, kv_version=kv_version, version=spec.version, namespace=vault_ns
    )
    data = secret_data(transform_plan, secrets=secret.data, raw=secret.raw, metadata=secret.metadata)
    destination.check_writable(existing, spec.destination, owner)
    synced = rt.sync_destination(owner=owner, spec=spec, data=data, existing=existing, now=now)
    wrote = synced.wrote
    data_changed = (
        existing is not None
        and destination.is_owned_by(existing, owner.uid)
        and not macs_equal(synced.previous_mac, synced.mac)
    )
    new_state = SyncState(
        last_generation=generation, secret_mac=synced.mac, last_sync=now, transformation_digest=digest
    )
    memory[owner.uid] = new_state
    if wrote:
        what = "updated" if data_changed else "created" if existing is None else "written"
        rt.events.record(
            obj,
            "Normal",
            "SecretSynced",
            f"Secret {owner.namespace}/{spec.destination.name} {what} from {spec.mount}/{spec.path}",
            dedupe=False,
        )
    if data_changed and spec.rollout_targets:
        rt.rollouts.request((t.kind, owner.namespace, t.name) for t in spec.rollout_targets)
    _report_synced(rt, obj, spec, new_state, generation, wrote=wrote)
    return plan.delay


def _report_synced(
    rt: Runtime,
    obj: dict[str, Any],
    spec: api.StaticSecretSpec,
    state: SyncState,
    generation: int,
    *,
    wrote: bool,
) -> None:
    owner = owner_of(obj)
    message = f"Secret {owner.namespace}/{spec.destination.name} is in sync with {spec.mount}/{spec.path}"
    conditions = synced_conditions(
        (obj.get("status") or {}).get("conditions") or [], message=message, generation=generation
    )
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "lastGeneration": state.last_generation,
        "conditions": conditions,
        "secretMAC": state.secret_mac if spec.hmac_secret_data else None,
        "transformationDigest": state.transformation_digest or None,
    }
    if wrote and state.last_sync is not None:
        status["lastWriteTime"] = rfc3339_micro(state.last_sync)
    # A refresh that found nothing changed writes nothing, not even its time: the sync time is
    # kept in memory, so an idle cycle costs no API write at all. After a restart the stored
    # (older) time makes the first refresh due at once: one Vault read per CR, no write.
    current = obj.get("status") or {}
    if wrote or not current.get("lastSyncTime") or any(current.get(k) != v for k, v in status.items()):
        if state.last_sync is not None:
            status["lastSyncTime"] = rfc3339_micro(state.last_sync)
        rt.patch_status(obj, status)
    rt.events.clear(owner.uid)


def _finalize(rt: Runtime, obj: dict[str, Any], owner: destination.Owner) -> None:
    """Deleting the CR: the garbage collector removes the Secret; drop a finalizer an older version set."""
    rt.remove_finalizer(obj)
    rt.events.forget(owner.uid)
