"""Conformance: CRUD semantics and Status errors, through the official kubernetes client.

Written against the real API server's behaviour; runs unchanged against a cluster when
CSI_VSO_TEST_KUBECONFIG is set.
"""

from __future__ import annotations

import base64
import json

import pytest
from kubernetes import client


def _status(exc: client.ApiException) -> dict:
    return json.loads(exc.body)


def test_secret_create_get_replace_delete(core: client.CoreV1Api, namespace: str) -> None:
    created = core.create_namespaced_secret(
        namespace, {"metadata": {"name": "s1"}, "data": {"a": base64.b64encode(b"one").decode()}}
    )
    assert created.type == "Opaque"
    assert created.metadata.uid
    got = core.read_namespaced_secret("s1", namespace)
    assert got.metadata.resource_version == created.metadata.resource_version
    got.data["b"] = base64.b64encode(b"two").decode()
    replaced = core.replace_namespaced_secret("s1", namespace, got)
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)
    assert replaced.metadata.uid == created.metadata.uid
    core.delete_namespaced_secret("s1", namespace)
    with pytest.raises(client.ApiException) as err:
        core.read_namespaced_secret("s1", namespace)
    assert err.value.status == 404
    status = _status(err.value)
    assert (status["kind"], status["reason"], status["code"]) == ("Status", "NotFound", 404)
    assert status["details"] == {"name": "s1", "kind": "secrets"}
    assert status["message"] == 'secrets "s1" not found'


def test_string_data_is_folded_into_data(core: client.CoreV1Api, namespace: str) -> None:
    created = core.create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "s"},
            "data": {"a": base64.b64encode(b"old").decode()},
            "stringData": {"a": "new", "b": "bee"},
        },
    )
    assert created.string_data is None
    assert {k: base64.b64decode(v) for k, v in created.data.items()} == {"a": b"new", "b": b"bee"}


def test_bad_base64_is_400(core: client.CoreV1Api, namespace: str) -> None:
    with pytest.raises(client.ApiException) as err:
        core.create_namespaced_secret(namespace, {"metadata": {"name": "s"}, "data": {"a": "%%%not base64"}})
    assert err.value.status == 400
    assert _status(err.value)["reason"] == "BadRequest"


def test_already_exists_is_409(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "c"}})
    with pytest.raises(client.ApiException) as err:
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "c"}})
    status = _status(err.value)
    assert (err.value.status, status["reason"]) == (409, "AlreadyExists")
    assert status["message"] == 'configmaps "c" already exists'


def test_stale_resource_version_is_409_conflict(core: client.CoreV1Api, namespace: str) -> None:
    first = core.create_namespaced_config_map(namespace, {"metadata": {"name": "c"}, "data": {"k": "1"}})
    core.patch_namespaced_config_map("c", namespace, {"data": {"k": "2"}})
    first.data = {"k": "3"}
    with pytest.raises(client.ApiException) as err:
        core.replace_namespaced_config_map("c", namespace, first)
    status = _status(err.value)
    assert (err.value.status, status["reason"]) == (409, "Conflict")
    assert "the object has been modified" in status["message"]
    assert core.read_namespaced_config_map("c", namespace).data == {"k": "2"}


def test_generate_name(core: client.CoreV1Api, namespace: str) -> None:
    a = core.create_namespaced_config_map(namespace, {"metadata": {"generateName": "gen-"}})
    b = core.create_namespaced_config_map(namespace, {"metadata": {"generateName": "gen-"}})
    assert a.metadata.name.startswith("gen-") and len(a.metadata.name) == len("gen-") + 5
    assert a.metadata.name != b.metadata.name


def test_missing_name_and_bad_label_are_422(core: client.CoreV1Api, namespace: str) -> None:
    with pytest.raises(client.ApiException) as err:
        core.create_namespaced_config_map(namespace, {"metadata": {}})
    status = _status(err.value)
    assert (err.value.status, status["reason"]) == (422, "Invalid")
    assert status["details"]["causes"][0]["field"] == "metadata.name"
    with pytest.raises(client.ApiException) as err:
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "c", "labels": {"a": "-bad-"}}})
    status = _status(err.value)
    assert (err.value.status, status["reason"]) == (422, "Invalid")
    assert status["details"]["causes"][0]["field"] == "metadata.labels"


def test_resource_versions_increase_across_kinds(core: client.CoreV1Api, namespace: str) -> None:
    versions = [
        int(
            core.create_namespaced_config_map(
                namespace, {"metadata": {"name": "c"}}
            ).metadata.resource_version
        ),
        int(core.create_namespaced_secret(namespace, {"metadata": {"name": "s"}}).metadata.resource_version),
        int(
            core.create_namespaced_service_account(
                namespace, {"metadata": {"name": "sa"}}
            ).metadata.resource_version
        ),
    ]
    assert versions == sorted(versions) and len(set(versions)) == 3


def test_noop_update_keeps_resource_version(core: client.CoreV1Api, namespace: str) -> None:
    created = core.create_namespaced_config_map(namespace, {"metadata": {"name": "c"}, "data": {"k": "v"}})
    again = core.patch_namespaced_config_map("c", namespace, {"data": {"k": "v"}})
    assert again.metadata.resource_version == created.metadata.resource_version


