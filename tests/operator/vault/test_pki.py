"""The Vault layer's PKI calls against a real OpenBao PKI engine: issue, refusals, revoke, no key leaks."""

from __future__ import annotations

import logging
from collections.abc import Callable

import hvac
import pytest

from csi_vso.operator.vault import VaultError, VaultInvalid, VaultSession
from tests.operator.vault.conftest import AppRole, configure_approle


def test_issue_refuse_and_revoke_without_the_key_in_logs_or_errors(
    root: hvac.Client,
    unique_path: str,
    session_for: Callable[[AppRole], VaultSession],
    caplog: pytest.LogCaptureFixture,
) -> None:
    mount = f"{unique_path}-pki"
    root.sys.enable_secrets_engine("pki", path=mount, config={"max_lease_ttl": "87600h"})
    root.write(f"{mount}/root/generate/internal", common_name="layer root", ttl="87600h", key_type="ec")
    root.write(f"{mount}/roles/web", allowed_domains="example.com", allow_subdomains=True, max_ttl="60s")
    policy = f"""
path "{mount}/issue/*" {{ capabilities = ["update"] }}
path "{mount}/revoke" {{ capabilities = ["update"] }}
"""
    session = session_for(configure_approle(root, prefix=unique_path, policy_hcl=policy))
    caplog.set_level(logging.DEBUG)

    request = {"common_name": "a.example.com", "ttl": "30s", "remove_roots_from_chain": True}
    cert = session.issue_certificate(f"{mount}/issue/web", request, mount=mount)
    key = str(cert.data["private_key"])
    assert "PRIVATE KEY" in key and cert.serial_number and cert.expiration > 0
    assert cert.capped_ttl_warning() is None and key not in repr(cert)
    capped = session.issue_certificate(f"{mount}/issue/web", {**request, "ttl": "2h"}, mount=mount)
    assert "maxTTL" in (capped.capped_ttl_warning() or "")

    errors = []
    for path, body in (
        (f"{mount}/issue/nope", request),
        (f"{mount}/issue/web", {**request, "common_name": "a.other.org"}),
    ):
        with pytest.raises(VaultInvalid) as raised:
            session.issue_certificate(path, body, mount=mount)
        errors.append(str(raised.value))
    assert "unknown role" in errors[0] and "not allowed by this role" in errors[1]

    session.revoke_certificate(mount, cert.serial_number)
    assert root.read(f"{mount}/cert/{cert.serial_number}")["data"]["revocation_time"] > 0
    with pytest.raises(VaultError):
        session.revoke_certificate(mount, "00:11:22")  # unknown serial: a typed error, no crash
    everything = caplog.text + "".join(str(vars(r)) for r in caplog.records) + " ".join(errors)
    assert key not in everything and "PRIVATE KEY" not in everything
    assert str(capped.data["private_key"]) not in everything
