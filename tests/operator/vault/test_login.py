"""Logins against the real OpenBao: appRole, jwt (a locally generated key pair), token upkeep,
re-login after revocation and expiry, and the session cache's keying."""

from __future__ import annotations

import time
from collections.abc import Callable

import hvac
import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from csi_vso.operator.vault import (
    AuthSettings,
    ConnectionSettings,
    SessionCache,
    SessionKey,
    VaultDenied,
    VaultSession,
    VaultUnavailable,
)
from tests.operator.vault.conftest import AppRole, configure_approle


def _kv_with_policy(root: hvac.Client, prefix: str) -> tuple[str, str]:
    mount = f"{prefix}-kv"
    root.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    root.secrets.kv.v2.create_or_update_secret(mount_point=mount, path="app", secret={"k": "value-1"})
    return mount, f'path "{mount}/data/*" {{ capabilities = ["read"] }}'


def test_approle_login_and_bad_secret_id(
    root: hvac.Client, unique_path: str, session_for: Callable[[AppRole], VaultSession]
) -> None:
    mount, policy = _kv_with_policy(root, unique_path)
    approle = configure_approle(root, prefix=unique_path, policy_hcl=policy)
    session = session_for(approle)
    assert session.read_kv(mount, "app", kv_version=2).data == {"k": "value-1"}
    assert session.login_count == 1
    state = session.token_state()
    assert state.logged_in and state.renewable and state.ttl_remaining is not None

    approle.secret_id = "sid-wrong"
    with pytest.raises(VaultDenied, match=rf"login .*/v1/auth/{approle.mount}/login: .*invalid"):
        session_for(approle).login()


