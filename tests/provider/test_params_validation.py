"""Parsing and validating Mount requests: tables of good and bad inputs, every problem named."""

from __future__ import annotations

import json
import re

import grpc
import pytest

from csi_vso.provider.errors import MAX_WIRE_MESSAGE, InvalidArgument, NotFound, status_for, wire_length
from csi_vso.provider.params import parse_request
from csi_vso.provider.validation import MountSpec, ObjectSpec, WriteMode, validate

POD = {
    "csi.storage.k8s.io/pod.name": "app-0",
    "csi.storage.k8s.io/pod.namespace": "team-a",
    "csi.storage.k8s.io/pod.uid": "uid-1",
    "csi.storage.k8s.io/serviceAccount.name": "app",
    "csi.storage.k8s.io/ephemeral": "true",
    "secretProviderClass": "db",
}


def attrs(objects: object = None, **extra: str) -> str:
    out: dict[str, object] = dict(POD)
    if objects is not None:
        out["objects"] = objects if isinstance(objects, str) else json.dumps(objects)
    out.update(extra)
    return json.dumps(out)


def spec_of(attributes: str, permission: str = "420", secrets: str = "null") -> MountSpec:
    return validate(
        parse_request(attributes=attributes, secrets=secrets, target_path="/var/lib/t", permission=permission)
    )


def problems_of(
    attributes: str, permission: str = "420", secrets: str = "null", target: str = "/t"
) -> list[str]:
    with pytest.raises(InvalidArgument) as err:
        validate(
            parse_request(attributes=attributes, secrets=secrets, target_path=target, permission=permission)
        )
    return list(err.value.problems)


YAML_OBJECTS = """
- secretName: db
  key: password
  fileName: db/password
  mode: "0600"
- secretName: shared
  secretNamespace: platform
"""


@pytest.mark.parametrize(
    ("attributes", "permission", "expected_objects", "expected_mode", "expected_permission"),
    [
        (
            attrs([{"secretName": "db", "key": "password"}]),
            "420",
            (ObjectSpec("team-a", "db", "password", None, None),),
            WriteMode.PROVIDER,
            0o644,
        ),
        (
            attrs([{"secretName": "db"}], writeMode="driver"),
            "256",
            (ObjectSpec("team-a", "db", None, None, None),),
            WriteMode.DRIVER,
            0o400,
        ),
        (
            attrs(YAML_OBJECTS, writeMode="provider"),
            "",
            (
                ObjectSpec("team-a", "db", "password", "db/password", 0o600),
                ObjectSpec("platform", "shared", None, None, None),
            ),
            WriteMode.PROVIDER,
            0o644,
        ),
        (
            attrs(
                [
                    {"secretName": "db", "key": "k", "mode": "0o440"},
                    {"secretName": "db", "key": "j", "mode": "7"},
                ]
            ),
            "420",
            (ObjectSpec("team-a", "db", "k", None, 0o440), ObjectSpec("team-a", "db", "j", None, 0o7)),
            WriteMode.PROVIDER,
            0o644,
        ),
    ],
    ids=["one-key-json", "all-keys-driver", "yaml-nested-mode", "octal-spellings"],
)
def test_good_requests(
    attributes: str,
    permission: str,
    expected_objects: tuple[ObjectSpec, ...],
    expected_mode: WriteMode,
    expected_permission: int,
) -> None:
    spec = spec_of(attributes, permission)
    assert spec.objects == expected_objects
    assert spec.write_mode is expected_mode
    assert spec.permission == expected_permission
    assert (spec.pod.namespace, spec.pod.name, spec.pod.uid, spec.pod.service_account) == (
        "team-a",
        "app-0",
        "uid-1",
        "app",
    )
    assert spec.secret_provider_class == "db"


def test_tokens_are_parsed_by_audience_and_hidden_from_repr() -> None:
    tokens = json.dumps({"csi-vso": {"token": "tok-123", "expirationTimestamp": "2030-01-01T00:00:00Z"}})
    spec = spec_of(attrs([{"secretName": "db"}], **{"csi.storage.k8s.io/serviceAccount.tokens": tokens}))
    assert spec.pod.tokens == {"csi-vso": "tok-123"}
    assert "tok-123" not in repr(spec)


