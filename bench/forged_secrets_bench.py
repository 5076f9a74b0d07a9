"""Issue 10 finding 2(b), measured: forged labelled Secrets against one node's provider.

Anyone who can create a Secret can put the protected label on it. This starts a fresh in-memory
API server (its own process), creates ``--forged`` labelled Secrets of ``--size`` bytes that no
pod on the node mounts, then runs the provider (its own process) in each ``--secret-access``
mode: it mounts one legitimate Secret and reports the provider's RSS after settling, its peak
(the DaemonSet's limit is 256 MiB), what it holds, and whether the Mount was served.

Run:  python bench/forged_secrets_bench.py   [--forged 1000 --size 716800]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from kubernetes import config  # noqa: E402
from node_scope_bench import fill, metric  # noqa: E402
from rotation_bench import rss_mib  # noqa: E402

from csi_vso.devkit.apiserver_process import spawn_apiserver  # noqa: E402
from tests.provider.driver_support import Cluster, DriverClient, mount_request  # noqa: E402
from tests.provider.kubelet_support import KubeletDir  # noqa: E402
from tests.provider.provider_process import ProviderProcess  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forged", type=int, default=1000)
    parser.add_argument("--size", type=int, default=700 * 1024)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="forged-bench-") as tmp:
        work = Path(tmp)
        kubeconfig = work / "kubeconfig"
        apiserver, _ = spawn_apiserver(kubeconfig)
        try:
            cluster = Cluster(config.new_client_from_config(config_file=str(kubeconfig)))
            crowd = cluster.namespace("forged")
            fill_s = fill(kubeconfig, crowd, args.forged, args.size)
            ns = cluster.namespace("node")
            cluster.secret(ns, "legit", {"v": b"legit-value"})
            pod = cluster.pod(ns)
            for mode in ("pod-token", "cluster"):
                (work / mode / "sockets").mkdir(parents=True)
                provider = ProviderProcess(
                    str(kubeconfig),
                    work / mode / "sockets",
                    work / mode / "state",
                    extra_args=("--secret-access", mode),
                    kubelet_dir=work / mode / "kubelet",
                )
                t0 = time.monotonic()
                provider.start().wait_serving(timeout=900)
                provider.wait_for_log("provider started")
                ready_s = time.monotonic() - t0
                port = next(
                    int(r["metrics_port"])
                    for r in provider.log_records()
                    if r.get("msg") == "provider started"
                )
                driver = DriverClient(provider.socket_path)
                target = KubeletDir(work / mode / "kubelet").target(pod.uid)
                try:
                    driver.mount(mount_request(pod, [{"secretName": "legit", "key": "v"}], str(target)))
                    served = (target / "v").read_bytes() == b"legit-value"
                except Exception as exc:  # reported in the table, not hidden
                    served = False
                    print(f"{mode}: Mount failed: {type(exc).__name__}", file=sys.stderr)
                driver.close()
                time.sleep(2.0)
                rss, peak = rss_mib(provider.pid)
                rows.append(
                    (
                        mode,
                        f"{rss:.0f} ({peak:.0f})",
                        f"{metric(port, 'csi_vso_provider_cached_secrets'):.0f}",
                        f"{ready_s:.1f} s",
                        "yes" if served else "NO",
                        "alive" if provider.proc is not None and provider.proc.poll() is None else "DEAD",
                    )
                )
                provider.stop()
        finally:
            apiserver.terminate()
            apiserver.wait(timeout=120)
    print(
        f"\nforged: {args.forged} labelled Secrets of {args.size // 1024} KiB in the cluster (created in "
        f"{fill_s:.0f} s), one legitimate Secret mounted; DaemonSet memory limit 256 MiB\n"
    )
    table = [("mode", "RSS MiB (peak)", "cached Secrets", "ready after", "Mount served", "process"), *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