def test_jwt_login_with_local_key_pair(
    root: hvac.Client, unique_path: str, connection: ConnectionSettings
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    mount_kv, policy = _kv_with_policy(root, unique_path)
    root.sys.create_or_update_policy(name=f"{unique_path}-jwt", policy=policy)
    jwt_mount = f"{unique_path}-jwt"
    root.sys.enable_auth_method("jwt", path=jwt_mount)
    root.write(f"auth/{jwt_mount}/config", jwt_validation_pubkeys=[public_pem], bound_issuer="csi-vso-test")
    root.write(
        f"auth/{jwt_mount}/role/reader",
        role_type="jwt",
        bound_audiences=["vault"],
        user_claim="sub",
        token_policies=[f"{unique_path}-jwt"],
        token_ttl="10m",
    )

    def mint(audience: str) -> str:
        now = int(time.time())
        claims = {"iss": "csi-vso-test", "sub": "system:serviceaccount:ns:app", "aud": audience}
        return pyjwt.encode({**claims, "iat": now, "nbf": now, "exp": now + 600}, key, algorithm="RS256")

    minted: list[str] = []

    def source() -> str:
        minted.append(mint("vault"))
        return minted[-1]

    auth = AuthSettings(method="jwt", mount=jwt_mount, role="reader")
    session = VaultSession(connection=connection, auth=auth, jwt_source=source)
    try:
        assert session.read_kv(mount_kv, "app", kv_version=2).data == {"k": "value-1"}
        assert len(minted) == 1  # the source is asked once per login
    finally:
        session.close()

    wrong = VaultSession(connection=connection, auth=auth, jwt_source=lambda: mint("someone-else"))
    try:
        with pytest.raises(VaultDenied) as denied:
            wrong.login()
        assert "audience" in str(denied.value)
    finally:
        wrong.close()


def test_jwt_source_failure_is_temporary_and_names_no_content(connection: ConnectionSettings) -> None:
    def broken() -> str:
        raise RuntimeError("kubernetes said something with a token-ish secret-xyz inside")

    auth = AuthSettings(method="kubernetes", role="r")
    session = VaultSession(connection=connection, auth=auth, jwt_source=broken)
    try:
        with pytest.raises(
            VaultUnavailable, match=r"could not obtain a JWT to log in \(RuntimeError\)"
        ) as err:
            session.login()
        assert "secret-xyz" not in str(err.value)
    finally:
        session.close()


def test_relogin_after_token_revocation(
    root: hvac.Client, unique_path: str, session_for: Callable[[AppRole], VaultSession]
) -> None:
    mount, policy = _kv_with_policy(root, unique_path)
    approle = configure_approle(root, prefix=unique_path, policy_hcl=policy)
    session = session_for(approle)
    session.read_kv(mount, "app", kv_version=2)
    root.sys.revoke_prefix(f"auth/{approle.mount}/")  # every token this mount issued
    assert session.read_kv(mount, "app", kv_version=2).data == {"k": "value-1"}  # 403 -> login -> retry
    assert session.login_count == 2


def test_relogin_after_expiry_and_renewal_before_it(
    root: hvac.Client, unique_path: str, session_for: Callable[[AppRole], VaultSession]
) -> None:
    mount, policy = _kv_with_policy(root, unique_path)
    approle = configure_approle(
        root, prefix=unique_path, policy_hcl=policy, token_ttl="3s", token_max_ttl="1m"
    )
    session = session_for(approle)
    session.login()
    time.sleep(2.2)  # past two thirds of the TTL
    session.maintain()
    assert session.login_count == 1  # renewed, not replaced
    state = session.token_state()
    assert state.ttl_remaining is not None and state.ttl_remaining > 2.5

    time.sleep(3.2)  # now really expired in OpenBao
    assert session.read_kv(mount, "app", kv_version=2).data == {"k": "value-1"}
    assert session.login_count == 2


def test_truncated_token_renewal_logs_in_again(
    root: hvac.Client, unique_path: str, session_for: Callable[[AppRole], VaultSession]
) -> None:
    _, policy = _kv_with_policy(root, unique_path)
    approle = configure_approle(
        root, prefix=unique_path, policy_hcl=policy, token_ttl="3s", token_max_ttl="3s"
    )
    session = session_for(approle)
    session.login()
    time.sleep(2.2)
    session.maintain()  # renew-self can grant only ~0.8s of the 3s: start a fresh token
    assert session.login_count == 2


def test_cache_reuses_per_key_and_replaces_older_generations(
    root: hvac.Client, unique_path: str, connection: ConnectionSettings
) -> None:
    _, policy = _kv_with_policy(root, unique_path)
    approle = configure_approle(root, prefix=unique_path, policy_hcl=policy)
    cache = SessionCache(interval=0.2)
    cache.start()
    try:
        key1 = SessionKey("auth-uid", 1, "conn-uid", 1)
        first = cache.get(key1, connection=connection, auth=approle.auth())
        assert cache.get(key1, connection=connection, auth=approle.auth()) is first
        key2 = SessionKey("auth-uid", 2, "conn-uid", 1)
        second = cache.get(key2, connection=connection, auth=approle.auth())
        assert second is not first
        assert cache.keys() == [key2]
        other = SessionKey("auth-uid", 2, "conn-uid", 1, service_account_uid="sa-2")
        cache.get(other, connection=connection, auth=approle.auth())
        assert cache.evict(lambda k: k.auth_uid == "auth-uid") == 2
        assert cache.keys() == []

        bad = AuthSettings(
            method="appRole", mount=approle.mount, app_role_id="nope", app_role_secret_id="nope"
        )
        with pytest.raises(VaultDenied):
            cache.get(SessionKey("a", 1, "c", 1), connection=connection, auth=bad)
        assert cache.keys() == []  # failed logins are not cached
    finally:
        cache.close()


@pytest.mark.parametrize("interval", [0.2, 60.0], ids=["tick-shorter-than-ttl", "tick-longer-than-ttl"])
def test_cache_thread_keeps_tokens_alive(
    root: hvac.Client, unique_path: str, connection: ConnectionSettings, interval: float
) -> None:
    """Without any request, the upkeep thread renews a 3 s token so it outlives its first TTL.
    It wakes at the token's own renewal time, not only on its tick: with a 60 s tick the token
    would otherwise expire (and Vault revoke every lease it issued) before the first tick."""
    mount, policy = _kv_with_policy(root, unique_path)
    approle = configure_approle(
        root, prefix=unique_path, policy_hcl=policy, token_ttl="3s", token_max_ttl="1m"
    )
    cache = SessionCache(interval=interval)
    cache.start()
    try:
        session = cache.get(SessionKey("a", 1, "c", 1), connection=connection, auth=approle.auth())
        first = session.token_accessor
        assert min(interval, 0.5) <= cache.next_wait() <= 2.0  # at most two thirds of 3 s
        time.sleep(4.0)
        root.write("auth/token/lookup-accessor", accessor=first)  # raises if it expired
        assert session.read_kv(mount, "app", kv_version=2).data == {"k": "value-1"}
        assert session.login_count == 1 and session.token_accessor == first  # renewed, not replaced
    finally:
        cache.close()


def test_relogin_is_announced_and_the_old_token_can_be_looked_up_by_accessor(
    root: hvac.Client, unique_path: str, connection: ConnectionSettings
) -> None:
    """Leases die with their token: the caller learns of a re-login and can ask how long the old one lives."""
    from csi_vso.operator.vault import VaultNotFound

    _, policy = _kv_with_policy(root, unique_path)
    policy += '\npath "auth/token/lookup-accessor" { capabilities = ["update"] }'
    approle = configure_approle(root, prefix=unique_path, policy_hcl=policy, token_ttl="1h")
    relogins: list[int] = []
    session = VaultSession(connection=connection, auth=approle.auth(), on_relogin=lambda: relogins.append(1))
    try:
        session.login()
        first = session.token_accessor
        assert first and relogins == []  # the first login is no news
        session.login()
        second = session.token_accessor
        assert second != first and relogins == [1]
        assert 3500 < session.lookup_token_ttl(first) <= 3600  # still alive, nobody renews it
        root.write("auth/token/revoke-accessor", accessor=first)
        with pytest.raises(VaultNotFound, match="no such token"):
            session.lookup_token_ttl(first)
    finally:
        session.close()


def test_token_lookup_denied_by_policy_does_not_abandon_the_token(
    root: hvac.Client, unique_path: str, session_for: Callable[[AppRole], VaultSession]
) -> None:
    """Without auth/token/lookup-accessor in the policy the lookup fails, and the token (with its
    leases) is kept: a re-login here would doom every lease the current token issued."""
    _, policy = _kv_with_policy(root, unique_path)
    approle = configure_approle(root, prefix=unique_path, policy_hcl=policy)
    session = session_for(approle)
    session.login()
    with pytest.raises(VaultDenied):
        session.lookup_token_ttl("some-accessor")
    assert session.login_count == 1
