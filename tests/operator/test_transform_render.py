"""Rendering a plan into Secret data (VSO's shape), with the project's Go template engine."""

from __future__ import annotations

import json
from typing import Any

import pytest

from csi_vso.operator.transform.gather import KeyedTemplate, Plan, TransformError
from csi_vso.operator.transform.render import MAX_SECRET_BYTES, check_secret_transformation, secret_data

SECRETS = {"username": "app", "password": "hunter22", "port": 5432, "tags": ["a", "b"]}
RAW = {"data": SECRETS, "metadata": {"version": 3}}


def plan(
    templates: dict[str, str] | None = None, *, sources: dict[str, str] | None = None, **kw: Any
) -> Plan:
    keyed = [KeyedTemplate(key=k, name=f"ns/s/{k}", text=t) for k, t in (templates or {}).items()]
    keyed += [KeyedTemplate(key="", name=n, text=t) for n, t in (sources or {}).items()]
    return Plan(
        templates=tuple(sorted(keyed, key=KeyedTemplate.order)),
        includes=kw.get("includes", ()),
        excludes=kw.get("excludes", ()),
        exclude_raw=kw.get("exclude_raw", False),
        annotations=kw.get("annotations", {}),
        labels=kw.get("labels", {}),
    )


def test_without_a_plan_the_data_is_rendered_as_before() -> None:
    assert secret_data(None, secrets=SECRETS, raw=RAW) == {
        "username": b"app",
        "password": b"hunter22",
        "port": b"5432",
        "tags": b'["a","b"]',
    }


def test_templates_see_secrets_metadata_annotations_and_labels() -> None:
    p = plan(
        {
            "all": "{{ .Secrets.username }} v{{ .Metadata.version }} "
            '{{ get .Annotations "host" }} {{ .Labels.app }}',
            "user": '{{ template "u" . }}',
        },
        sources={"helpers": '{{ define "u" }}<{{ .Secrets.username }}>{{ end }}'},
        annotations={"host": "db"},
        labels={"app": "web"},
        excludes=("^pass",),
        includes=("^(user|port)",),
    )
    data = secret_data(p, secrets=SECRETS, raw=RAW, metadata=RAW["metadata"])
    assert (
        data.pop("_raw") == b'{"data":{"password":"hunter22","port":5432,"tags":["a","b"],"username":"app"},'
        b'"metadata":{"version":3}}'
    )
    assert data == {"all": b"app v3 db web", "user": b"<app>", "username": b"app", "port": b"5432"}


def test_templates_win_over_source_keys_and_exclude_raw_drops_raw() -> None:
    data = secret_data(plan({"username": "override"}, exclude_raw=True), secrets=SECRETS, raw=RAW)
    assert data["username"] == b"override" and "_raw" not in data


@pytest.mark.parametrize(
    ("p", "secrets", "reason", "message"),
    [
        (plan({"_raw": "x"}), SECRETS, "TransformationError", "key '_raw' not permitted"),
        (plan({}), {**SECRETS, "_raw": "x"}, "TransformationError", "key '_raw' not permitted"),
        (plan({"k": "{{ .Secrets.password"}), SECRETS, "TemplateError", "template: ns/s/k:1:"),
        (plan({"k": "{{ index .Secrets.tags 5 }}"}), SECRETS, "TemplateError", "template: ns/s/k:1:"),
        (plan({}), {"bad/key": "v"}, "InvalidSecretData", "'bad/key'"),
        # VSO's data is a struct: a misspelt field is an error, not "<no value>".
        (plan({"k": "{{ .Secret.password }}"}), SECRETS, "TemplateError", "can't evaluate field Secret"),
        (plan({"big": '{{ repeat 600000 "ab" }}'}), SECRETS, None, None),
    ],
)
def test_errors_name_the_template_and_never_a_value(
    p: Plan, secrets: dict[str, Any], reason: str | None, message: str | None
) -> None:
    with pytest.raises(TransformError) as caught:
        secret_data(p, secrets=secrets, raw=RAW)
    if reason is not None:
        assert caught.value.reason == reason
        assert message is not None and message in str(caught.value)
    assert "hunter22" not in str(caught.value)


def test_a_filtered_out_key_that_kubernetes_would_refuse_is_no_error() -> None:
    data = secret_data(
        plan({}, excludes=("/",), exclude_raw=True), secrets={"bad/key": "v", "ok": "w"}, raw={}
    )
    assert data == {"ok": b"w"}


def test_rendered_data_is_bounded() -> None:
    """Each template's output is bounded by the engine; the whole Secret by the API server's limit."""
    with pytest.raises(TransformError) as caught:
        secret_data(
            plan(
                {"a": "{{ .Secrets.blob }}", "b": "{{ .Secrets.blob }}"}, exclude_raw=True, excludes=(".*",)
            ),
            secrets={"blob": "x" * (MAX_SECRET_BYTES // 2 + 1)},
            raw={},
        )
    assert f"at most {MAX_SECRET_BYTES}" in str(caught.value)


def test_a_secret_transformation_is_checked_template_by_template() -> None:
    obj: dict[str, Any] = {
        "metadata": {"namespace": "ns", "name": "st"},
        "spec": {"templates": {"ok": {"text": "{{ .Secrets.a }}"}, "bad": {"text": "x\n {{ if }}"}}},
    }
    with pytest.raises(TransformError, match=r"^template: ns/st/bad:2:"):
        check_secret_transformation(obj)
    obj["spec"]["templates"].pop("bad")
    obj["spec"]["sourceTemplates"] = [{"text": "{{ nosuchfunc }}"}]
    with pytest.raises(TransformError, match=r"ns/st/0:1: function \"nosuchfunc\" not defined"):
        check_secret_transformation(obj)
    assert json.dumps(obj)  # unchanged, still serialisable


def test_one_call_for_kinds_with_their_own_rendering() -> None:
    """What VaultPKISecret calls on Vault's answer: None keeps its own rendering."""
    from csi_vso.operator.transform.apply import apply_transformation
    from csi_vso.operator.transform.spec import parse_transformation

    obj: dict[str, Any] = {"metadata": {"namespace": "ns", "name": "cert"}}
    answer = {"certificate": "CERT", "private_key": "KEY", "serial_number": "01:02"}
    assert (
        apply_transformation(obj, None, lambda ns, n: None, exclude_raw=False, secrets=answer, raw=answer)
        is None
    )
    transformation = parse_transformation(
        {
            "templates": {"bundle.pem": {"text": "{{ .Secrets.certificate }}\n{{ .Secrets.private_key }}"}},
            "includes": ["^serial"],
        },
        "t",
        [],
    )
    done = apply_transformation(
        obj, transformation, lambda ns, n: None, exclude_raw=True, secrets=answer, raw=answer
    )
    assert done is not None and len(done.digest) == 32
    assert done.data == {"bundle.pem": b"CERT\nKEY", "serial_number": b"01:02"}


def test_numbers_print_as_vault_sent_them_and_binary_stays_binary() -> None:
    p = plan(
        {"n": '{{ .Secrets.port }} {{ printf "%v" .Secrets.ratio }}', "bin": "{{ b64dec .Secrets.blob }}"},
        exclude_raw=True,
        excludes=(".*",),
    )
    data = secret_data(p, secrets={"port": 5432, "ratio": 0.5, "blob": "/wA="}, raw={})
    assert data == {"n": b"5432 0.5", "bin": b"\xff\x00"}
