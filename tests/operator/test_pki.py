"""VaultPKISecret end to end against a real OpenBao PKI engine (root CA generated here).

Issue (VSO's keys, TLS Secret layout), no re-issue while valid, revoke + clear on delete (the
replaced certificate left alone), an operator SIGKILLed and restarted while the certificate is
valid (no new serial in Vault), and bad specs (condition + event, no Secret, no key in logs).
"""

from __future__ import annotations

import base64
import logging
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
from kubernetes import watch

from csi_vso.devkit.openbao import OpenBaoDevServer
from csi_vso.operator import api
from tests.fixtures.kube import Kube
from tests.operator.conftest import Cluster, OperatorFactory, VaultAuthSetup, wait_for
from tests.operator.pki_support import HOST, PKIEngine, issued_serials, pki, pki_secret, pki_status  # noqa: F401
from tests.operator.test_processes import OperatorProcess, lease_holder
from tests.operator.test_rollout import create, env_from, restarted_at

KEY_MARKERS = ("PRIVATE KEY", "BEGIN EC", "BEGIN RSA")


def no_key_in(text: str) -> bool:
    return not any(marker in text for marker in KEY_MARKERS)


def test_issues_a_tls_secret_with_vsos_keys_and_does_not_reissue_while_valid(
    openbao: OpenBaoDevServer,
    cluster: Cluster,
    k8s_vault: VaultAuthSetup,
    pki: PKIEngine,  # noqa: F811
    operator: OperatorFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="csi_vso")
    ns = k8s_vault.namespace
    tls = {"name": "web-tls", "create": True, "type": "kubernetes.io/tls"}
    cluster.apply(pki_secret(ns, "web", engine=pki, destination="web-tls", ttl="60s", expiryOffset="20s"))
    cluster.patch_spec(api.PKI_KIND, ns, "web", {"destination": tls})
    controller = operator()
    status = wait_for(
        lambda: pki_status(cluster, ns, "web").get("serialNumber") and pki_status(cluster, ns, "web"),
        what="issued",
    )
    secret = cluster.secret(ns, "web-tls")
    assert secret is not None and secret.type == "kubernetes.io/tls"
    data = {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}
    assert {
        "certificate",
        "private_key",
        "private_key_type",
        "issuing_ca",
        "serial_number",
        "expiration",
    } <= set(data)
    assert {"tls.crt", "tls.key", "ca.crt"} <= set(data)
    assert "ca_chain" not in data  # the root issued it: the chain without the root is empty
    assert data["tls.key"] == data["private_key"] and "PRIVATE KEY" in data["tls.key"]
    assert data["tls.crt"] == data["certificate"] + "\n" + data["issuing_ca"]
    assert data["ca.crt"] == data["issuing_ca"] == pki.ca_pem
    assert data["serial_number"] == status["serialNumber"]
    assert int(data["expiration"]) == status["expiration"]
    assert status["valid"] is True and status["lastRotation"] > 0 and status["secretMAC"]
    ready = cluster.condition(api.PKI_KIND, ns, "web", "Ready") or {}
    assert ready.get("status") == "True" and status["serialNumber"] in ready.get("message", "")
    assert any(e.reason == "CertificateIssued" for e in cluster.events(ns, "web"))
    # Idle reconciles (a resync, a Secret event) issue nothing while the certificate is valid.
    before = issued_serials(openbao, pki)
    for _ in range(3):
        controller.process((api.PKI_KIND, ns, "web"))
    assert pki_status(cluster, ns, "web")["serialNumber"] == status["serialNumber"]
    assert issued_serials(openbao, pki) == before
    # Drift heals with a new certificate: the Secret's key edited by hand.
    cluster.core.patch_namespaced_secret(
        "web-tls", ns, {"data": {"tls.key": base64.b64encode(b"x").decode()}}
    )
    wait_for(
        lambda: pki_status(cluster, ns, "web")["serialNumber"] != status["serialNumber"], what="drift healed"
    )
    assert all(no_key_in(str(vars(record))) for record in caplog.records)


