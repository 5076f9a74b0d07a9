"""Pure parts of the Vault layer: settings validation, login bodies, answer parsing, error mapping."""

from __future__ import annotations

from typing import Any

import hvac.exceptions
import pytest
import requests

from csi_vso.operator.vault import (
    AuthSettings,
    ConnectionSettings,
    RequestContext,
    VaultDenied,
    VaultInvalid,
    VaultNotFound,
    VaultUnavailable,
)
from csi_vso.operator.vault.errors import translate
from csi_vso.operator.vault.login import build_login
from csi_vso.operator.vault.model import parse_kv, parse_mount, parse_token

CTX = RequestContext(operation="read_kv", address="https://vault:8200", path="kv/data/app", mount="kv")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "kubernetes"}, "kubernetes login needs a role"),
        ({"method": "jwt"}, "jwt login needs a role"),
        ({"method": "appRole"}, "appRole login needs a role id; appRole login needs a secret id"),
        ({"method": "ldap"}, "auth method 'ldap' is not one of kubernetes, jwt, appRole"),
        (
            {"method": "kubernetes", "role": "r", "token_expiration_seconds": 599},
            "token expiration must be 600 to 3600 seconds, got 599",
        ),
    ],
)
def test_auth_settings_problems(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(") + "$"):
        AuthSettings(**kwargs)


@pytest.mark.parametrize(
    ("method", "mount", "expected"),
    [
        ("kubernetes", "", "kubernetes"),
        ("jwt", "", "jwt"),
        ("appRole", "", "approle"),
        ("jwt", "/oidc/", "oidc"),
    ],
)
def test_auth_default_mounts(method: Any, mount: str, expected: str) -> None:
    auth = AuthSettings(method=method, mount=mount, role="r", app_role_id="i", app_role_secret_id="s")
    assert auth.mount == expected


def test_secret_fields_hidden_from_repr() -> None:
    auth = AuthSettings(method="appRole", app_role_id="id", app_role_secret_id="the-secret-id")
    conn = ConnectionSettings(
        address="https://v:8200/",
        ca_cert_pem="-----BEGIN CERTIFICATE-----",
        headers={"Authorization": "Bearer hdr"},
    )
    assert "the-secret-id" not in repr(auth)
    assert "hdr" not in repr(conn)
    assert "BEGIN" not in repr(conn)
    assert conn.address == "https://v:8200"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"address": "vault:8200"}, "must start with http:// or https://"),
        ({"address": "http://v", "timeout": 0}, "positive"),
    ],
)
def test_connection_settings_rejects(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ConnectionSettings(**kwargs)


def test_login_bodies() -> None:
    k8s = AuthSettings(method="kubernetes", role="app", params={"role": "overridden", "extra": "1"})
    assert build_login(k8s, "jwt-1").body == {"role": "app", "jwt": "jwt-1", "extra": "1"}
    assert build_login(k8s, "jwt-1").path == "auth/kubernetes/login"
    approle = AuthSettings(method="appRole", mount="ar", app_role_id="id", app_role_secret_id="sid")
    assert build_login(approle, None).body == {"role_id": "id", "secret_id": "sid"}
    assert "sid" not in repr(build_login(approle, None))
    with pytest.raises(ValueError, match="kubernetes login needs a JWT and the jwt source returned none"):
        build_login(k8s, "")


def _hvac(
    cls: type[hvac.exceptions.VaultError], errors: list[str] | None = None, json: Any = None
) -> Exception:
    return cls("body with secret s3cr3t", errors=errors, method="get", url="u", text="s3cr3t", json=json)


@pytest.mark.parametrize(
    ("exc", "context", "kind", "message"),
    [
        (
            _hvac(hvac.exceptions.Forbidden, ["permission denied"]),
            CTX,
            VaultDenied,
            "permission denied (HTTP 403)",
        ),
        (_hvac(hvac.exceptions.Unauthorized), CTX, VaultDenied, "permission denied (HTTP 401)"),
        (_hvac(hvac.exceptions.InvalidPath), CTX, VaultNotFound, "not found (HTTP 404)"),
        (
            _hvac(hvac.exceptions.InvalidPath, json={"data": {"metadata": {"destroyed": True}}}),
            CTX,
            VaultNotFound,
            "this version was destroyed",
        ),
        (_hvac(hvac.exceptions.InvalidRequest, ["bad"]), CTX, VaultInvalid, "rejected (HTTP 400): bad"),
        (
            _hvac(hvac.exceptions.InvalidRequest, ["invalid lease"]),
            CTX,
            VaultNotFound,
            "no such lease",
        ),
        (
            _hvac(hvac.exceptions.InvalidRequest, ["invalid role or secret ID"]),
            RequestContext(operation="login", address="https://vault:8200", path="auth/approle/login"),
            VaultDenied,
            "login rejected (HTTP 400): invalid role or secret ID",
        ),
        (_hvac(hvac.exceptions.InternalServerError), CTX, VaultUnavailable, "(HTTP 500)"),
        (
            _hvac(hvac.exceptions.VaultDown, ["Vault is sealed"]),
            CTX,
            VaultUnavailable,
            "(HTTP 503): Vault is sealed",
        ),
        (_hvac(hvac.exceptions.RateLimitExceeded), CTX, VaultUnavailable, "(HTTP 429)"),
        (_hvac(hvac.exceptions.UnexpectedError), CTX, VaultInvalid, "unexpected answer"),
        (
            requests.exceptions.ConnectionError("s3cr3t"),
            CTX,
            VaultUnavailable,
            "unreachable (ConnectionError)",
        ),
        (requests.exceptions.ReadTimeout("s3cr3t"), CTX, VaultUnavailable, "unreachable (ReadTimeout)"),
        (requests.exceptions.SSLError("s3cr3t"), CTX, VaultInvalid, "TLS verification failed (SSLError)"),
        (RuntimeError("s3cr3t"), CTX, VaultUnavailable, "unexpected failure (RuntimeError)"),
    ],
)
def test_translate(exc: Exception, context: RequestContext, kind: type[Exception], message: str) -> None:
    err = translate(exc, context)
    assert type(err) is kind
    assert message in str(err)
    assert str(err).startswith(f"{context.operation} https://vault:8200/v1/{context.path}")
    assert "s3cr3t" not in str(err)
    assert err.temporary is (kind is VaultUnavailable)


def test_parse_kv_v2_and_v1() -> None:
    body = {
        "data": {"data": {"a": "1"}, "metadata": {"version": 3, "created_time": "t", "custom_metadata": None}}
    }
    secret = parse_kv(body, kv_version=2, context=CTX)
    assert (dict(secret.data), secret.version, secret.created_time) == ({"a": "1"}, 3, "t")
    assert dict(parse_kv({"data": {"a": "1"}}, kv_version=1, context=CTX).data) == {"a": "1"}
    with pytest.raises(VaultInvalid, match="answer has no data object"):
        parse_kv({"data": None}, kv_version=1, context=CTX)


def test_parse_mount_and_token() -> None:
    assert (
        parse_mount(
            {"data": {"type": "kv", "path": "secret/", "options": {"version": "2"}}}, context=CTX
        ).kv_version
        == 2
    )
    assert parse_mount({"data": {"type": "kv", "path": "old/", "options": None}}, context=CTX).kv_version == 1
    assert parse_mount({"data": {"type": "pki", "path": "pki/"}}, context=CTX).kv_version is None
    with pytest.raises(VaultNotFound, match="no secrets engine mounted there"):
        parse_mount({"data": {}}, context=CTX)
    token = parse_token(
        {"auth": {"client_token": "hvs.x", "accessor": "a", "lease_duration": 60, "renewable": True}},
        now=10.0,
        context=CTX,
    )
    assert (token.ttl, token.renewable, token.expires_at()) == (60, True, 70.0)
    assert "hvs.x" not in repr(token)
    with pytest.raises(VaultInvalid, match="answer has no client token"):
        parse_token({"auth": {"client_token": ""}}, now=0, context=CTX)
