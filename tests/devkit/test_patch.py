"""JSON merge, strategic merge and JSON patch (pure; tables)."""

from __future__ import annotations

from typing import Any

import pytest

from csi_vso.devkit.apiserver.patch import PatchError, json_patch, merge_patch, strategic_merge_patch


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [
        ({"a": 1}, {"a": 2}, {"a": 2}),
        ({"a": 1, "b": 2}, {"a": None}, {"b": 2}),
        ({"m": {"x": 1}}, {"m": {"y": 2}}, {"m": {"x": 1, "y": 2}}),
        ({"l": [1, 2]}, {"l": [3]}, {"l": [3]}),
        ({"a": 1}, {"n": {"deep": None}}, {"a": 1, "n": {}}),
    ],
)
def test_merge_patch(target: Any, patch: Any, expected: Any) -> None:
    assert merge_patch(target, patch) == expected


POD_TEMPLATE = {
    "spec": {
        "template": {
            "metadata": {"annotations": {"keep": "1"}},
            "spec": {
                "containers": [
                    {"name": "app", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
                    {"name": "side", "image": "s:1"},
                ],
            },
        }
    },
    "metadata": {"finalizers": ["a/x"], "ownerReferences": [{"uid": "1", "name": "o"}]},
}


@pytest.mark.parametrize(
    ("patch", "check"),
    [
        # the rollout-restart shape: one annotation added, others kept
        (
            {
                "spec": {
                    "template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "now"}}}
                }
            },
            lambda r: (
                r["spec"]["template"]["metadata"]["annotations"]
                == {"keep": "1", "kubectl.kubernetes.io/restartedAt": "now"}
            ),
        ),
        # containers merge by name: only app's image changes, side stays
        (
            {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "a:2"}]}}}},
            lambda r: (
                [c["image"] for c in r["spec"]["template"]["spec"]["containers"]] == ["a:2", "s:1"]
                and r["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "X", "value": "1"}]
            ),
        ),
        # $patch: delete removes one element by its merge key
        (
            {"spec": {"template": {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}}},
            lambda r: [c["name"] for c in r["spec"]["template"]["spec"]["containers"]] == ["app"],
        ),
        # finalizers merge as a set, in the patch's order; $deleteFromPrimitiveList removes
        (
            {"metadata": {"finalizers": ["b/y", "a/x"]}},
            lambda r: r["metadata"]["finalizers"] == ["b/y", "a/x"],
        ),
        # an item the live list lacks goes first (the real merge order: [A] + [B] -> [B, A])
        (
            {"metadata": {"finalizers": ["b/y"]}},
            lambda r: r["metadata"]["finalizers"] == ["b/y", "a/x"],
        ),
        (
            {"spec": {"template": {"spec": {"containers": [{"name": "new", "image": "n:1"}]}}}},
            lambda r: (
                [c["name"] for c in r["spec"]["template"]["spec"]["containers"]] == ["new", "app", "side"]
            ),
        ),
        # a modified item keeps its place among the others
        (
            {"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "s:2"}]}}}},
            lambda r: [c["name"] for c in r["spec"]["template"]["spec"]["containers"]] == ["app", "side"],
        ),
        # $setElementOrder decides the order of the named items
        (
            {
                "spec": {
                    "template": {
                        "spec": {
                            "$setElementOrder/containers": [{"name": "side"}, {"name": "app"}],
                            "containers": [{"name": "app", "image": "a:2"}],
                        }
                    }
                }
            },
            lambda r: [c["name"] for c in r["spec"]["template"]["spec"]["containers"]] == ["side", "app"],
        ),
        (
            {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a/x"]}},
            lambda r: r["metadata"]["finalizers"] == [],
        ),
        # null deletes a map key
        (
            {"spec": {"template": {"metadata": {"annotations": {"keep": None}}}}},
            lambda r: r["spec"]["template"]["metadata"]["annotations"] == {},
        ),
        # $patch: replace on a map
        (
            {"spec": {"template": {"metadata": {"$patch": "replace", "labels": {"a": "b"}}}}},
            lambda r: r["spec"]["template"]["metadata"] == {"labels": {"a": "b"}},
        ),
    ],
)
def test_strategic_merge_patch(patch: Any, check: Any) -> None:
    assert check(strategic_merge_patch(POD_TEMPLATE, patch))


def test_strategic_merge_does_not_mutate_the_target() -> None:
    before = repr(POD_TEMPLATE)
    strategic_merge_patch(
        POD_TEMPLATE, {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "z"}]}}}}
    )
    assert repr(POD_TEMPLATE) == before


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        ([{"op": "add", "path": "/b", "value": 2}], {"a": {"x": 1}, "l": [1, 2], "b": 2}),
        ([{"op": "remove", "path": "/a/x"}], {"a": {}, "l": [1, 2]}),
        ([{"op": "replace", "path": "/l/0", "value": 9}], {"a": {"x": 1}, "l": [9, 2]}),
        ([{"op": "add", "path": "/l/-", "value": 3}], {"a": {"x": 1}, "l": [1, 2, 3]}),
        ([{"op": "move", "from": "/a/x", "path": "/y"}], {"a": {}, "l": [1, 2], "y": 1}),
        ([{"op": "copy", "from": "/a", "path": "/c"}], {"a": {"x": 1}, "l": [1, 2], "c": {"x": 1}}),
        ([{"op": "test", "path": "/a/x", "value": 1}], {"a": {"x": 1}, "l": [1, 2]}),
        ([{"op": "add", "path": "/a~1b", "value": 1}], {"a": {"x": 1}, "l": [1, 2], "a/b": 1}),
    ],
)
def test_json_patch(ops: list[dict[str, Any]], expected: Any) -> None:
    assert json_patch({"a": {"x": 1}, "l": [1, 2]}, ops) == expected


@pytest.mark.parametrize(
    ("ops", "message"),
    [
        ([{"op": "test", "path": "/a/x", "value": 2}], "testing value /a/x failed"),
        ([{"op": "remove", "path": "/nope"}], "unable to remove nonexistent key: nope"),
        ([{"op": "replace", "path": "/no/where", "value": 1}], "doc is missing path"),
        ([{"op": "frobnicate", "path": "/a"}], "unexpected operation 'frobnicate'"),
        ([{"op": "add", "path": "/l/7", "value": 1}], "array index out of bounds"),
    ],
)
def test_json_patch_errors(ops: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(PatchError) as err:
        json_patch({"a": {"x": 1}, "l": [1, 2]}, ops)
    assert message in str(err.value)
