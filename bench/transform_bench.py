"""Transformation benchmark: what templating costs per Secret and for a whole initial sync.

Measures (printed as tables; medians of ``--runs`` runs, baseline side by side):

1. Rendering cost per Secret (pure, in process): the Secret data for one KV answer with a
   typical transformation (a DSN template, a properties file built with ``range``, a source
   template used through ``{{template}}``, an exclude filter, ``_raw``) versus the plain
   rendering without a transformation; p50 / p99 in microseconds over ``--renders`` renders.
2. Initial sync of ``--count`` VaultStaticSecrets against a real OpenBao and the devkit API
   server: time from starting the operator (CRs already applied) until every destination Secret
   exists, without a transformation and with all of them referencing one SecretTransformation.
   Each run uses fresh namespaces; the variants alternate so drift hits both alike.

Usage: python bench/transform_bench.py [--count 1000] [--runs 3] [--workers 10] [--renders 2000]
"""

from __future__ import annotations

import argparse
import logging
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kubernetes import client, config

# The sibling bench (its directory is sys.path[0] when run as a script) sets up CRDs and OpenBao.
from operator_bench import configure_openbao, install_crds
from prometheus_client import REGISTRY

from csi_vso.devkit.apiserver import APIServer
from csi_vso.devkit.openbao import OpenBaoDevServer
from csi_vso.operator import api
from csi_vso.operator.controller import Controller, ControllerSettings
from csi_vso.operator.transform import gather
from csi_vso.operator.transform.render import secret_data
from csi_vso.operator.transform.spec import parse_transformation

TRANSFORMATION_SPEC: dict[str, Any] = {
    "templates": {
        "dsn": {"text": '{{ template "dsn" . }}'},
        "app.properties": {
            "text": "{{- range $k, $v := .Secrets }}db.{{ $k }}={{ $v }}\n{{ end -}}"
            'app.name={{ get .Labels "app" | default "bench" }}\n',
        },
    },
    "sourceTemplates": [
        {
            "name": "helpers",
            "text": '{{- define "dsn" -}}postgresql://{{ .Secrets.username }}:'
            "{{ .Secrets.password | urlquery }}@db.svc:5432/app?sslmode=require{{- end -}}",
        }
    ],
    "excludes": ["^password$"],
}
SECRET = {"username": "user1", "password": "0123456789abcdef", "host": "db.svc"}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def render_cost(renders: int) -> list[tuple[str, str, str, str]]:
    obj = {
        "kind": "VaultStaticSecret",
        "metadata": {"name": "s", "namespace": "bench", "labels": {"app": "bench"}},
        "spec": {"destination": {"transformation": {"transformationRefs": [{"name": "t"}]}}},
    }
    st = {
        "kind": "SecretTransformation",
        "metadata": {"name": "t", "namespace": "bench"},
        "spec": TRANSFORMATION_SPEC,
    }
    transformation = parse_transformation(obj["spec"]["destination"]["transformation"], "t", [])  # type: ignore[index]
    raw = {"data": SECRET, "metadata": {"version": 1}}
    timings: dict[str, list[float]] = {"without": [], "with": []}
    for _ in range(renders):
        start = time.perf_counter()
        secret_data(None, secrets=SECRET, raw=raw)
        timings["without"].append((time.perf_counter() - start) * 1e6)
        start = time.perf_counter()
        plan = gather.plan_for(obj, transformation, lambda ns, name: st)
        secret_data(plan, secrets=SECRET, raw=raw, metadata=raw["metadata"])
        timings["with"].append((time.perf_counter() - start) * 1e6)
    rows = []
    for name in ("without", "with"):
        values = timings[name]
        rows.append(
            (
                f"{name} transformation",
                f"{percentile(values, 0.5):.0f}",
                f"{percentile(values, 0.99):.0f}",
                "",
            )
        )
    ratio = percentile(timings["with"], 0.5) / percentile(timings["without"], 0.5)
    rows.append(("ratio (p50)", "", "", f"{ratio:.1f}x"))
    return rows


