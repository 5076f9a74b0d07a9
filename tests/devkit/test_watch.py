"""Conformance: watch semantics, driven the way informers drive them.

List, watch from the list's resourceVersion, lose the connection, resume from the last
version seen (nothing missed, nothing repeated), get 410 Expired once that version has left
the server's retained window, and recover by listing again — first by hand with
``kubernetes.watch.Watch``, then through ``kubernetes.informer.SharedInformer``.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.informer import SharedInformer

from tests.devkit.conftest import needs_server, wait_for
from tests.fixtures.kube import Kube

# Every ConfigMap a test makes carries this label, and lists/watches select on it: clusters put
# their own ConfigMap (kube-root-ca.crt) in every namespace.
OURS = "csi-vso.io/test-object=true"


def _cm(name: str, **labels: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"csi-vso.io/test-object": "true", **labels}},
        "data": {"v": "0"},
    }


def _take(
    core: client.CoreV1Api, namespace: str, rv: str, count: int, label_selector: str = OURS
) -> tuple[list[tuple[str, str, str]], str]:
    """Watch from ``rv``, read ``count`` events, then drop the connection.

    Returns (type, name, data.v) per event and the last resourceVersion seen.
    """
    w = watch.Watch()
    out: list[tuple[str, str, str]] = []
    for event in w.stream(
        core.list_namespaced_config_map,
        namespace,
        resource_version=rv,
        timeout_seconds=10,
        label_selector=label_selector,
    ):
        obj = event["object"]
        out.append((event["type"], obj.metadata.name, (obj.data or {}).get("v", "")))
        if len(out) == count:
            w.stop()
            break
    assert w.resource_version is not None
    return out, w.resource_version


def test_list_watch_resume_without_gaps_or_duplicates(core: client.CoreV1Api, namespace: str) -> None:
    for name in ("a", "b", "c"):
        core.create_namespaced_config_map(namespace, _cm(name))
    listed = core.list_namespaced_config_map(namespace, label_selector=OURS)
    assert [i.metadata.name for i in listed.items] == ["a", "b", "c"]

    # Changes made after the list but before the watch connects are still delivered.
    core.patch_namespaced_config_map("a", namespace, {"data": {"v": "1"}})
    core.create_namespaced_config_map(namespace, _cm("d"))
    core.delete_namespaced_config_map("b", namespace)
    core.patch_namespaced_config_map("c", namespace, {"data": {"v": "1"}})

    first, last_rv = _take(core, namespace, listed.metadata.resource_version, 2)
    assert first == [("MODIFIED", "a", "1"), ("ADDED", "d", "0")]

    # The connection is gone; more changes happen; resume from the last version seen.
    core.patch_namespaced_config_map("d", namespace, {"data": {"v": "2"}})
    rest, _ = _take(core, namespace, last_rv, 3)
    assert rest == [("DELETED", "b", "0"), ("MODIFIED", "c", "1"), ("MODIFIED", "d", "2")]


def test_expired_version_is_410_and_relist_recovers(
    kube: Kube, core: client.CoreV1Api, namespace: str
) -> None:
    server = needs_server(kube)
    core.create_namespaced_config_map(namespace, _cm("a"))
    old_rv = core.list_namespaced_config_map(namespace).metadata.resource_version
    try:
        # The window is shared with the server's controllers (earlier tests' namespaces are
        # still being emptied): wide enough that their writes cannot expire the relist below,
        # and more of our own writes than it holds.
        server.set_watch_window(40)
        for i in range(50):
            core.patch_namespaced_config_map("a", namespace, {"data": {"v": str(i + 1)}})

        # Without timeout_seconds the client retries a 410 once, then raises it.
        for kw in ({"timeout_seconds": 5}, {}):
            with pytest.raises(client.ApiException) as err:
                next(
                    iter(
                        watch.Watch().stream(
                            core.list_namespaced_config_map, namespace, resource_version=old_rv, **kw
                        )
                    )
                )
            assert err.value.status == 410
            assert "Expired" in str(err.value.reason) and "too old resource version" in str(err.value.reason)

        # Recover as an informer does: list again and watch from the new version.
        relisted = core.list_namespaced_config_map(namespace, label_selector=OURS)
        assert relisted.items[0].data == {"v": "50"}
        core.patch_namespaced_config_map("a", namespace, {"data": {"v": "51"}})
        events, _ = _take(core, namespace, relisted.metadata.resource_version, 1)
        assert events == [("MODIFIED", "a", "51")]
    finally:
        server.set_watch_window(25_000)


def test_watch_without_version_starts_with_current_state(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_config_map(namespace, _cm("a"))
    core.create_namespaced_config_map(namespace, _cm("b"))
    events, _ = _take(core, namespace, "0", 2)
    assert sorted(events) == [("ADDED", "a", "0"), ("ADDED", "b", "0")]


def test_selector_transitions_become_added_and_deleted(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_config_map(namespace, _cm("a", app="x"))
    rv = core.list_namespaced_config_map(namespace, label_selector="app=x").metadata.resource_version
    core.patch_namespaced_config_map(
        "a", namespace, {"metadata": {"labels": {"app": "y"}}}
    )  # leaves the selection
    core.create_namespaced_config_map(namespace, _cm("other", app="y"))  # never selected
    core.patch_namespaced_config_map("a", namespace, {"metadata": {"labels": {"app": "x"}}})  # comes back
    events, _ = _take(core, namespace, rv, 2, label_selector="app=x")
    assert [(t, n) for t, n, _ in events] == [("DELETED", "a"), ("ADDED", "a")]


def test_timeout_seconds_ends_the_stream(core: client.CoreV1Api, namespace: str) -> None:
    # Selected: on a real cluster kube-root-ca.crt may land in the new namespace meanwhile.
    rv = core.list_namespaced_config_map(namespace, label_selector=OURS).metadata.resource_version
    events = list(
        watch.Watch().stream(
            core.list_namespaced_config_map,
            namespace,
            resource_version=rv,
            timeout_seconds=1,
            label_selector=OURS,
        )
    )
    assert events == []


def test_bookmarks_carry_the_current_version(kube: Kube, core: client.CoreV1Api, namespace: str) -> None:
    server = needs_server(kube)
    saved = server.app.bookmark_interval
    server.app.bookmark_interval = 0.1
    try:
        rv = core.list_namespaced_config_map(namespace).metadata.resource_version
        w = watch.Watch()
        for event in w.stream(
            core.list_namespaced_config_map,
            namespace,
            resource_version=rv,
            allow_watch_bookmarks=True,
            timeout_seconds=5,
        ):
            assert event["type"] == "BOOKMARK"
            assert int(event["raw_object"]["metadata"]["resourceVersion"]) >= int(rv)
            w.stop()
            break
        else:
            pytest.fail("no BOOKMARK within the timeout")
    finally:
        server.app.bookmark_interval = saved


def test_shared_informer_recovers_from_410_with_a_correct_cache(
    kube: Kube, core: client.CoreV1Api, namespace: str
) -> None:
    server = needs_server(kube)
    other = f"{namespace}-other"
    core.create_namespace({"metadata": {"name": other}})
    lists = 0
    lock = threading.Lock()

    @functools.wraps(core.list_namespaced_config_map)  # Watch reads the return type from it
    def list_func(**kw: Any) -> Any:
        nonlocal lists
        with lock:
            lists += 1
        return core.list_namespaced_config_map(**kw)

    errors: list[Any] = []
    for name in ("a", "b"):
        core.create_namespaced_config_map(namespace, _cm(name))
    informer = SharedInformer(list_func, namespace=namespace, label_selector=OURS)
    informer.add_event_handler("ERROR", errors.append)
    informer.start()

    def cache_state() -> dict[str, str]:
        return {o.metadata.name: (o.data or {}).get("v", "") for o in informer.cache.list()}

    try:
        wait_for(lambda: cache_state() == {"a": "0", "b": "0"})
        core.patch_namespaced_config_map("a", namespace, {"data": {"v": "1"}})
        wait_for(lambda: cache_state() == {"a": "1", "b": "0"})
        # Writes the informer cannot see move the server on; then compaction drops every event it
        # could resume from, and the next reconnect (after its connection is dropped) gets 410.
        for i in range(3):
            core.create_namespaced_config_map(other, _cm(f"x{i}"))
        server.set_watch_window(0)
        server.drop_watches()
        wait_for(lambda: any(isinstance(e, client.ApiException) and e.status == 410 for e in errors))
        wait_for(lambda: lists >= 2)
        core.delete_namespaced_config_map("b", namespace)
        core.create_namespaced_config_map(namespace, _cm("c"))
        wait_for(lambda: cache_state() == {"a": "1", "c": "0"})
        listed = core.list_namespaced_config_map(namespace, label_selector=OURS)
        truth = {o.metadata.name: o.data["v"] for o in listed.items}
        assert cache_state() == truth
    finally:
        informer.stop()
        server.set_watch_window(25_000)
        core.delete_namespace(other)


def test_send_initial_events_ends_with_the_annotated_bookmark(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "a", "labels": {"mine": "yes"}}})
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "b", "labels": {"mine": "yes"}}})
    listed = core.list_namespaced_config_map(namespace, label_selector="mine=yes")
    seen: list[tuple[str, str]] = []
    w = watch.Watch()
    for event in w.stream(
        core.list_namespaced_config_map,
        namespace,
        label_selector="mine=yes",
        send_initial_events=True,
        resource_version_match="NotOlderThan",
        resource_version=listed.metadata.resource_version,
        allow_watch_bookmarks=True,
        timeout_seconds=10,
    ):
        meta = event["raw_object"]["metadata"]
        if event["type"] == "BOOKMARK":
            annotations = meta.get("annotations") or {}
            if annotations.get("k8s.io/initial-events-end") == "true":
                assert int(meta["resourceVersion"]) >= int(listed.metadata.resource_version)
                core.patch_namespaced_config_map("a", namespace, {"data": {"k": "v"}})
            continue
        seen.append((event["type"], meta["name"]))
        if event["type"] == "MODIFIED":
            w.stop()
    assert seen == [("ADDED", "a"), ("ADDED", "b"), ("MODIFIED", "a")]


def test_a_bookmark_comes_before_the_watch_deadline(core: client.CoreV1Api, namespace: str) -> None:
    """Without any change to report, the server still sends a bookmark before the watch times
    out (2 s before its deadline), so the client can resume from a recent version."""
    rv = core.list_namespaced_config_map(namespace).metadata.resource_version
    w = watch.Watch()
    types = []
    for event in w.stream(
        core.list_namespaced_config_map,
        namespace,
        resource_version=rv,
        allow_watch_bookmarks=True,
        timeout_seconds=4,
    ):
        types.append(event["type"])
        if event["type"] == "BOOKMARK":
            assert int(event["raw_object"]["metadata"]["resourceVersion"]) >= int(rv)
            w.stop()
    assert "BOOKMARK" in types


def test_send_initial_events_needs_not_older_than(core: client.CoreV1Api, namespace: str) -> None:
    with pytest.raises(client.ApiException) as err:
        core.list_namespaced_config_map(namespace, watch=True, send_initial_events=True, timeout_seconds=1)
    assert err.value.status == 422
    assert "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan" in err.value.body
