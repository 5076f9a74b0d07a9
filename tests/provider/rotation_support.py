"""Helpers for the rotation tests: Secrets as the cache holds them, Mount specs, a rotator.

``MemorySecrets`` is a stand-in for SecretCache's two methods the rotator uses (get and
listeners), holding real ``V1Secret`` objects; the end-to-end tests run the real cache
against the in-memory API server instead.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from kubernetes import client
from prometheus_client import CollectorRegistry

from csi_vso import protected
from csi_vso.provider import render
from csi_vso.provider.authz import VerifiedPod
from csi_vso.provider.params import parse_request
from csi_vso.provider.registry import Registry
from csi_vso.provider.rotation import RotationMetrics, Rotator, decide, secret_view
from csi_vso.provider.validation import MountSpec, validate

KEY = b"k" * 32
POD = VerifiedPod(namespace="team-a", name="app-0", uid="uid-0", service_account="app")


def make_secret(
    name: str,
    data: Mapping[str, bytes],
    *,
    namespace: str = "team-a",
    annotations: Mapping[str, str] | None = None,
    protected_label: bool = True,
) -> client.V1Secret:
    labels = protected.protected_labels("owner-uid") if protected_label else {}
    return client.V1Secret(
        metadata=client.V1ObjectMeta(
            name=name, namespace=namespace, labels=labels, annotations=dict(annotations or {})
        ),
        data={k: base64.b64encode(v).decode() for k, v in data.items()},
    )


class MemorySecrets:
    """get() and add_listener() over a dict; set()/delete() notify like the cache does."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], client.V1Secret] = {}
        self._listeners: list[Callable[[str, str], None]] = []
        self._lock = threading.Lock()
        self._rv = 0

    def get(self, namespace: str, name: str) -> client.V1Secret | None:
        with self._lock:
            return self._items.get((namespace, name))

    def add_listener(self, callback: Callable[[str, str], None]) -> None:
        self._listeners.append(callback)

    def known(self, namespace: str, name: str) -> bool:
        return True  # a complete view, like a synced cluster-wide cache

    def refusal(self, pod: VerifiedPod, namespace: str, name: str) -> str | None:
        return None

    def set(self, secret: client.V1Secret, *, notify: bool = True) -> None:
        """Store ``secret`` with a fresh resourceVersion, as the API server would."""
        key = (secret.metadata.namespace, secret.metadata.name)
        with self._lock:
            self._rv += 1
            secret.metadata.resource_version = str(self._rv)
            self._items[key] = secret
        if notify:
            for cb in self._listeners:
                cb(*key)

    def delete(self, namespace: str, name: str) -> None:
        with self._lock:
            self._items.pop((namespace, name), None)
        for cb in self._listeners:
            cb(namespace, name)


def make_spec(target: Path, objects: list[dict[str, str]], *, pod: VerifiedPod = POD) -> MountSpec:
    attributes = {
        "csi.storage.k8s.io/pod.name": pod.name,
        "csi.storage.k8s.io/pod.namespace": pod.namespace,
        "csi.storage.k8s.io/pod.uid": pod.uid,
        "csi.storage.k8s.io/serviceAccount.name": pod.service_account,
        "objects": json.dumps(objects),
    }
    return validate(
        parse_request(
            attributes=json.dumps(attributes), secrets="null", target_path=str(target), permission="420"
        )
    )


class Rendered:
    """What MountService hands its observers (only ``versions`` is read)."""

    def __init__(self, versions: tuple[render.ObjectVersion, ...]) -> None:
        self.versions = versions


def mount(rotator: Rotator, secrets: MemorySecrets, spec: MountSpec, pod: VerifiedPod = POD) -> None:
    """Do what a provider-mode Mount does: render from the source, write, tell the observer."""
    from csi_vso.provider.atomic_writer import write_atomically
    from csi_vso.provider.registry import MountRecord

    record = MountRecord(
        target_path=spec.target_path, pod=pod, objects=spec.objects, permission=spec.permission
    )
    views = {k: secret_view(secrets.get(*k)) for k in record.secrets()}
    decision = decide(record, views, KEY)
    assert hasattr(decision, "files"), decision
    files = decision.files  # type: ignore[union-attr]
    write_atomically(Path(spec.target_path), [f.to_write() for f in files])
    rotator.observe_mount(spec, pod, Rendered(render.versions(KEY, files)))


def new_rotator(
    secrets: MemorySecrets, state_dir: Path, **kwargs: float
) -> tuple[Rotator, Registry, CollectorRegistry]:
    registry = Registry(state_dir)
    registry.load()
    prom = CollectorRegistry()
    rotator = Rotator(
        secrets=secrets,
        registry=registry,
        version_key=KEY,
        metrics=RotationMetrics(prom),
        **kwargs,  # type: ignore[arg-type]
    )
    return rotator, registry, prom


def wait_idle(rotator: Rotator, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not rotator.idle():
        if time.monotonic() > deadline:
            raise AssertionError("rotator did not go idle")
        time.sleep(0.002)


def sample(prom: CollectorRegistry, name: str, labels: Mapping[str, str] | None = None) -> float:
    value = prom.get_sample_value(name, dict(labels or {}))
    return 0.0 if value is None else value
