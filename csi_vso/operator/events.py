"""Kubernetes Events for custom resources, deduplicated so a retry loop does not flood the API.

An event is recorded when (object uid, type, reason, message) differs from the last one recorded
for that object; a failure that repeats every backoff step emits once, and again only when it
changes or the object recovers. Recording is best effort: a failed event must never fail a
reconcile, so errors are logged and swallowed.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

log = logging.getLogger(__name__)

COMPONENT = "csi-vso-operator"


class EventRecorder:
    def __init__(self, core: client.CoreV1Api, host: str = "") -> None:
        self._core = core
        self._host = host
        self._last: dict[str, tuple[str, str, str]] = {}
        self._lock = threading.Lock()

    def record(
        self, obj: dict[str, Any], event_type: str, reason: str, message: str, *, dedupe: bool = True
    ) -> bool:
        """Emit an Event on ``obj`` unless it repeats the previous one; returns whether it was sent.

        ``dedupe=False`` for events that mark a distinct occurrence (a write, a rotation).
        """
        metadata = obj.get("metadata") or {}
        uid = str(metadata.get("uid", ""))
        signature = (event_type, reason, message)
        with self._lock:
            if dedupe and self._last.get(uid) == signature:
                return False
            self._last[uid] = signature
        now = datetime.now(UTC)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "generateName": f"{metadata.get('name', 'object')}.",
                "namespace": metadata.get("namespace") or "default",
            },
            "involvedObject": {
                "apiVersion": obj.get("apiVersion"),
                "kind": obj.get("kind"),
                "name": metadata.get("name"),
                "namespace": metadata.get("namespace"),
                "uid": uid,
                "resourceVersion": metadata.get("resourceVersion"),
            },
            "type": event_type,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": COMPONENT, "host": self._host},
            "reportingComponent": COMPONENT,
            "reportingInstance": self._host or COMPONENT,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "eventTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "action": reason,
            "count": 1,
        }
        try:
            self._core.create_namespaced_event(body["metadata"]["namespace"], body)
        except Exception as exc:  # best effort, see module docstring
            log.warning(
                "could not record event",
                extra={
                    "object": f"{metadata.get('namespace')}/{metadata.get('name')}",
                    "reason": reason,
                    "error": type(exc).__name__,
                },
            )
        return True

    def clear(self, uid: str) -> None:
        """The object recovered: the next failure, even a repeat of the last, is news again."""
        with self._lock:
            if self._last.get(uid, ("Normal",))[0] != "Normal":
                self._last.pop(uid, None)

    def forget(self, uid: str) -> None:
        with self._lock:
            self._last.pop(uid, None)