@pytest.mark.parametrize(
    ("attributes", "permission", "secrets", "expected"),
    [
        ("{not json", "420", "null", ["attributes is not valid JSON (Expecting property name"]),
        ("[1]", "420", "null", ["attributes must be a JSON object of strings"]),
        (attrs({"secretName": "db"}), "420", "null", ["objects must be a list, not a mapping"]),
        (attrs("secretName: db"), "420", "null", ["objects must be a list, not a mapping"]),
        (attrs("- [unclosed"), "420", "null", ["objects is neither JSON nor YAML ("]),
        (attrs(), "420", "null", ["objects is missing"]),
        (attrs([]), "420", "null", ["objects is empty: nothing to mount"]),
        (attrs(["db"]), "420", "null", ["objects[0] must be a mapping, not a string"]),
        (attrs([{"key": "password"}]), "420", "null", ["objects[0].secretName is required"]),
        (
            attrs([{"secretName": "db", "key": "p", "fileName": "/etc/passwd"}]),
            "420",
            "null",
            ["objects[0].fileName: path '/etc/passwd' is absolute"],
        ),
        (
            attrs([{"secretName": "db", "key": "p", "fileName": "../../etc/passwd"}]),
            "420",
            "null",
            ["objects[0].fileName: path '../../etc/passwd' contains a '..' element"],
        ),
        (
            attrs([{"secretName": "db", "key": "../x"}]),
            "420",
            "null",
            ["objects[0].key: path '../x' contains a '..' element"],
        ),
        (
            attrs([{"secretName": "a", "key": "p", "fileName": "x"}, {"secretName": "b", "key": "x"}]),
            "420",
            "null",
            ["objects[0] and objects[1] both write 'x'"],
        ),
        (
            attrs([{"secretName": "db", "key": "p", "mode": "0999"}]),
            "420",
            "null",
            ['objects[0].mode must be an octal file mode between 0000 and 0777, such as "0600"'],
        ),
        (
            attrs('[{"secretName": "db", "key": "p", "mode": 600}]'),
            "420",
            "null",
            ['objects[0].mode must be a quoted octal string such as "0600"'],
        ),
        (
            attrs([{"secretName": "db", "secretname": "db"}]),
            "420",
            "null",
            ["objects[0] has unknown key 'secretname' (known: secretName, secretNamespace, key, fileName"],
        ),
        (
            attrs([{"secretName": "db", "fileName": "x"}]),
            "420",
            "null",
            ["objects[0].fileName needs key (without it every key becomes its own file)"],
        ),
        (
            attrs([{"secretName": "db"}], writeMode="kubelet"),
            "420",
            "null",
            ["writeMode must be 'provider' or 'driver'"],
        ),
        (
            attrs([{"secretName": "db"}]),
            "rw",
            "null",
            ["permission must be a decimal file mode such as 420 (0644)"],
        ),
        (
            attrs([{"secretName": "db"}]),
            "4096",
            "null",
            ["permission must be a file mode between 0 and 511 (0777)"],
        ),
        (attrs([{"secretName": "db"}]), "420", "{oops", ["secrets is not valid JSON"]),
        (attrs([{"secretName": "db"}]), "420", "[1]", ["secrets must be a JSON object or null"]),
        (
            attrs([{"secretName": "db"}], **{"csi.storage.k8s.io/serviceAccount.tokens": "{x"}),
            "420",
            "null",
            ["csi.storage.k8s.io/serviceAccount.tokens is not valid JSON"],
        ),
        (
            json.dumps({"objects": json.dumps([{"secretName": "db"}])}),
            "420",
            "null",
            [
                "attributes lack csi.storage.k8s.io/pod.name (is podInfoOnMount enabled",
                "attributes lack csi.storage.k8s.io/pod.namespace (is podInfoOnMount enabled",
                "attributes lack csi.storage.k8s.io/pod.uid (is podInfoOnMount enabled",
                "attributes lack csi.storage.k8s.io/serviceAccount.name (is podInfoOnMount enabled",
            ],
        ),
    ],
    ids=[
        "attributes-malformed",
        "attributes-not-object",
        "objects-mapping-json",
        "objects-mapping-yaml",
        "objects-bad-yaml",
        "objects-missing",
        "objects-empty",
        "object-not-mapping",
        "missing-secretName",
        "absolute-fileName",
        "dotdot-fileName",
        "dotdot-key",
        "two-objects-one-path",
        "invalid-mode",
        "mode-not-string",
        "unknown-key",
        "fileName-without-key",
        "bad-writeMode",
        "bad-permission",
        "permission-too-big",
        "secrets-malformed",
        "secrets-not-object",
        "tokens-malformed",
        "no-pod-identity",
    ],
)
def test_bad_requests_name_each_problem(
    attributes: str, permission: str, secrets: str, expected: list[str]
) -> None:
    problems = problems_of(attributes, permission, secrets)
    assert len(problems) == len(expected), problems
    for got, want in zip(problems, expected, strict=True):
        assert got.startswith(want), (got, want)


