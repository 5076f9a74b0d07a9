"""KV reads against the real OpenBao: kv-v1, kv-v2 with version pins, mount detection, errors."""

from __future__ import annotations

from collections.abc import Callable

import hvac
import pytest

from csi_vso.operator.vault import VaultDenied, VaultInvalid, VaultNotFound, VaultSession
from tests.operator.vault.conftest import AppRole, configure_approle


@pytest.fixture
def kv_setup(root: hvac.Client, unique_path: str) -> tuple[AppRole, str, str]:
    v1, v2 = f"{unique_path}-kv1", f"{unique_path}-kv2"
    root.sys.enable_secrets_engine("kv", path=v1, options={"version": "1"})
    root.sys.enable_secrets_engine("kv", path=v2, options={"version": "2"})
    root.write(f"{v1}/app/config", username="alice", password="v1-pass-1")
    root.secrets.kv.v2.create_or_update_secret(
        mount_point=v2, path="app/config", secret={"password": "first"}
    )
    root.secrets.kv.v2.create_or_update_secret(
        mount_point=v2, path="app/config", secret={"password": "second"}
    )
    root.secrets.kv.v2.create_or_update_secret(mount_point=v2, path="app/other", secret={"x": "y"})
    root.sys.enable_secrets_engine("transit", path=f"{unique_path}-transit")
    policy = f"""
path "{v1}/app/*" {{ capabilities = ["read"] }}
path "{unique_path}-transit/*" {{ capabilities = ["read"] }}
path "{v2}/data/app/config" {{ capabilities = ["read"] }}
"""
    return configure_approle(root, prefix=unique_path, policy_hcl=policy), v1, v2


def test_kv_v1_read(
    kv_setup: tuple[AppRole, str, str], session_for: Callable[[AppRole], VaultSession]
) -> None:
    approle, v1, _ = kv_setup
    secret = session_for(approle).read_kv(v1, "app/config", kv_version=1)
    assert dict(secret.data) == {"username": "alice", "password": "v1-pass-1"}
    assert secret.version is None
    assert "v1-pass-1" not in repr(secret)


def test_kv_v2_latest_and_pinned_versions(
    kv_setup: tuple[AppRole, str, str], session_for: Callable[[AppRole], VaultSession], root: hvac.Client
) -> None:
    approle, _, v2 = kv_setup
    session = session_for(approle)
    latest = session.read_kv(v2, "app/config", kv_version=2)
    assert (dict(latest.data), latest.version) == ({"password": "second"}, 2)
    pinned = session.read_kv(v2, "app/config", kv_version=2, version=1)
    assert (dict(pinned.data), pinned.version) == ({"password": "first"}, 1)
    root.secrets.kv.v2.delete_secret_versions(mount_point=v2, path="app/config", versions=[1])
    with pytest.raises(VaultNotFound, match="this version was deleted"):
        session.read_kv(v2, "app/config", kv_version=2, version=1)


def test_kv_errors_are_typed_with_context(
    kv_setup: tuple[AppRole, str, str], session_for: Callable[[AppRole], VaultSession]
) -> None:
    approle, v1, v2 = kv_setup
    session = session_for(approle)
    with pytest.raises(VaultNotFound) as missing:
        session.read_kv(v1, "app/missing", kv_version=1)
    assert f"/v1/{v1}/app/missing" in str(missing.value)
    with pytest.raises(
        VaultDenied, match=rf"read_kv .*/v1/{v2}/data/app/other: permission denied \(HTTP 403\)"
    ):
        session.read_kv(v2, "app/other", kv_version=2)
    with pytest.raises(VaultInvalid, match="kv-v1 has no versions to pin"):
        session.read_kv(v1, "app/config", kv_version=1, version=3)


def test_detect_kv_version_like_the_cli(
    kv_setup: tuple[AppRole, str, str], session_for: Callable[[AppRole], VaultSession], unique_path: str
) -> None:
    approle, v1, v2 = kv_setup
    session = session_for(approle)
    assert session.detect_kv_version(v1) == 1
    assert session.detect_kv_version(v2) == 2
    assert session.mount_info(f"{v2}/app/config").path == f"{v2}/"
    with pytest.raises(VaultInvalid, match="is a 'transit' engine, not a KV store"):
        session.detect_kv_version(f"{unique_path}-transit")