def test_create_in_missing_namespace_is_404(core: client.CoreV1Api) -> None:
    with pytest.raises(client.ApiException) as err:
        core.create_namespaced_config_map("no-such-namespace-x", {"metadata": {"name": "c"}})
    assert err.value.status == 404
    assert _status(err.value)["details"]["kind"] == "namespaces"


def test_dry_run_validates_without_storing(core: client.CoreV1Api, namespace: str) -> None:
    shown = core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "c"}, "data": {"k": "v"}}, dry_run="All"
    )
    assert shown.metadata.name == "c"
    with pytest.raises(client.ApiException) as err:
        core.read_namespaced_config_map("c", namespace)
    assert err.value.status == 404


def test_delete_collection_by_label(core: client.CoreV1Api, namespace: str) -> None:
    for name, app in (("a", "x"), ("b", "x"), ("c", "y")):
        core.create_namespaced_config_map(namespace, {"metadata": {"name": name, "labels": {"app": app}}})
    core.delete_collection_namespaced_config_map(namespace, label_selector="app=x")
    left = core.list_namespaced_config_map(namespace, label_selector="app")
    assert [c.metadata.name for c in left.items] == ["c"]


def test_json_patch_on_a_core_kind(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "c"}, "data": {"k": "v"}})
    patched = core.patch_namespaced_config_map(
        "c",
        namespace,
        [{"op": "test", "path": "/data/k", "value": "v"}, {"op": "replace", "path": "/data/k", "value": "w"}],
    )
    assert patched.data == {"k": "w"}
    with pytest.raises(client.ApiException) as err:
        core.patch_namespaced_config_map("c", namespace, [{"op": "test", "path": "/data/k", "value": "v"}])
    assert err.value.status == 422


def test_secret_type_and_immutable_data_cannot_change(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "s"}, "stringData": {"a": "1"}, "immutable": True}
    )
    for patch in ({"stringData": {"a": "2"}}, {"type": "kubernetes.io/basic-auth"}):
        with pytest.raises(client.ApiException) as err:
            core.patch_namespaced_secret("s", namespace, patch)
        assert err.value.status == 422, patch
    with pytest.raises(client.ApiException) as err:
        core.create_namespaced_secret(
            namespace, {"metadata": {"name": "bad"}, "stringData": {"no spaces": "x"}}
        )
    status = _status(err.value)
    assert (err.value.status, status["details"]["causes"][0]["field"]) == (422, "data[no spaces]")


def test_invalid_causes_come_in_the_real_servers_order(core: client.CoreV1Api, namespace: str) -> None:
    """Update checks (type, immutable) before the checks of any Secret; each field its own cause."""
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "s"}, "stringData": {"a": "1"}, "immutable": True}
    )
    with pytest.raises(client.ApiException) as err:
        core.patch_namespaced_secret(
            "s", namespace, {"type": "kubernetes.io/basic-auth", "immutable": False, "stringData": {"b": "2"}}
        )
    causes = _status(err.value)["details"]["causes"]
    assert [(c["reason"], c["field"]) for c in causes] == [
        ("FieldValueInvalid", "type"),
        ("FieldValueForbidden", "immutable"),
        ("FieldValueForbidden", "data"),
        ("FieldValueRequired", "data[username]"),
        ("FieldValueRequired", "data[password]"),
    ]
    assert causes[1]["message"] == "Forbidden: field is immutable when `immutable` is set"
    with pytest.raises(client.ApiException) as err:
        core.create_namespaced_secret(
            namespace, {"metadata": {"name": "b"}, "type": "kubernetes.io/basic-auth"}
        )
    causes = _status(err.value)["details"]["causes"]
    assert [(c["reason"], c["field"]) for c in causes] == [
        ("FieldValueRequired", "data[username]"),
        ("FieldValueRequired", "data[password]"),
    ]


def test_optimistic_concurrency_loses_no_update(api: client.ApiClient, namespace: str) -> None:
    """Concurrent read-modify-replace loops retrying on 409 end with every increment applied."""
    import threading

    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "counter"}, "data": {"n": "0"}})
    conflicts = 0
    lock = threading.Lock()

    def bump(times: int) -> None:
        nonlocal conflicts
        for _ in range(times):
            while True:
                current = core.read_namespaced_config_map("counter", namespace)
                current.data["n"] = str(int(current.data["n"]) + 1)
                try:
                    core.replace_namespaced_config_map("counter", namespace, current)
                    break
                except client.ApiException as exc:
                    assert exc.status == 409
                    with lock:
                        conflicts += 1

    threads = [threading.Thread(target=bump, args=(15,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert core.read_namespaced_config_map("counter", namespace).data["n"] == "60"


def test_strategic_merge_list_order(core: client.CoreV1Api, namespace: str) -> None:
    """A finalizer the live list lacks goes first; ``$setElementOrder`` reorders (real merge order)."""
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "c", "finalizers": ["example.com/a"]}})
    try:
        patched = core.patch_namespaced_config_map(
            "c", namespace, {"metadata": {"finalizers": ["example.com/b"]}}
        )
        assert patched.metadata.finalizers == ["example.com/b", "example.com/a"]
        patched = core.patch_namespaced_config_map(
            "c",
            namespace,
            {"metadata": {"$setElementOrder/finalizers": ["example.com/a", "example.com/b"]}},
        )
        assert patched.metadata.finalizers == ["example.com/a", "example.com/b"]
    finally:
        core.patch_namespaced_config_map("c", namespace, {"metadata": {"finalizers": None}})