def test_every_problem_is_reported_at_once() -> None:
    objects = [
        {"key": "a"},
        {"secretName": "db", "key": "p", "fileName": "/abs", "mode": "9"},
        {"secretName": "db", "colour": "red"},
    ]
    problems = problems_of(attrs(objects, writeMode="both"), permission="x", target="relative")
    assert problems == [
        "permission must be a decimal file mode such as 420 (0644)",
        "writeMode must be 'provider' or 'driver'",
        "target_path must be an absolute path",
        "objects[0].secretName is required",
        "objects[1].fileName: path '/abs' is absolute",
        'objects[1].mode must be an octal file mode between 0000 and 0777, such as "0600"',
        "objects[2] has unknown key 'colour' (known: secretName, secretNamespace, key, fileName, mode)",
    ]


def test_yaml_error_names_the_position_not_the_text() -> None:
    (problem,) = problems_of(attrs("- secretName: s3cr3t-value\n  key: [unclosed"))
    assert re.search(r"at line \d+ column \d+\)$", problem), problem
    assert "s3cr3t" not in problem
    assert "unclosed" not in problem


def test_yaml_aliases_are_refused() -> None:
    """A pod can set ``objects`` through volumeAttributes: no alias expansion (billion laughs)."""
    bomb = "- &a {secretName: db}\n- *a\n"
    (problem,) = problems_of(attrs(bomb))
    assert problem == "objects is neither JSON nor YAML (YAML aliases are not allowed at line 2 column 3)"


def test_oversized_attributes_are_refused_before_parsing() -> None:
    (problem,) = problems_of(attrs([{"secretName": "db"}], padding="x" * (1024 * 1024)))
    assert problem == "attributes are larger than 1048576 bytes"


def test_token_values_never_appear_in_problems() -> None:
    tokens = json.dumps({"csi-vso": {"token": "tok-SECRET"}, "other": {"token": ""}})
    problems = problems_of(attrs("not: [a list", **{"csi.storage.k8s.io/serviceAccount.tokens": tokens}))
    assert problems[0] == "csi.storage.k8s.io/serviceAccount.tokens['other'] has no token"
    assert not any("tok-SECRET" in p for p in problems)


@pytest.mark.parametrize(
    ("attributes", "problem"),
    [
        (attrs("[" * 100_000 + "]" * 100_000), "objects is nested too deeply"),
        (attrs("- " + "[" * 100_000), "objects is nested too deeply"),
        ('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", "attributes are nested too deeply"),
        (
            attrs([{"secretName": "db"}], **{"csi.storage.k8s.io/serviceAccount.tokens": "[" * 100_000}),
            "csi.storage.k8s.io/serviceAccount.tokens is not valid JSON",
        ),
    ],
    ids=["objects-json", "objects-yaml", "attributes", "tokens"],
)
def test_deep_nesting_is_a_problem_not_a_crash(attributes: str, problem: str) -> None:
    """``objects`` can come from a pod's volumeAttributes: nesting must not raise RecursionError
    (an INTERNAL answer and a thousand-frame traceback logged on every kubelet retry)."""
    assert problem in problems_of(attributes)


def test_status_messages_fit_the_grpc_trailer() -> None:
    code, message = status_for(NotFound("protected Secret ns/" + "é" * 10_000 + " not found"))
    assert code == grpc.StatusCode.NOT_FOUND
    assert wire_length(message) <= MAX_WIRE_MESSAGE < wire_length("é" * 10_000)
    assert message.startswith("protected Secret ns/éé") and message.endswith("... (truncated)")
    short = InvalidArgument(["one", "two"])
    assert status_for(short)[1] == "invalid mount parameters: one; two"
