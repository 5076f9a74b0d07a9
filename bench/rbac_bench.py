"""RBAC cost in the devkit API server: does authorization stay flat as RoleBindings pile up?

Issue 9's operator writes one Role and one RoleBinding per protected Secret, so a cluster
with 50,000 protected Secrets holds 50,000 RoleBindings. Every non-admin request is
authorized against them; the bindings are indexed by subject (``rbacindex``), so the cost
should not grow with their number. This measures, for 0 / 10,000 / 50,000 RoleBindings (of
other subjects, in the same namespace), the latency of ``GET secret`` (one keep-alive
connection, the kubernetes client) as the admin (no RBAC: system:masters) and as a
ServiceAccount allowed by a ``resourceNames`` Role, an SA request that is refused (403), and
the authorizer alone in-process (least noisy: no HTTP, no JWT check).
Medians of several runs; ratios against the admin's and against the 0-binding row.

Usage: python bench/rbac_bench.py [--requests 300] [--runs 3] [--bindings 0,10000,50000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kubernetes import client, config

from csi_vso.devkit.apiserver import APIServer, rbac
from csi_vso.devkit.apiserver.requestinfo import request_info

NAMESPACE = "bench"
RBAC = "rbac.authorization.k8s.io"


def _client(kubeconfig: str, token: str | None) -> client.ApiClient:
    cfg = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    if token is not None:
        cfg.refresh_api_key_hook = None
        cfg.api_key = {"BearerToken": f"Bearer {token}"}
    return client.ApiClient(cfg)


def _median_ms(call: Callable[[], object], requests: int, runs: int) -> float:
    medians = []
    for _ in range(runs):
        samples = []
        for _ in range(requests):
            start = time.perf_counter()
            call()
            samples.append(time.perf_counter() - start)
        medians.append(statistics.median(samples))
    return statistics.median(medians) * 1000


def _authorize_us(server: APIServer, token: str, calls: int, runs: int) -> float:
    """The authorizer alone (no HTTP, no JWT check): the SA's allowed GET, in microseconds."""
    user = server.app.auth.authenticate(f"Bearer {token}")
    assert user is not None
    info = request_info("GET", f"/api/v1/namespaces/{NAMESPACE}/secrets/mine", {})
    medians = []
    for _ in range(runs):
        samples = []
        for _ in range(calls):
            start = time.perf_counter()
            decision = rbac.authorize(server.app.policy, user, info)
            samples.append(time.perf_counter() - start)
        assert decision.allowed
        medians.append(statistics.median(samples))
    return statistics.median(medians) * 1e6


def _refused(core: client.CoreV1Api) -> Callable[[], object]:
    def call() -> object:
        try:
            core.read_namespaced_secret("other", NAMESPACE)
        except client.ApiException as exc:
            assert exc.status == 403
            return None
        raise AssertionError("expected 403")

    return call


def _add_bindings(server: APIServer, count: int, start: int) -> None:
    """``count`` RoleBindings of other service accounts, written straight through the server's
    operations (as the operator would write them, minus HTTP, to keep set-up short)."""
    rt = server.app.registry.lookup(RBAC, "v1", "rolebindings")
    assert rt is not None
    for i in range(start, start + count):
        server.app.ops.create(
            rt,
            NAMESPACE,
            {
                "metadata": {"name": f"b-{i}"},
                "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "one-secret"},
                "subjects": [{"kind": "ServiceAccount", "name": f"sa-{i}", "namespace": NAMESPACE}],
            },
            False,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bindings", default="0,10000,50000")
    args = parser.parse_args()
    levels = [int(x) for x in args.bindings.split(",")]

    with APIServer() as server, tempfile.TemporaryDirectory() as tmp:
        kubeconfig = str(server.write_kubeconfig(Path(tmp) / "kubeconfig"))
        admin = _client(kubeconfig, None)
        core = client.CoreV1Api(admin)
        rbac = client.RbacAuthorizationV1Api(admin)
        core.create_namespace({"metadata": {"name": NAMESPACE}})
        core.create_namespaced_service_account(NAMESPACE, {"metadata": {"name": "reader"}})
        for name in ("mine", "other"):
            core.create_namespaced_secret(NAMESPACE, {"metadata": {"name": name}, "stringData": {"k": "v"}})
        rule = {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["mine"], "verbs": ["get"]}
        rbac.create_namespaced_role(NAMESPACE, {"metadata": {"name": "one-secret"}, "rules": [rule]})
        rbac.create_namespaced_role_binding(
            NAMESPACE,
            {
                "metadata": {"name": "reader"},
                "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "one-secret"},
                "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": NAMESPACE}],
            },
        )
        token = core.create_namespaced_service_account_token("reader", NAMESPACE, {"spec": {}}).status.token
        as_sa = client.CoreV1Api(_client(kubeconfig, token))

        rows = []
        present = 0
        for level in levels:
            _add_bindings(server, level - present, present)
            present = level
            admin_ms = _median_ms(
                lambda: core.read_namespaced_secret("mine", NAMESPACE), args.requests, args.runs
            )
            sa_ms = _median_ms(
                lambda: as_sa.read_namespaced_secret("mine", NAMESPACE), args.requests, args.runs
            )
            refused_ms = _median_ms(_refused(as_sa), args.requests, args.runs)
            authorize_us = _authorize_us(server, token, args.requests * 10, args.runs)
            rows.append((level, admin_ms, sa_ms, refused_ms, authorize_us))

    base_sa, base_authorize = rows[0][2], rows[0][4]
    print(f"GET secret latency, median of {args.runs} runs x {args.requests} requests (ms)")
    header = (
        f"{'RoleBindings':>12} | {'admin':>7} | {'SA allowed':>10} | {'SA refused':>10} | "
        f"{'SA/admin':>8} | {'SA vs 0 bindings':>16} | {'authorize() us':>14} | {'vs 0 bindings':>13}"
    )
    print(header)
    print("-" * len(header))
    for level, admin_ms, sa_ms, refused_ms, authorize_us in rows:
        print(
            f"{level:>12} | {admin_ms:>7.2f} | {sa_ms:>10.2f} | {refused_ms:>10.2f} | "
            f"{sa_ms / admin_ms:>8.2f} | {sa_ms / base_sa:>16.2f} | {authorize_us:>14.1f} | "
            f"{authorize_us / base_authorize:>13.2f}"
        )


if __name__ == "__main__":
    main()