def test_revoke_and_clear_on_delete_leave_replaced_certificates_alone(
    openbao: OpenBaoDevServer,
    cluster: Cluster,
    k8s_vault: VaultAuthSetup,
    pki: PKIEngine,  # noqa: F811
    operator: OperatorFactory,
) -> None:
    ns = k8s_vault.namespace
    create(cluster, ns, "Deployment", "web", env_from("web-tls"))
    cluster.apply(
        pki_secret(
            ns,
            "web",
            engine=pki,
            destination="web-tls",
            ttl="30s",
            expiryOffset="27s",
            revoke=True,
            clear=True,
            rolloutRestartTargets=[{"kind": "Deployment", "name": "web"}],
        )
    )
    operator()
    first = wait_for(lambda: pki_status(cluster, ns, "web").get("serialNumber"), what="issued")
    assert restarted_at(cluster, ns, "Deployment", "web") is None  # the first issue restarts nothing
    current = wait_for(
        lambda: (s := pki_status(cluster, ns, "web").get("serialNumber")) != first and s,
        timeout=30,
        what="renewed",
    )
    # The renewal restarted the target (for consumers that cannot reload, as VSO does).
    wait_for(lambda: restarted_at(cluster, ns, "Deployment", "web"), what="rollout restart after the renewal")
    # Watch the destination from now on: the clear is a write just before the garbage collector
    # deletes the Secret with its owner.
    seen: list[tuple[str, dict[str, str]]] = []
    started = threading.Event()

    def observe() -> None:
        stream = watch.Watch()
        started.set()
        for event in stream.stream(
            cluster.core.list_namespaced_secret,
            ns,
            field_selector="metadata.name=web-tls",
            timeout_seconds=20,
        ):
            obj = event["object"]
            seen.append((event["type"], dict(obj.data or {})))
            if event["type"] == "DELETED":
                stream.stop()

    watcher = threading.Thread(target=observe, daemon=True)
    watcher.start()
    started.wait(5)
    current = pki_status(cluster, ns, "web")["serialNumber"]
    cluster.delete_cr(api.PKI_KIND, ns, "web")
    wait_for(lambda: cluster.get_cr(api.PKI_KIND, ns, "web") is None, what="finalizer released")
    root = openbao.client()
    revoked = root.read(f"{pki.mount}/cert/{current}")["data"]
    replaced = root.read(f"{pki.mount}/cert/{first}")["data"]
    assert revoked.get("revocation_time", 0) > 0  # the current certificate is on the CRL
    assert not replaced.get("revocation_time")  # the replaced one was left to expire
    watcher.join(25)
    # clear: the data was emptied (one write) before the garbage collector deleted the Secret.
    cleared = [i for i, (kind, data) in enumerate(seen) if kind == "MODIFIED" and data == {}]
    assert cleared, [(kind, sorted(data)) for kind, data in seen]
    assert any(e.reason == "CertificateRevoked" for e in cluster.events(ns, "web"))


@pytest.mark.parametrize(
    ("spec", "reason", "words"),
    [
        ({"role": "nope"}, "CertificateRequestRejected", "unknown role"),
        ({"ttl": "2h"}, "CertificateRequestRejected", "max_ttl"),
        ({"commonName": "evil.other.org"}, "CertificateRequestRejected", "not allowed by this role"),
        ({"expiryOffset": "soon"}, "InvalidSpec", "expiryOffset"),
        ({"role": "../../sys/policies/acl/x"}, "InvalidSpec", "role"),
    ],
    ids=["unknown-role", "ttl-over-max", "cn-not-allowed", "bad-expiry-offset", "role-path-escape"],
)
def test_bad_spec_gets_a_condition_and_an_event_and_no_secret(
    openbao: OpenBaoDevServer,
    cluster: Cluster,
    k8s_vault: VaultAuthSetup,
    pki: PKIEngine,  # noqa: F811
    operator: OperatorFactory,
    caplog: pytest.LogCaptureFixture,
    spec: dict[str, Any],
    reason: str,
    words: str,
) -> None:
    caplog.set_level(logging.DEBUG, logger="csi_vso")
    ns = k8s_vault.namespace
    cluster.apply(pki_secret(ns, "bad", engine=pki, destination="bad-tls", **spec))
    operator()
    ready = wait_for(
        lambda: (c := cluster.condition(api.PKI_KIND, ns, "bad", "Ready")) and c["status"] == "False" and c,
        what="failure condition",
    )
    assert ready["reason"] == reason and words in ready["message"], ready
    events = wait_for(lambda: [e for e in cluster.events(ns, "bad") if e.reason == reason], what="event")
    assert events[0].type == "Warning" and words in events[0].message
    assert pki_status(cluster, ns, "bad").get("valid") is False
    assert cluster.secret(ns, "bad-tls") is None
    assert not pki_status(cluster, ns, "bad").get("serialNumber")
    text = caplog.text + "".join(str(vars(r)) for r in caplog.records) + str(events[0].message)
    assert no_key_in(text)


