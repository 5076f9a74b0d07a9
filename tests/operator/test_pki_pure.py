"""VaultPKISecret pure parts: spec parse (tables), renewal schedule and spread, Secret keys, metrics."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from csi_vso.operator import api
from csi_vso.operator.pkidata import certificate_data
from csi_vso.operator.pkimetrics import CertificateExpiries
from csi_vso.operator.pkiplan import (
    JITTER_FRACTION,
    Cause,
    CertState,
    offset_too_long,
    plan_pki,
    renew_at,
)
from csi_vso.operator.pkispec import parse_pki_secret
from csi_vso.operator.vault.errors import RequestContext, VaultInvalid
from csi_vso.operator.vault.pki import parse_issued

BASE: dict[str, Any] = {"mount": "pki", "role": "web", "destination": {"name": "web-tls"}}


def obj(**spec: Any) -> dict[str, Any]:
    return {"kind": api.PKI_KIND, "metadata": {"name": "x", "namespace": "ns"}, "spec": {**BASE, **spec}}


def test_vso_manifest_parses_into_the_request_vso_sends() -> None:
    spec = parse_pki_secret(
        obj(
            commonName="web.example.com",
            altNames=["a.example.com", "b.example.com"],
            ipSans=["10.0.0.1"],
            uriSans=["spiffe://x/y"],
            otherSans=["1.2.3.4;UTF8:z"],
            userIDs=["u1"],
            ttl="30d",
            format="pem_bundle",
            privateKeyFormat="pkcs8",
            excludeCNFromSans=True,
            issuerRef="default",
            expiryOffset="1h30m",
            revoke=True,
            clear=True,
            destination={"name": "web-tls", "create": True, "type": "kubernetes.io/tls"},
            rolloutRestartTargets=[{"kind": "Deployment", "name": "web"}],
            allowedKubernetesNamespaces=["other"],
        )
    )
    assert spec.issue_path == "pki/issuer/default/issue/web"
    assert dict(spec.request) == {
        "common_name": "web.example.com",
        "alt_names": "a.example.com,b.example.com",
        "ip_sans": "10.0.0.1",
        "uri_sans": "spiffe://x/y",
        "other_sans": "1.2.3.4;UTF8:z",
        "user_ids": "u1",
        "ttl": "30d",
        "format": "pem_bundle",
        "private_key_format": "pkcs8",
        "exclude_cn_from_sans": True,
        "remove_roots_from_chain": True,
    }
    assert spec.expiry_offset == 5400 and spec.revoke and spec.clear and spec.is_tls
    assert spec.access.namespaces == ("other",) and spec.rollout_targets[0].name == "web"
    assert parse_pki_secret(obj()).issue_path == "pki/issue/web"


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"role": None}, "role is required"),
        ({"mount": None}, "mount is required"),
        ({"destination": None}, "destination is required"),
        ({"role": "../sys"}, "role '../sys' must be one path segment"),
        ({"role": "a/b"}, "role 'a/b' must be one path segment"),
        ({"issuerRef": ".."}, "issuerRef '..' must be one path segment"),
        ({"mount": "pki/../sys"}, "mount 'pki/../sys' must be a path of plain segments"),
        ({"expiryOffset": "soon"}, "expiryOffset: 'soon' is not a duration"),
        ({"ttl": "forever"}, "ttl: 'forever' is not a duration"),
        ({"ttl": "1h", "notAfter": "2030-01-01T00:00:00Z"}, "set ttl or notAfter, not both"),
        ({"notAfter": "2030-01-01"}, "notAfter '2030-01-01' must be a UTC time"),
        ({"notAfter": "2030-02-30T00:00:00Z"}, "is not a valid date"),
        ({"format": "p12"}, "format 'p12' is not one of pem, der, pem_bundle"),
        ({"privateKeyFormat": "jks"}, "privateKeyFormat 'jks' is not one of"),
        ({"altNames": ["a.example.com,evil.example.org"]}, "altNames: 'a.example.com,evil.example.org'"),
        ({"ipSans": ["x"] * 101}, "ipSans has 101 entries"),
        ({"revoke": "yes"}, "revoke must be true or false"),
    ],
)
def test_bad_spec_names_the_problem(spec: dict[str, Any], problem: str) -> None:
    with pytest.raises(api.SpecError) as raised:
        parse_pki_secret(obj(**spec))
    assert any(problem in p for p in raised.value.problems), raised.value.problems


def test_every_problem_at_once() -> None:
    with pytest.raises(api.SpecError) as raised:
        parse_pki_secret(obj(role="../x", expiryOffset="later", format="zip"))
    assert len(raised.value.problems) == 3


NOW = datetime(2030, 1, 1, tzinfo=UTC)
T0 = int(NOW.timestamp())


def state(serial: str = "aa:bb", lifetime: int = 3600, issued: int = T0) -> CertState:
    return CertState(
        serial_number=serial,
        expiration=issued + lifetime,
        last_rotation=issued,
        secret_mac="mac",
        last_generation=1,
    )


def test_plan_issues_when_needed_and_waits_until_the_renewal() -> None:
    s = state()
    assert (
        plan_pki(state=CertState(), expiry_offset=0, generation=1, drift=None, now=NOW).cause is Cause.INITIAL
    )
    assert plan_pki(state=s, expiry_offset=0, generation=2, drift=None, now=NOW).cause is Cause.SPEC_CHANGED
    assert plan_pki(state=s, expiry_offset=0, generation=1, drift="gone", now=NOW).cause is Cause.DRIFT
    waiting = plan_pki(state=s, expiry_offset=600, generation=1, drift=None, now=NOW)
    due = renew_at(s, 600)
    assert waiting.cause is None and waiting.delay == pytest.approx((due - NOW).total_seconds())
    # VSO's rule: at expiration - expiryOffset, moved earlier by at most a fifth of the way there.
    assert T0 + 3000 - JITTER_FRACTION * 3000 <= due.timestamp() <= T0 + 3000
    assert plan_pki(state=s, expiry_offset=600, generation=1, drift=None, now=due).cause is Cause.RENEWAL
    # The same serial renews at the same moment in every process (restart-safe schedule).
    assert renew_at(CertState.from_storage(s.for_storage()), 600) == due


def test_an_offset_longer_than_the_lifetime_does_not_loop() -> None:
    s = state(lifetime=60)
    assert offset_too_long(s, 120)
    assert renew_at(s, 120).timestamp() == T0 + 6  # 10 % of the lifetime, not "now, forever"


def test_a_thousand_certificates_issued_in_one_second_renew_spread_out() -> None:
    due = [renew_at(state(serial=f"{i:040x}", lifetime=360), 120).timestamp() for i in range(1000)]
    per_second = Counter(int(d) for d in due)
    assert max(per_second.values()) <= 50  # no second with more than 5 % of them
    assert max(due) - min(due) >= 0.9 * JITTER_FRACTION * 240


def test_tls_destination_has_vsos_keys_and_the_chain_where_vso_puts_it() -> None:
    answer = {
        "certificate": "CERT",
        "private_key": "KEY",
        "private_key_type": "ec",
        "issuing_ca": "ISSUER",
        "serial_number": "01:02",
        "expiration": 1893456000,
    }
    plain = certificate_data(answer, tls=False)
    assert plain == {
        "certificate": b"CERT",
        "private_key": b"KEY",
        "private_key_type": b"ec",
        "issuing_ca": b"ISSUER",
        "serial_number": b"01:02",
        "expiration": b"1893456000",
    }
    tls = certificate_data(answer, tls=True)
    assert tls["tls.crt"] == b"CERT\nISSUER" and tls["tls.key"] == b"KEY" and tls["ca.crt"] == b"ISSUER"
    chained = certificate_data({**answer, "ca_chain": ["INTER", "INTER2"]}, tls=True)
    assert chained["ca_chain"] == b"INTER\nINTER2"
    assert chained["tls.crt"] == b"CERT\nINTER\nINTER2" and "ca.crt" not in chained  # VSO's rule


def test_issue_answer_parse_flags_a_capped_ttl_and_hides_the_key() -> None:
    context = RequestContext(operation="pki_issue", address="http://v", path="pki/issue/web")
    body = {
        "data": {"certificate": "C", "private_key": "SECRETKEY", "serial_number": "01", "expiration": 5},
        "warnings": ['TTL "2h0m0s" is longer than permitted maxTTL "1m0s", so maxTTL is being used'],
    }
    issued = parse_issued(body, context=context)
    assert issued.serial_number == "01" and issued.capped_ttl_warning() is not None
    assert "SECRETKEY" not in repr(issued)
    with pytest.raises(VaultInvalid, match="serial_number"):
        parse_issued({"data": {"certificate": "C", "private_key": "K", "expiration": 5}}, context=context)


def test_expiry_metrics_are_aggregates_without_names() -> None:
    expiries = CertificateExpiries()
    expiries.set("uid-1", expiration=1000.0, renew_at=900.0)
    expiries.set("uid-2", expiration=2000.0, renew_at=1800.0)
    expiries.set("uid-3", expiration=500.0, renew_at=400.0)
    values = {m.name: m.samples[0] for m in expiries.collect(now=950.0)}
    assert values["csi_vso_pki_certificates"].value == 3
    assert values["csi_vso_pki_certificate_expiry_soonest_timestamp_seconds"].value == 500.0
    assert values["csi_vso_pki_certificates_renewal_overdue"].value == 1
    assert values["csi_vso_pki_certificates_expired"].value == 1
    assert all(sample.labels == {} for sample in values.values())
    expiries.forget("uid-3")
    assert {m.name: m.samples[0].value for m in expiries.collect(now=950.0)}["csi_vso_pki_certificates"] == 2
