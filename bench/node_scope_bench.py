"""What one node's provider costs as the cluster grows: pod-token mode next to cluster mode.

For each cluster size (protected Secrets of 1 KiB that nobody on this node mounts) a fresh
in-memory API server (its own process) gets the Secrets, then 100 pods on "this node" each
mount their own protected Secret (provider write mode, plain directories), with kubelet's
tokens. The provider runs as its own process, once per mode:

- ``pod-token`` (default): one name-narrowed watch per mounted Secret, read with the pods'
  tokens;
- ``cluster``: today's cluster-wide cache of every protected Secret, uncapped (the baseline).

Reported per size and mode: the provider's RSS after the mounts settled (median of
``--samples`` readings) and its peak, the Secret watches it holds open and the Secrets it
caches (both from its /metrics), and the time the 100 Mounts took.

Run:  python bench/node_scope_bench.py   [--sizes 0,10000,50000 --mounted 100]
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from kubernetes import client, config  # noqa: E402
from rotation_bench import rss_mib  # noqa: E402

from csi_vso import protected  # noqa: E402
from csi_vso.devkit.apiserver_process import spawn_apiserver  # noqa: E402
from tests.provider.driver_support import Cluster, DriverClient, mount_request  # noqa: E402
from tests.provider.kubelet_support import KubeletDir  # noqa: E402
from tests.provider.provider_process import ProviderProcess  # noqa: E402


def fill(kubeconfig: Path, namespace: str, count: int, size: int = 1024) -> float:
    """``count`` protected Secrets of ``size`` bytes in ``namespace``, created through the API;
    seconds taken."""
    start = time.monotonic()
    if not count:
        return 0.0
    data = {"v": base64.b64encode(b"x" * size).decode()}
    labels = protected.protected_labels("bench-owner")

    def create(chunk: range) -> None:
        core = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
        for i in chunk:
            body = {"metadata": {"name": f"other-{i:06d}", "labels": labels}, "data": data}
            core.create_namespaced_secret(namespace, body)

    step = 1000
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(create, [range(i, min(i + step, count)) for i in range(0, count, step)]))
    return time.monotonic() - start


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
    return float("nan")


def run_size(size: int, mounted: int, samples: int, work: Path) -> list[dict[str, object]]:
    kubeconfig = work / "kubeconfig"
    apiserver, _ = spawn_apiserver(kubeconfig)
    rows: list[dict[str, object]] = []
    try:
        cluster = Cluster(config.new_client_from_config(config_file=str(kubeconfig)))
        crowd = cluster.namespace("crowd")
        filled = fill(kubeconfig, crowd, size)
        ns = cluster.namespace("node")
        pods = []
        for i in range(mounted):
            cluster.secret(ns, f"mine-{i:03d}", {"v": f"value-{i}".encode()})
            pods.append(cluster.pod(ns, name=f"app-{i:03d}"))
        for mode in ("pod-token", "cluster"):
            (work / mode).mkdir()
            # The baseline is today's cluster cache: uncapped, one list (the devkit server pages
            # a 50,000-Secret list slowly; a capped cluster mode is forged_secrets_bench's subject).
            extra = ("--secret-access", mode) + (
                ("--cluster-cache-max-bytes", "0") if mode == "cluster" else ()
            )
            provider = ProviderProcess(
                str(kubeconfig),
                work / mode / "sockets",
                work / mode / "state",
                extra_args=extra,
                kubelet_dir=work / mode / "kubelet",
            )
            (work / mode / "sockets").mkdir()
            provider.start().wait_serving(timeout=600)
            provider.wait_for_log("provider started")
            port = next(
                int(r["metrics_port"]) for r in provider.log_records() if r.get("msg") == "provider started"
            )
            driver = DriverClient(provider.socket_path)
            t0 = time.monotonic()
            for i, pod in enumerate(pods):
                target = KubeletDir(work / mode / "kubelet").target(pod.uid)
                driver.mount(mount_request(pod, [{"secretName": f"mine-{i:03d}", "key": "v"}], str(target)))
            mount_s = time.monotonic() - t0
            driver.close()
            readings = []
            for _ in range(samples):
                time.sleep(1.0)
                readings.append(rss_mib(provider.pid)[0])
            rows.append(
                {
                    "size": size,
                    "mode": mode,
                    "rss": statistics.median(readings),
                    "peak": rss_mib(provider.pid)[1],
                    "watches": metric(port, "csi_vso_provider_secret_watches"),
                    "cached": metric(port, "csi_vso_provider_cached_secrets"),
                    "mount_s": mount_s,
                    "fill_s": filled,
                }
            )
            provider.stop()
    finally:
        apiserver.terminate()
        apiserver.wait(timeout=60)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0,10000,50000")
    parser.add_argument("--mounted", type=int, default=100)
    parser.add_argument("--samples", type=int, default=5)
    args = parser.parse_args()
    rows: list[dict[str, object]] = []
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="node-scope-bench-") as tmp:
            rows.extend(run_size(size, args.mounted, args.samples, Path(tmp)))
            print(f"  size {size}: done", file=sys.stderr, flush=True)
    print(
        f"\nnode scope: {args.mounted} protected Secrets mounted on this node (one volume each, provider "
        f"mode); the cluster holds N more protected Secrets of 1 KiB that nobody here mounts\n"
    )
    header = ("N in cluster", "mode", "RSS MiB (peak)", "watches", "cached Secrets", "100 Mounts")
    table = [header]
    for r in rows:
        table.append(
            (
                f"{r['size']:,}",
                str(r["mode"]),
                f"{r['rss']:.0f} ({r['peak']:.0f})",
                f"{r['watches']:.0f}",
                f"{r['cached']:.0f}",
                f"{r['mount_s']:.2f} s",
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    pod_token = [float(str(r["rss"])) for r in rows if r["mode"] == "pod-token"]
    if pod_token:
        spread = (max(pod_token) - min(pod_token)) / min(pod_token)
        print(
            f"\npod-token RSS across sizes: {min(pod_token):.0f}-{max(pod_token):.0f} MiB, "
            f"spread {100 * spread:.1f} % (bar: within 10 %, under 100 MiB)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
