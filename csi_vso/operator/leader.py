"""Leader election on a ``coordination.k8s.io`` Lease, with the kubernetes client's own elector.

Only the leader runs the controllers (so only the leader writes Secrets and talks to Vault);
standbys wait in :meth:`LeaderElection.run`. When the leader stops renewing (crash, SIGKILL,
partition) a standby takes over once the lease duration has passed since it last saw the
lease change.

When this process *loses* the lease it must stop writing at once, and a controller cannot be
trusted to have no request in flight: :func:`run_elected` returns so the process exits and is
restarted as a fresh standby (client-go operators do the same).

The library's ``LeaseLock`` builds its API object from the global default configuration; ours
comes from ``--kubeconfig``, so the lock's client is replaced right after construction. It also
only expects ``ApiException``: a connection error (API server restarting, network blip) would
escape the elector and kill a standby that merely waits. :class:`TolerantLeaseLock` turns those
into a failed attempt, which the elector already handles (a standby retries; a leader that
cannot renew within the renew deadline steps down, as it must).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ElectionSettings:
    namespace: str
    name: str = "csi-vso-operator"
    identity: str = ""
    lease_duration: int = 15
    renew_deadline: int = 10
    retry_period: int = 2


_UNREACHABLE = (urllib3.exceptions.HTTPError, OSError)


class TolerantLeaseLock(LeaseLock):  # type: ignore[misc]
    """A ``LeaseLock`` whose calls fail (return False) instead of raising on connection errors."""

    def get(self, name: str, namespace: str) -> tuple[bool, Any]:
        try:
            found, record = super().get(name, namespace)
            return bool(found), record
        except _UNREACHABLE as exc:
            log.warning("cannot read the leader Lease", extra={"error": type(exc).__name__})
            return False, ApiException(reason=f"API server unreachable ({type(exc).__name__})")

    def create(self, name: str, namespace: str, election_record: Any) -> bool:
        try:
            return bool(super().create(name, namespace, election_record))
        except _UNREACHABLE as exc:
            log.warning("cannot create the leader Lease", extra={"error": type(exc).__name__})
            return False

    def update(self, name: str, namespace: str, updated_record: Any) -> bool:
        try:
            return bool(super().update(name, namespace, updated_record))
        except _UNREACHABLE as exc:
            log.warning("cannot renew the leader Lease", extra={"error": type(exc).__name__})
            return False


def release(api_client: client.ApiClient, settings: ElectionSettings) -> bool:
    """Give the Lease up on a clean shutdown (SIGTERM), so a standby takes over at once instead
    of after the lease duration. Best effort, and only if we still hold it; returns whether it did.

    Called after the controllers stopped: nothing of ours writes any more.
    """
    api = client.CoordinationV1Api(api_client)
    try:
        lease = api.read_namespaced_lease(settings.name, settings.namespace)
        if lease.spec is None or lease.spec.holder_identity != settings.identity:
            return False
        lease.spec.holder_identity = None
        lease.spec.lease_duration_seconds = 1
        lease.spec.renew_time = datetime.now(UTC)
        api.replace_namespaced_lease(settings.name, settings.namespace, lease)  # resourceVersion: CAS
    except (ApiException, *_UNREACHABLE) as exc:
        log.warning("could not release the leader Lease", extra={"error": type(exc).__name__})
        return False
    log.info("released the leader Lease", extra={"identity": settings.identity, "lease": settings.name})
    return True


def run_elected(
    api_client: client.ApiClient,
    settings: ElectionSettings,
    *,
    on_started: Callable[[], None],
    on_stopped: Callable[[], None],
) -> None:
    """Block: wait to become leader, call ``on_started`` (non-blocking), renew until the lease is lost.

    Returns after ``on_stopped`` once leadership is lost; never returns while leading.
    """
    lock = TolerantLeaseLock(settings.name, settings.namespace, settings.identity)
    lock.api_instance = client.CoordinationV1Api(api_client)
    leading = threading.Event()

    def started() -> None:
        leading.set()
        log.info("became leader", extra={"identity": settings.identity, "lease": settings.name})
        on_started()

    def stopped() -> None:
        log.warning("lost leadership", extra={"identity": settings.identity, "lease": settings.name})
        on_stopped()

    config = electionconfig.Config(
        lock,
        lease_duration=settings.lease_duration,
        renew_deadline=settings.renew_deadline,
        retry_period=settings.retry_period,
        onstarted_leading=started,
        onstopped_leading=stopped,
    )
    log.info("waiting for leadership", extra={"identity": settings.identity, "lease": settings.name})
    leaderelection.LeaderElection(config).run()
