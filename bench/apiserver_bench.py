"""In-memory API server benchmark: is it ever the bottleneck of the other benchmarks?

Starts ``csi-vso devkit apiserver`` as its own process (as the demo and the operator/provider
benchmarks use it) and measures, through the official kubernetes client, printing a table:

1. Watch fan-out: ``--watchers`` watches (kubernetes ``Watch().stream`` on Secrets, one thread
   each) while ``--writes`` Secret patches are made one at a time; latency from issuing the
   write until each watcher has the event, p50/p99/max over every (write, watcher) pair.
2. Create / list / replace throughput with ``--count`` Secrets (``--threads`` writers):
   creates/s, a full list (raw bytes, and deserialized into V1SecretList models),
   label-selected lists, then a replace of every Secret with its resourceVersion.

Usage: python bench/apiserver_bench.py [--count 10000] [--watchers 50] [--writes 200] [--threads 4]
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kubernetes import client, config, watch

from csi_vso.devkit.apiserver_process import spawn_apiserver

NAMESPACE = "bench"


def start_server(workdir: Path) -> tuple[subprocess.Popen[str], str]:
    kubeconfig = workdir / "kubeconfig"
    proc, _ = spawn_apiserver(kubeconfig, "--watch-window", "100000")
    return proc, str(kubeconfig)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def bench_fanout(kubeconfig: str, watchers: int, writes: int) -> list[tuple[str, str]]:
    api = config.new_client_from_config(config_file=kubeconfig)
    core = client.CoreV1Api(api)
    core.create_namespaced_secret(NAMESPACE, {"metadata": {"name": "fanout", "labels": {"bench": "fanout"}}})
    rv = core.list_namespaced_secret(NAMESPACE).metadata.resource_version
    received: dict[str, list[float]] = {}  # resourceVersion -> receive times
    lock = threading.Lock()
    ready = threading.Barrier(watchers + 1)
    stops: list[watch.Watch] = []

    def run_watcher() -> None:
        own = config.new_client_from_config(config_file=kubeconfig)
        w = watch.Watch()
        with lock:
            stops.append(w)
        ready.wait()
        events = w.stream(
            client.CoreV1Api(own).list_namespaced_secret,
            NAMESPACE,
            resource_version=rv,
            label_selector="bench=fanout",
            _request_timeout=600,
        )
        try:
            for event in events:
                now = time.perf_counter()
                with lock:
                    received.setdefault(event["object"].metadata.resource_version, []).append(now)
        except Exception:
            pass

    threads = [threading.Thread(target=run_watcher, daemon=True) for _ in range(watchers)]
    for t in threads:
        t.start()
    ready.wait()
    time.sleep(1.0)  # let every watch connect
    latencies: list[float] = []
    for i in range(writes):
        start = time.perf_counter()
        new_rv = core.patch_namespaced_secret(
            "fanout", NAMESPACE, {"metadata": {"annotations": {"i": str(i)}}}
        )
        key = new_rv.metadata.resource_version
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with lock:
                times = list(received.get(key, ()))
            if len(times) >= watchers:
                break
            time.sleep(0.0005)
        else:
            raise SystemExit(f"write {i}: only {len(times)} of {watchers} watchers got the event")
        latencies.extend(t - start for t in times)
    for w in stops:
        w.stop()
    ms = [x * 1000 for x in latencies]
    return [
        (
            f"watch fan-out to {watchers} watchers, p50 (write -> event delivered)",
            f"{statistics.median(ms):.1f} ms",
        ),
        (f"watch fan-out to {watchers} watchers, p99", f"{percentile(ms, 99):.1f} ms"),
        (f"watch fan-out to {watchers} watchers, max", f"{max(ms):.1f} ms"),
        ("  (deliveries measured)", f"{len(ms)}"),
    ]


def bench_throughput(kubeconfig: str, count: int, threads: int) -> list[tuple[str, str]]:
    clients = [
        client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig)) for _ in range(threads)
    ]
    rows: list[tuple[str, str]] = []

    def chunks() -> list[range]:
        size = (count + threads - 1) // threads
        return [range(i, min(count, i + size)) for i in range(0, count, size)]

    def create(idx: int, part: range) -> None:
        core = clients[idx]
        for i in part:
            core.create_namespaced_secret(
                NAMESPACE,
                {
                    "metadata": {"name": f"s-{i:05d}", "labels": {"bench": "bulk", "shard": str(i % 10)}},
                    "stringData": {"username": f"user-{i}", "password": "x" * 32},
                },
                _preload_content=False,
            ).release_conn()

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(create, range(threads), chunks()))
    elapsed = time.perf_counter() - start
    rows.append(
        (f"create {count} Secrets ({threads} client threads)", f"{count / elapsed:,.0f} /s ({elapsed:.1f} s)")
    )

    core = clients[0]
    runs = []
    raw = b""
    for _ in range(5):
        start = time.perf_counter()
        resp = core.list_namespaced_secret(NAMESPACE, label_selector="bench=bulk", _preload_content=False)
        raw = resp.data
        runs.append(time.perf_counter() - start)
    items = json.loads(raw)["items"]
    assert len(items) == count, len(items)
    best = min(runs)
    rows.append(
        (
            f"list {count} Secrets, raw JSON (best of 5)",
            f"{best * 1000:.0f} ms ({count / best:,.0f} objects/s, {len(raw) / 1e6:.1f} MB)",
        )
    )
    start = time.perf_counter()
    typed = core.list_namespaced_secret(NAMESPACE, label_selector="bench=bulk")
    elapsed = time.perf_counter() - start
    assert len(typed.items) == count
    rows.append(
        (
            f"list {count} Secrets, kubernetes client models",
            f"{elapsed * 1000:.0f} ms (client-side decode dominates)",
        )
    )
    start = time.perf_counter()
    shard = core.list_namespaced_secret(
        NAMESPACE, label_selector="bench=bulk,shard in (3)", _preload_content=False
    )
    elapsed = time.perf_counter() - start
    rows.append(
        (
            f"list with label selector -> {len(json.loads(shard.data)['items'])} of {count}",
            f"{elapsed * 1000:.0f} ms",
        )
    )

    versions = {item["metadata"]["name"]: item["metadata"]["resourceVersion"] for item in items}

    def replace(idx: int, part: range) -> None:
        api = clients[idx]
        for i in part:
            name = f"s-{i:05d}"
            body = {
                "metadata": {
                    "name": name,
                    "resourceVersion": versions[name],
                    "labels": {"bench": "bulk", "shard": str(i % 10)},
                },
                "stringData": {"username": f"user-{i}", "password": "y" * 32},
            }
            api.replace_namespaced_secret(name, NAMESPACE, body, _preload_content=False).release_conn()

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(replace, range(threads), chunks()))
    elapsed = time.perf_counter() - start
    rows.append(
        (
            f"replace {count} Secrets with resourceVersion ({threads} client threads)",
            f"{count / elapsed:,.0f} /s ({elapsed:.1f} s)",
        )
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--watchers", type=int, default=50)
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        proc, kubeconfig = start_server(Path(tmp))
        try:
            with config.new_client_from_config(config_file=kubeconfig) as api:
                client.CoreV1Api(api).create_namespace({"metadata": {"name": NAMESPACE}})
            rows = bench_fanout(kubeconfig, args.watchers, args.writes)
            rows += bench_throughput(kubeconfig, args.count, args.threads)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    width = max(len(name) for name, _ in rows)
    print(f"{'measure'.ljust(width)}  result")
    print(f"{'-' * width}  {'-' * 40}")
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
