"""Restart workloads when a destination Secret's data really changed.

Two sources of targets: the CR's ``rolloutRestartTargets`` (named workloads) and, for
``rollout: pods``, every Deployment/StatefulSet/DaemonSet in the namespace whose pod template
consumes the Secret through ``env[].valueFrom.secretKeyRef``, ``envFrom[].secretRef`` or a
``secret`` / ``projected`` volume (:func:`consumes_secret`, pure). Pods that read the Secret
through the CSI driver are not restarted: the provider rewrites their files in place, which is
the point of the project.

A restart is what ``kubectl rollout restart`` does: set a pod-template annotation
(``csi-vso.io/restartedAt``) to the current time. Microseconds matter: two rotations within one
second would otherwise write the same value, which is no change, so no rollout.

Debounce: a workload is restarted at most once per ``debounce`` seconds; a request inside that
window is coalesced into one restart at the window's end, so a burst of rotations (several CRs
feeding one Deployment) rolls it once, and no rotation is lost.

The caller decides *whether* (data changed, not the first sync); this module decides *what*.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from csi_vso.operator import metrics

log = logging.getLogger(__name__)

RESTARTED_AT_ANNOTATION = "csi-vso.io/restartedAt"
DEFAULT_DEBOUNCE = 2.0

Workload = tuple[str, str, str]  # (kind, namespace, name)


def _containers(pod_spec: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    for field in ("initContainers", "containers", "ephemeralContainers"):
        yield from pod_spec.get(field) or []


def consumes_secret(pod_spec: Mapping[str, Any], secret_name: str) -> bool:
    """True when a pod with this spec reads ``secret_name`` through env, envFrom or a secret volume."""
    for container in _containers(pod_spec):
        for env in container.get("env") or []:
            ref = ((env.get("valueFrom") or {}).get("secretKeyRef")) or {}
            if ref.get("name") == secret_name:
                return True
        for env_from in container.get("envFrom") or []:
            if (env_from.get("secretRef") or {}).get("name") == secret_name:
                return True
    for volume in pod_spec.get("volumes") or []:
        if (volume.get("secret") or {}).get("secretName") == secret_name:
            return True
        for source in (volume.get("projected") or {}).get("sources") or []:
            if (source.get("secret") or {}).get("name") == secret_name:
                return True
        # volume["csi"] is deliberately ignored: the CSI provider rotates those files in place.
    return False


def restart_patch(now: datetime) -> dict[str, Any]:
    stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: stamp}}}}}


class Rollouts:
    """Finds consumers and restarts workloads, debounced per workload."""

    def __init__(
        self,
        apps: client.AppsV1Api,
        *,
        debounce: float = DEFAULT_DEBOUNCE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._apps = apps
        self._debounce = debounce
        self._clock = clock
        self._last: dict[Workload, float] = {}
        self._pending: dict[Workload, threading.Timer] = {}
        self._lock = threading.Lock()

    def _lister(self, kind: str) -> Callable[..., Any]:
        listers: dict[str, Callable[..., Any]] = {
            "Deployment": self._apps.list_namespaced_deployment,
            "StatefulSet": self._apps.list_namespaced_stateful_set,
            "DaemonSet": self._apps.list_namespaced_daemon_set,
        }
        return listers[kind]

    def _patcher(self, kind: str) -> Callable[..., Any]:
        patchers: dict[str, Callable[..., Any]] = {
            "Deployment": self._apps.patch_namespaced_deployment,
            "StatefulSet": self._apps.patch_namespaced_stateful_set,
            "DaemonSet": self._apps.patch_namespaced_daemon_set,
        }
        return patchers[kind]

    def consumers(self, namespace: str, secret_name: str) -> list[Workload]:
        """Workloads in ``namespace`` whose pod templates consume ``secret_name`` (not via CSI)."""
        found: list[Workload] = []
        for kind in ("Deployment", "StatefulSet", "DaemonSet"):
            # Raw JSON: only the pod templates matter, and the typed models reject objects whose
            # status a controller has not filled in yet.
            answer = self._lister(kind)(namespace, _preload_content=False)
            for item in json.loads(answer.data).get("items") or []:
                spec = ((item.get("spec") or {}).get("template") or {}).get("spec") or {}
                if consumes_secret(spec, secret_name):
                    found.append((kind, namespace, item["metadata"]["name"]))
        return found

    def request(self, workloads: Iterable[Workload]) -> None:
        """Restart each workload now, or once at the end of its debounce window."""
        for workload in dict.fromkeys(workloads):
            with self._lock:
                if workload in self._pending:
                    continue  # already coalesced into a pending restart
                last = self._last.get(workload)
                wait = 0.0 if last is None else last + self._debounce - self._clock()
                if wait > 0:
                    timer = threading.Timer(wait, self._fire, args=(workload,))
                    timer.daemon = True
                    self._pending[workload] = timer
                    timer.start()
                    continue
                self._last[workload] = self._clock()
            self._restart(workload)

    def _fire(self, workload: Workload) -> None:
        with self._lock:
            self._pending.pop(workload, None)
            self._last[workload] = self._clock()
        self._restart(workload)

    def _restart(self, workload: Workload) -> None:
        kind, namespace, name = workload
        try:
            self._patcher(kind)(
                name,
                namespace,
                restart_patch(datetime.now(UTC)),
                _content_type="application/merge-patch+json",
                _preload_content=False,
            )
        except ApiException as exc:
            log.warning(
                "could not restart workload",
                extra={"workload": f"{kind}/{namespace}/{name}", "status": exc.status},
            )
            return
        metrics.ROLLOUTS.labels(kind=kind).inc()
        log.info("restarted workload", extra={"workload": f"{kind}/{namespace}/{name}"})

    def close(self) -> None:
        with self._lock:
            pending, self._pending = list(self._pending.values()), {}
        for timer in pending:
            timer.cancel()