def apply_crs(
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    bao: OpenBaoDevServer,
    namespace: str,
    count: int,
    transformed: bool,
) -> None:
    core.create_namespace({"metadata": {"name": namespace}})
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "bench"}})

    def create(kind: str, name: str, spec: dict[str, Any]) -> None:
        body = {
            "apiVersion": api.API_VERSION,
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
        custom.create_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURALS[kind], body)

    create("VaultConnection", "default", {"address": bao.address})
    create(
        "VaultAuth",
        "default",
        {"method": "kubernetes", "kubernetes": {"role": "bench", "serviceAccount": "bench"}},
    )
    if transformed:
        create("SecretTransformation", "app", TRANSFORMATION_SPEC)
    for i in range(count):
        destination: dict[str, Any] = {"name": f"s{i}", "create": True}
        if transformed:
            destination["transformation"] = {"transformationRefs": [{"name": "app"}]}
        create(
            "VaultStaticSecret",
            f"s{i}",
            {
                "mount": "kv",
                "path": f"app/{i}",
                "type": "kv-v2",
                "refreshAfter": "1h",
                "destination": destination,
            },
        )


def writes() -> float:
    return REGISTRY.get_sample_value("csi_vso_secret_writes_total", {"kind": "VaultStaticSecret"}) or 0.0


def initial_sync(kubeconfig: Path, namespace: str, count: int, workers: int) -> float:
    controller = Controller(
        config.new_client_from_config(config_file=str(kubeconfig)),
        ControllerSettings(operator_namespace=namespace, max_concurrent_reconciles=workers),
        hmac_key=secrets.token_bytes(32),
    )
    before = writes()
    start = time.monotonic()
    controller.start(sync_timeout=120)
    while writes() < before + count:
        if time.monotonic() - start > 900:
            raise SystemExit(f"initial sync of {namespace} did not finish")
        time.sleep(0.05)
    elapsed = time.monotonic() - start
    controller.stop()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument("--renders", type=int, default=2000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    render_rows = render_cost(args.renders)
    print(f"Rendering cost per Secret ({args.renders} renders, in process)")
    print(f"{'':<24}{'p50 µs':>10}{'p99 µs':>10}{'':>8}")
    for name, p50, p99, extra in render_rows:
        print(f"{name:<24}{p50:>10}{p99:>10}{extra:>8}")
    print()

    variants = ("without", "with")
    namespaces = {(v, r): f"bench-{v}-{r}" for v in variants for r in range(args.runs)}
    results: dict[str, list[float]] = {v: [] for v in variants}
    with APIServer(port=0) as server, OpenBaoDevServer() as bao, tempfile.TemporaryDirectory() as tmp:
        kubeconfig = server.write_kubeconfig(Path(tmp) / "kubeconfig")
        api_client = config.new_client_from_config(config_file=str(kubeconfig))
        core = client.CoreV1Api(api_client)
        custom = client.CustomObjectsApi(api_client)
        install_crds(api_client)
        configure_openbao(bao, kubeconfig, args.count, tuple(sorted(namespaces.values())))
        for run in range(args.runs):
            for variant in variants if run % 2 == 0 else reversed(variants):
                namespace = namespaces[(variant, run)]
                apply_crs(custom, core, bao, namespace, args.count, variant == "with")
                results[variant].append(initial_sync(kubeconfig, namespace, args.count, args.workers))
                core.delete_namespace(namespace)  # the next operator must not see these objects
                while any(ns.metadata.name == namespace for ns in core.list_namespace().items):
                    time.sleep(0.2)

    print(f"Initial sync of {args.count} VaultStaticSecrets ({args.workers} workers, {args.runs} runs)")
    print(f"{'':<24}{'median s':>10}{'Secrets/s':>11}   runs (s)")
    for variant in variants:
        median = statistics.median(results[variant])
        runs = ", ".join(f"{v:.1f}" for v in results[variant])
        print(f"{variant + ' transformation':<24}{median:>10.1f}{args.count / median:>11.0f}   {runs}")
    ratio = statistics.median(results["with"]) / statistics.median(results["without"])
    print(f"{'ratio with/without':<24}{ratio:>10.2f}x  (target: within 1.5x)")
    return 0 if ratio <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
