"""The operator's pure decisions, as tables: refresh and lease plans, destination ownership and
sync checks, MACs, conditions, reference lookup, rendering, failure classification, the queue."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from csi_vso import protected
from csi_vso.operator import api, destination, leases, refs, static
from csi_vso.operator.conditions import READY, set_condition
from csi_vso.operator.controller import classify
from csi_vso.operator.hmac import compute_mac
from csi_vso.operator.render import RenderError, render
from csi_vso.operator.vault.errors import VaultDenied, VaultUnavailable
from csi_vso.operator.vault.model import Lease
from csi_vso.operator.workqueue import Backoff, WorkQueue

T0 = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
KEY = b"k" * 32
OWNER = destination.Owner(api.API_VERSION, "VaultStaticSecret", "s", "ns", "uid-1")


def static_spec(**spec: Any) -> api.StaticSecretSpec:
    return api.parse_static_secret(
        {"spec": {"mount": "kv", "path": "p", "destination": {"name": "d"}, **spec}}
    )


def dynamic_spec(**spec: Any) -> api.DynamicSecretSpec:
    return api.parse_dynamic_secret(
        {"spec": {"mount": "db", "path": "creds/r", "destination": {"name": "d"}, **spec}}
    )


# ------------------------------------------------------------------------- static plan


@pytest.mark.parametrize(
    ("state", "drift", "now", "reason"),
    [
        (static.SyncState(None, None, None), None, T0, "the spec changed"),
        (static.SyncState(2, "m", T0), None, T0, "the spec changed"),
        (static.SyncState(1, "m", None), None, T0, "never synced"),
        (
            static.SyncState(1, "m", T0),
            "the destination Secret is missing",
            T0,
            "the destination Secret is missing",
        ),
        (static.SyncState(1, "m", T0), None, T0 + timedelta(seconds=79), None),
        (static.SyncState(1, "m", T0), None, T0 + timedelta(seconds=80), "the refresh is due"),
    ],
)
def test_plan_static(state: static.SyncState, drift: str | None, now: datetime, reason: str | None) -> None:
    plan = static.plan_static(
        spec=static_spec(refreshAfter="100s"),
        generation=1,
        state=state,
        drift=drift,
        now=now,
        rng=random.Random(1),
    )
    assert plan.read_reason == reason


def test_plan_static_requeues_inside_the_80_to_90_percent_window() -> None:
    state = static.SyncState(1, "m", T0)
    for seed in range(50):
        plan = static.plan_static(
            spec=static_spec(refreshAfter="100s"),
            generation=1,
            state=state,
            drift=None,
            now=T0,
            rng=random.Random(seed),
        )
        assert plan.read_reason is None and 80 <= plan.delay <= 90


def secret(data: dict[str, bytes], owner_uid: str | None = "uid-1", type: str = "Opaque") -> dict[str, Any]:
    built = destination.build(
        owner=OWNER,
        destination=api.Destination("d"),
        secret_type=type,
        data=data,
        mac=compute_mac(KEY, "uid-1", data, type),
        access=api.AccessPolicy(),
        written_at=T0,
    )
    if owner_uid is None:
        built["metadata"] = {"name": "d", "namespace": "ns"}
    return built


@pytest.mark.parametrize(
    ("existing", "drift"),
    [
        (None, "the destination Secret is missing"),
        (secret({"a": b"1"}, owner_uid=None), "the destination Secret is not marked as ours"),
        (secret({"a": b"2"}), "the destination Secret's data changed"),
        (secret({"a": b"1"}), None),
    ],
)
def test_destination_drift(existing: dict[str, Any] | None, drift: str | None) -> None:
    stored = compute_mac(KEY, "uid-1", {"a": b"1"}, "Opaque")
    assert (
        static.destination_drift(
            existing, key=KEY, owner_uid="uid-1", secret_type="Opaque", stored_mac=stored
        )
        == drift
    )


# ------------------------------------------------------------------------- destination


@pytest.mark.parametrize(
    ("existing", "dest", "error"),
    [
        (None, api.Destination("d", create=True), None),
        (
            None,
            api.Destination("d", create=False),
            "Secret ns/d does not exist and destination.create is false",
        ),
        (
            secret({}, owner_uid=None),
            api.Destination("d", create=True),
            "Secret ns/d exists and is not managed by this VaultStaticSecret; "
            "set destination.overwrite: true to take it over",
        ),
        (secret({}, owner_uid=None), api.Destination("d", overwrite=True), None),
        (secret({}), api.Destination("d"), None),
    ],
)
def test_check_writable(existing: dict[str, Any] | None, dest: api.Destination, error: str | None) -> None:
    if error is None:
        destination.check_writable(existing, dest, OWNER)
    else:
        with pytest.raises(destination.DestinationError) as caught:
            destination.check_writable(existing, dest, OWNER)
        assert str(caught.value) == error


def test_build_marks_and_policy() -> None:
    built = destination.build(
        owner=OWNER,
        destination=api.Destination(
            "d",
            labels={protected.PROTECTED_LABEL: "false", "x": "y"},
            annotations={protected.CONTENT_MAC_ANNOTATION: "forged"},
        ),
        secret_type="kubernetes.io/basic-auth",
        data={"username": b"u"},
        mac="MAC",
        access=api.AccessPolicy(("b",), ()),
        written_at=T0,
    )
    meta = built["metadata"]
    assert meta["labels"] == {"x": "y", **protected.protected_labels("uid-1")}
    assert meta["annotations"] == {
        protected.CONTENT_MAC_ANNOTATION: "MAC",
        protected.ALLOWED_NAMESPACES_ANNOTATION: '["b"]',
        protected.WRITTEN_AT_ANNOTATION: "2026-11-28T12:00:00.000000Z",
    }
    assert built["type"] == "kubernetes.io/basic-auth" and built["data"] == {"username": "dQ=="}
    assert meta["ownerReferences"][0]["uid"] == "uid-1"


def test_in_sync_ignores_written_at_and_foreign_metadata_but_not_data_or_marks() -> None:
    data = {"a": b"1"}
    desired = secret(data)
    mac = compute_mac(KEY, "uid-1", data, "Opaque")
    later = dict(
        desired,
        metadata={
            **desired["metadata"],
            "annotations": {
                **desired["metadata"]["annotations"],
                protected.WRITTEN_AT_ANNOTATION: "2030-01-01T00:00:00.000000Z",
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
            },
        },
    )
    assert destination.in_sync(later, desired, mac)
    assert not destination.in_sync(later, desired, compute_mac(KEY, "uid-1", {"a": b"2"}, "Opaque"))
    stripped = dict(desired, metadata={**desired["metadata"], "labels": {}})
    assert not destination.in_sync(stripped, desired, mac)
    assert not destination.in_sync(None, desired, mac)
    assert destination.needs_recreate(dict(desired, type="kubernetes.io/tls"), desired)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("uid-1", {"a": b"1"}, "Opaque"), ("uid-2", {"a": b"1"}, "Opaque")),  # same data, other owner
        (("uid-1", {"ab": b"c"}, "Opaque"), ("uid-1", {"a": b"bc"}, "Opaque")),  # framing
        (("uid-1", {"a": b"1"}, "Opaque"), ("uid-1", {"a": b"1"}, "kubernetes.io/basic-auth")),
    ],
)
def test_mac_separates(a: tuple[str, dict[str, bytes], str], b: tuple[str, dict[str, bytes], str]) -> None:
    assert compute_mac(KEY, *a) != compute_mac(KEY, *b)
    assert compute_mac(KEY, *a) == compute_mac(KEY, *a)
    assert compute_mac(b"other-key" * 4, *a) != compute_mac(KEY, *a)


# ------------------------------------------------------------------------- leases


def lease_state(**changes: Any) -> leases.LeaseState:
    base = leases.LeaseState(
        lease_id="db/creds/r/abc",
        duration=100,
        renewable=True,
        issued_at=T0,
        renewed_at=T0,
        secret_mac="m",
        last_generation=1,
        last_sync=T0,
        token_accessor="accessor-1",
    )
    return leases.LeaseState(**{**base.__dict__, **changes})


@pytest.mark.parametrize(
    ("state", "drift", "now", "action", "reason"),
    [
        (leases.LeaseState(), None, T0, leases.Action.ISSUE, "no credentials issued yet"),
        (lease_state(last_generation=0), None, T0, leases.Action.ISSUE, "the spec changed"),
        (
            lease_state(),
            "the destination Secret is missing",
            T0,
            leases.Action.ISSUE,
            "the destination Secret is missing",
        ),
        (lease_state(), None, T0 + timedelta(seconds=100), leases.Action.ISSUE, "the lease expired"),
        (lease_state(), None, T0 + timedelta(seconds=10), leases.Action.WAIT, "lease valid"),
        (lease_state(), None, T0 + timedelta(seconds=78), leases.Action.RENEW, "the renewal is due"),
        (
            lease_state(renewable=False),
            None,
            T0 + timedelta(seconds=78),
            leases.Action.ISSUE,
            "the lease is not renewable",
        ),
        (
            lease_state(lease_id="", duration=0),
            None,
            T0 + timedelta(seconds=10),
            leases.Action.WAIT,
            "no lease to renew",
        ),
    ],
)
def test_plan_dynamic(
    state: leases.LeaseState, drift: str | None, now: datetime, action: leases.Action, reason: str
) -> None:
    plan = leases.plan_dynamic(spec=dynamic_spec(), state=state, generation=1, drift=drift, now=now)
    assert (plan.action, plan.reason) == (action, reason)


def test_renewal_time_is_stable_per_lease_and_within_the_jitter_window() -> None:
    state = lease_state()
    due = leases.renew_at(state, 67)
    assert due == leases.renew_at(state, 67)
    assert due is not None and T0 + timedelta(seconds=67) <= due <= T0 + timedelta(seconds=77)


def test_static_credentials_refresh_on_refresh_after() -> None:
    state = lease_state(lease_id="", duration=0)
    spec = dynamic_spec(refreshAfter="100s")
    assert (
        leases.plan_dynamic(
            spec=spec, state=state, generation=1, drift=None, now=T0 + timedelta(seconds=85)
        ).action
        is leases.Action.ISSUE
    )
    wait = leases.plan_dynamic(
        spec=spec, state=state, generation=1, drift=None, now=T0 + timedelta(seconds=10)
    )
    assert wait.action is leases.Action.WAIT and wait.delay == pytest.approx(70)


def test_allow_static_creds_fetches_again_after_vaults_rotation() -> None:
    state = lease_state(lease_id="", duration=30, renewable=False)  # ttl 30 s when read at T0
    spec = dynamic_spec(allowStaticCreds=True)
    wait = leases.plan_dynamic(
        spec=spec, state=state, generation=1, drift=None, now=T0 + timedelta(seconds=10)
    )
    assert (wait.action, wait.delay) == (leases.Action.WAIT, pytest.approx(21))  # ttl + 1 s slack
    due = leases.plan_dynamic(
        spec=spec, state=state, generation=1, drift=None, now=T0 + timedelta(seconds=31)
    )
    assert (due.action, due.reason) == (leases.Action.ISSUE, "Vault rotated the static credentials")
    # Without the flag the same state is never fetched again (no refreshAfter): VSO's opt-in.
    idle = leases.plan_dynamic(
        spec=dynamic_spec(), state=state, generation=1, drift=None, now=T0 + timedelta(seconds=31)
    )
    assert (idle.action, idle.delay) == (leases.Action.WAIT, None)


def test_lease_state_round_trips_through_status_and_queues_old_lease_for_revocation() -> None:
    state = lease_state()
    assert leases.LeaseState.from_storage(state.for_storage()) == state
    issued = state.issued(
        Lease("db/creds/r/new", 50, True), "", "m2", 2, T0 + timedelta(seconds=5), grace=30.0
    )
    assert issued.pending == (leases.PendingRevocation("db/creds/r/abc", T0 + timedelta(seconds=35)),)
    assert leases.LeaseState.from_storage(issued.for_storage()) == issued
    assert leases.due_revocations(issued, T0 + timedelta(seconds=34)) == []
    assert leases.due_revocations(issued, T0 + timedelta(seconds=35)) == ["db/creds/r/abc"]
    wait = leases.plan_dynamic(
        spec=dynamic_spec(), state=issued, generation=2, drift=None, now=T0 + timedelta(seconds=6)
    )
    assert wait.delay == pytest.approx(29)  # wake for the revocation before the renewal
    assert state.issued(Lease("x", 1, True), "", "m", 1, T0, grace=None).pending == ()  # left to expire


# ------------------------------------------------------------------------- misc pure helpers


def test_set_condition_keeps_transition_time_when_status_is_unchanged() -> None:
    first = set_condition([], type=READY, status="False", reason="A", message="a", generation=1, now=T0)
    second = set_condition(
        first, type=READY, status="False", reason="B", message="b", generation=2, now=T0 + timedelta(hours=1)
    )
    assert second[0]["lastTransitionTime"] == "2026-11-28T12:00:00Z" and second[0]["reason"] == "B"
    third = set_condition(
        second, type=READY, status="True", reason="C", message="c", generation=2, now=T0 + timedelta(hours=1)
    )
    assert third[0]["lastTransitionTime"] == "2026-11-28T13:00:00Z"


@pytest.mark.parametrize(
    ("ref", "referrer", "tried"),
    [
        (api.ObjectRef("a"), "app", [("app", "a"), ("ops", "a")]),
        (api.ObjectRef("a"), "ops", [("ops", "a")]),
        (api.ObjectRef("a", "x"), "app", [("x", "a")]),
    ],
)
def test_reference_lookup_order(ref: api.ObjectRef, referrer: str, tried: list[tuple[str, str]]) -> None:
    assert refs.candidates(ref, referrer, "ops") == tried


def test_resolve_falls_back_to_operator_namespace_and_names_every_place_tried() -> None:
    store = {("ops", "default"): {"metadata": {"name": "default", "namespace": "ops"}}}
    assert refs.resolve(
        "VaultConnection", api.ObjectRef("default"), "app", "ops", lambda ns, n: store.get((ns, n))
    )
    with pytest.raises(refs.RefError, match=r"^VaultAuth app/x or ops/x not found$"):
        refs.resolve("VaultAuth", api.ObjectRef("x"), "app", "ops", lambda ns, n: None)


def test_render() -> None:
    assert render({"s": "v", "n": 1, "b": False, "o": {"k": [1]}, "none": None}) == {
        "s": b"v",
        "n": b"1",
        "b": b"false",
        "o": b'{"k":[1]}',
        "none": b"",
    }
    with pytest.raises(RenderError, match=r"^keys not allowed in a Kubernetes Secret: 'a b', 'x/y'$"):
        render({"a b": "secret-value", "x/y": "secret-value", "ok": "v"})


@pytest.mark.parametrize(
    ("exc", "reason", "retry"),
    [
        (api.SpecError("VaultStaticSecret", ["mount is required"]), "InvalidSpec", False),
        (refs.RefError("VaultAuthNotFound", "x"), "VaultAuthNotFound", True),
        (destination.DestinationError("SecretNotOwned", "x"), "SecretNotOwned", True),
        (VaultUnavailable("down"), "VaultUnavailable", True),
        (VaultDenied("no"), "VaultDenied", True),
        (RuntimeError("password=hunter2"), "InternalError", True),
    ],
)
def test_classify(exc: Exception, reason: str, retry: bool) -> None:
    failure = classify(exc)
    assert (failure.reason, failure.retry) == (reason, retry)
    assert "hunter2" not in failure.message


def test_work_queue_one_at_a_time_coalescing_and_schedules() -> None:
    now = [0.0]
    queue: WorkQueue[str] = WorkQueue(clock=lambda: now[0])
    queue.add("a")
    queue.add("a")
    assert queue.get(timeout=0) == "a" and queue.get(timeout=0) is None  # coalesced
    queue.add("a")  # while processing: dirty, not handed out twice
    assert queue.get(timeout=0) is None
    queue.done("a")
    assert queue.get(timeout=0) == "a"
    queue.done("a")
    queue.add_after("b", 10)
    queue.add_after("b", 60)  # a later schedule does not postpone an earlier one
    assert queue.scheduled("b") == 10
    now[0] = 9.9
    assert queue.get(timeout=0) is None
    now[0] = 10.0
    assert queue.get(timeout=0) == "b"


def test_backoff_doubles_from_5_to_60_and_resets() -> None:
    backoff: Backoff[str] = Backoff()
    assert [backoff.next_delay("k") for _ in range(6)] == [5, 10, 20, 40, 60, 60]
    backoff.reset("k")
    assert backoff.next_delay("k") == 5