def test_sigkilled_operator_restarted_while_the_certificate_is_valid_issues_nothing(
    openbao: OpenBaoDevServer,
    kube: Kube,
    cluster: Cluster,
    k8s_vault: VaultAuthSetup,
    pki: PKIEngine,  # noqa: F811
    tmp_path: Path,
) -> None:
    ns = k8s_vault.namespace
    started: list[OperatorProcess] = []
    try:
        first = OperatorProcess(kube, ns, "op-a", tmp_path / "a.log")
        started.append(first)
        cluster.apply(pki_secret(ns, "web", engine=pki, destination="web-tls", ttl="60s", expiryOffset="5s"))
        serial = wait_for(
            lambda: pki_status(cluster, ns, "web").get("serialNumber"), timeout=30, what="issued"
        )
        data = cluster.secret_data(ns, "web-tls")
        issued = issued_serials(openbao, pki)
        assert first.metric("csi_vso_pki_certificates_issued_total") == 1
        first.stop(signal.SIGKILL)
        second = OperatorProcess(kube, ns, "op-b", tmp_path / "b.log")
        started.append(second)
        wait_for(lambda: lease_holder(cluster, ns) == "op-b", timeout=20, what="op-b leads")
        wait_for(
            lambda: second.metric("csi_vso_reconciles_total", kind=api.PKI_KIND, outcome="ok") >= 1,
            timeout=20,
            what="op-b reconciled the VaultPKISecret",
        )
        assert second.metric("csi_vso_pki_certificates") == 1  # it holds the certificate it found
        assert second.metric("csi_vso_pki_certificates_issued_total") == 0
        assert pki_status(cluster, ns, "web")["serialNumber"] == serial
        assert cluster.secret_data(ns, "web-tls") == data
        assert issued_serials(openbao, pki) == issued  # Vault issued nothing new
        for proc in started:
            assert no_key_in(proc.log_path.read_text())
    finally:
        for proc in started:
            proc.stop()


def test_a_transformation_shapes_the_certificate_and_its_edit_reissues(
    openbao: OpenBaoDevServer,
    cluster: Cluster,
    k8s_vault: VaultAuthSetup,
    pki: PKIEngine,  # noqa: F811
    operator: OperatorFactory,
) -> None:
    """``destination.transformation`` on a VaultPKISecret (issue 11): the templates see the
    certificate response as ``.Secrets``; a SecretTransformation edit re-issues (the response is
    kept nowhere but in the rendered Secret); a template that fails after issuing discards the
    certificate once and waits for the next edit instead of minting one per retry."""
    ns = k8s_vault.namespace
    cluster.apply(
        {
            "apiVersion": api.API_VERSION,
            "kind": "SecretTransformation",
            "metadata": {"name": "pem", "namespace": ns},
            "spec": {
                "templates": {
                    "bundle.pem": {"text": "{{ .Secrets.certificate }}\n{{ .Secrets.private_key }}\n"}
                }
            },
        }
    )
    manifest = pki_secret(ns, "web", engine=pki, destination="web-pem", ttl="60s", expiryOffset="20s")
    manifest["spec"]["destination"]["transformation"] = {
        "transformationRefs": [{"name": "pem"}],
        "templates": {"serial": {"text": "{{ .Secrets.serial_number | upper }}"}},
        "excludes": [".*"],
        "excludeRaw": True,
    }
    cluster.apply(manifest)
    operator()
    first = wait_for(lambda: pki_status(cluster, ns, "web").get("serialNumber"), what="issued")
    secret = cluster.secret(ns, "web-pem")
    assert secret is not None
    data = {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}
    assert set(data) == {"bundle.pem", "serial"}  # source keys excluded, no _raw
    assert data["serial"] == first.upper()
    assert "BEGIN CERTIFICATE" in data["bundle.pem"] and "PRIVATE KEY" in data["bundle.pem"]
    assert pki_status(cluster, ns, "web")["transformationDigest"]

    # Editing the referenced SecretTransformation re-issues and re-renders.
    cluster.patch_spec(
        "SecretTransformation",
        ns,
        "pem",
        {"templates": {"bundle.pem": {"text": "{{ .Secrets.certificate }}"}}},
    )
    second = wait_for(
        lambda: (s := pki_status(cluster, ns, "web").get("serialNumber")) != first and s, what="re-issued"
    )
    rendered = base64.b64decode((cluster.secret(ns, "web-pem").data or {})["bundle.pem"]).decode()  # type: ignore[union-attr]
    assert "BEGIN CERTIFICATE" in rendered and "PRIVATE KEY" not in rendered

    # A template that fails only when executed: one certificate discarded, then no retry loop.
    serials_before = issued_serials(openbao, pki)
    cluster.patch_spec(
        "SecretTransformation",
        ns,
        "pem",
        {"templates": {"bundle.pem": {"text": '{{ fail "no bundle today" }}'}}},
    )
    failed = wait_for(
        lambda: (
            (c := cluster.condition(api.PKI_KIND, ns, "web", "Ready") or {}).get("status") == "False" and c
        ),
        what="template failure reported",
    )
    assert failed["reason"] == "TemplateError" and "no bundle today" in failed["message"]
    issued_after_failure = issued_serials(openbao, pki) - serials_before
    assert len(issued_after_failure) == 1
    assert pki_status(cluster, ns, "web")["serialNumber"] == second  # the Secret kept the last good one
    assert "PRIVATE KEY" not in failed["message"]
