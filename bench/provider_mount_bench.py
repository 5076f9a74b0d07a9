"""Mount latency of the csi-vso provider next to what per-pod Vault providers pay per mount.

One run starts everything for real: the in-memory Kubernetes API server, the provider
(gRPC on a unix socket, Secret cache, identity check, rotation registry), and an OpenBao
dev server. A
SecretProviderClass of 10 objects x 1 KiB is mounted ``--calls`` times, sequentially, by
a driver-style gRPC client in each mode:

- ``driver``        the provider returns the files (the driver writes them);
- ``provider``      the provider writes into the same target again (kubelet's republish:
                    bytes compared, nothing rewritten);
- ``provider-new``  the provider writes a fresh target each call (first mount of a pod),
                    which includes fsyncing the volume's record into the mount registry
                    in the state dir (a temp dir on the node's disk here);
- ``baseline``      what a per-pod Vault provider does on every Mount: a kubernetes-auth
                    login to OpenBao with the pod's service-account JWT (OpenBao calls the
                    API server's TokenReview) plus a KV v2 read of the 10 keys, with hvac.

Each mode runs ``--runs`` times; the table shows the median over runs of p50, p99 and
mounts/s, and the ratio of the baseline's p50 to each mode's. Run as root to put targets
on a real tmpfs:  python bench/provider_mount_bench.py
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from csi_vso.devkit.apiserver import APIServer  # noqa: E402
from csi_vso.devkit.kubeauth import configure_kubernetes_auth  # noqa: E402
from csi_vso.devkit.openbao import OpenBaoDevServer  # noqa: E402
from csi_vso.kube import api_client  # noqa: E402
from csi_vso.provider.rotation import RotationExtension  # noqa: E402
from csi_vso.provider.server import ProviderServer  # noqa: E402
from csi_vso.provider.settings import ProviderSettings  # noqa: E402
from tests.provider.driver_support import Cluster, DriverClient, Pod, mount_request  # noqa: E402
from tests.provider.kubelet_support import KubeletDir  # noqa: E402

OBJECTS = 10
VALUE_BYTES = 1024


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def timed(calls: int, one: Callable[[int], object]) -> tuple[float, float, float]:
    """(p50 ms, p99 ms, calls/s) of ``calls`` sequential calls of ``one(i)``."""
    latencies: list[float] = []
    started = time.perf_counter()
    for i in range(calls):
        t0 = time.perf_counter()
        one(i)
        latencies.append(time.perf_counter() - t0)
    wall = time.perf_counter() - started
    return percentile(latencies, 50) * 1e3, percentile(latencies, 99) * 1e3, calls / wall


def setup_openbao(bao: OpenBaoDevServer, kubeconfig: Path, pod: Pod, data: dict[str, str]) -> None:
    root = bao.client()
    configure_kubernetes_auth(root, kubeconfig=kubeconfig)
    root.sys.create_or_update_policy("bench-read", 'path "secret/data/bench" { capabilities = ["read"] }')
    root.write_data(
        "auth/kubernetes/role/bench",
        data={
            "bound_service_account_names": [pod.service_account],
            "bound_service_account_namespaces": [pod.namespace],
            "token_policies": ["bench-read"],
            "token_ttl": "10m",
        },
    )
    root.secrets.kv.v2.create_or_update_secret(path="bench", secret=data, mount_point="secret")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--baseline-calls", type=int, default=None, help="default: --calls")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    baseline_calls = args.baseline_calls or args.calls

    work = Path(tempfile.mkdtemp(prefix="csi-vso-bench-"))
    tmpfs = work / "tmpfs"
    tmpfs.mkdir()
    mounted = os.geteuid() == 0
    if mounted:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512m", "tmpfs", str(tmpfs)], check=True)
    apiserver = APIServer(port=0)
    apiserver.start()
    server: ProviderServer | None = None
    try:
        kubeconfig = work / "kubeconfig"
        apiserver.write_kubeconfig(str(kubeconfig))
        cluster = Cluster(api_client(str(kubeconfig)))
        ns = cluster.namespace("bench")
        pod = cluster.pod(ns)
        values = {f"key{i}": secrets.token_bytes(VALUE_BYTES // 4 * 3) for i in range(OBJECTS)}
        values = {k: base64.b64encode(v)[:VALUE_BYTES] for k, v in values.items()}
        cluster.secret(ns, "bench", values)

        settings = ProviderSettings(
            socket_dir=work / "sockets",
            state_dir=work / "state",
            token_dir=work / "tokens",
            kubelet_dir=tmpfs,
            metrics_port=0,
            grace_seconds=5,
        )
        kubelet = KubeletDir(tmpfs)  # targets in kubelet's layout, as the provider requires
        # As `csi-vso provider` runs: with rotation, so every provider-mode Mount also pays for
        # being registered (a record on disk for a new volume, a cached re-render on republish).
        server = ProviderServer(settings, api_client(str(kubeconfig)), extensions=[RotationExtension()])
        server.start()
        assert server.cache.wait_for_sync(30)
        driver = DriverClient(str(settings.socket_path))
        objects = [{"secretName": "bench", "key": k} for k in sorted(values)]
        # Pod-token mode watches a Secret from its first Mount on: start that watch before timing.
        driver.mount(mount_request(pod, objects, str(tmpfs / "unused"), write_mode="driver"))

        def driver_mode(_: int) -> object:
            unused = str(kubelet.target(pod.uid, "unused", create=False))
            return driver.mount(mount_request(pod, objects, unused, write_mode="driver"))

        same = kubelet.target(pod.uid, "same")

        def provider_mode(_: int) -> object:
            return driver.mount(mount_request(pod, objects, str(same)))

        def provider_new(i: int) -> object:
            target = kubelet.target(pod.uid, f"new-{run_id}-{i}")
            return driver.mount(mount_request(pod, objects, str(target)))

        with OpenBaoDevServer() as bao:
            setup_openbao(bao, kubeconfig, pod, {k: v.decode() for k, v in values.items()})
            jwt = cluster.token(pod, "vault")

            def baseline(_: int) -> object:
                vault = bao.client(token="")
                vault.auth.kubernetes.login(role="bench", jwt=jwt, use_token=True)
                read = vault.secrets.kv.v2.read_secret_version(
                    path="bench", mount_point="secret", raise_on_deleted_version=True
                )
                assert len(read["data"]["data"]) == OBJECTS
                return read

            modes: dict[str, tuple[Callable[[int], object], int]] = {
                "driver": (driver_mode, args.calls),
                "provider": (provider_mode, args.calls),
                "provider-new": (provider_new, args.calls),
                "baseline": (baseline, baseline_calls),
            }
            results: dict[str, list[tuple[float, float, float]]] = {m: [] for m in modes}
            for run_id in range(args.runs):
                for mode, (fn, calls) in modes.items():
                    if mode != "provider-new":
                        fn(0)  # warm caches and connections
                    results[mode].append(timed(calls, fn))
                    print(f"run {run_id + 1}/{args.runs} {mode:<13} done", file=sys.stderr)
        driver.close()
    finally:
        if server is not None:
            server.stop(5)
        apiserver.stop()
        if mounted:
            subprocess.run(["umount", "-l", str(tmpfs)], check=False)
        subprocess.run(["rm", "-rf", str(work)], check=False)

    base_p50 = statistics.median(r[0] for r in results["baseline"])
    print(
        f"\nMount of an SPC with {OBJECTS} objects x {VALUE_BYTES} B; {args.calls} calls per mode "
        f"({baseline_calls} for the baseline), median of {args.runs} runs; targets on "
        f"{'tmpfs' if mounted else 'a temp dir'}\n"
    )
    print(f"| {'mode':<13} | {'p50 ms':>8} | {'p99 ms':>8} | {'mounts/s':>9} | {'baseline p50 / p50':>18} |")
    print(f"|{'-' * 15}|{'-' * 10}|{'-' * 10}|{'-' * 11}|{'-' * 20}|")
    for mode, runs in results.items():
        p50 = statistics.median(r[0] for r in runs)
        p99 = statistics.median(r[1] for r in runs)
        rate = statistics.median(r[2] for r in runs)
        print(f"| {mode:<13} | {p50:8.2f} | {p99:8.2f} | {rate:9.0f} | {base_p50 / p50:17.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
