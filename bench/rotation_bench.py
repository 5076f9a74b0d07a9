"""Live rotation at node scale, next to the driver's polling alternative.

One run starts everything for real: the in-memory Kubernetes API server (its own process),
the provider with rotation (its own process, so its CPU and RSS are its own), a tmpfs with
``--mounts`` target directories, each mounted in provider mode by a driver-style gRPC client
with ``--files`` files from one shared protected Secret. Then:

- **push** (csi-vso), for each ``--modes`` value and each ``--rotation-workers`` value (one
  writer thread against four, side by side): ``--rotations`` times, replace the Secret
  through the API and time until the *last* volume shows the new version (``..data``
  moved and the content checked afterwards), plus the provider's CPU seconds for that
  rotation; then the same for a Secret used by a single volume. RSS is the provider's after
  the rotations (and its peak).
- **poll** (what the Secrets Store CSI driver does with rotation enabled): a provider
  without rotation; after each Secret change a driver-style loop re-Mounts every volume, one
  after another, as the driver's rotation reconciler does each poll interval. The pass time
  and its CPU are measured; the staleness a 60 s / 120 s interval implies is derived: a change
  lands at a uniformly random point of the interval, so the last volume sees it after
  ``U * interval + pass`` (p50 at U = 0.5, p99 at U = 0.99). Every pass also costs its CPU
  when nothing changed.

Run as root (tmpfs):  python bench/rotation_bench.py   [--mounts 1000 --files 5 --rotations 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kubernetes import config  # noqa: E402

from csi_vso.devkit.apiserver_process import spawn_apiserver  # noqa: E402
from tests.provider.driver_support import Cluster, DriverClient, Pod, mount_request  # noqa: E402
from tests.provider.kubelet_support import KubeletDir  # noqa: E402
from tests.provider.provider_process import ProviderProcess  # noqa: E402

_TICKS = os.sysconf("SC_CLK_TCK")


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime


def rss_mib(pid: int) -> tuple[float, float]:
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


def secret_data(files: int, version: int) -> dict[str, bytes]:
    return {f"key{i}": f"v{version}:key{i}:".encode() + b"s" * 200 for i in range(files)}


def objects(files: int) -> list[dict[str, str]]:
    return [{"secretName": "shared", "key": f"key{i}"} for i in range(files)]


def data_link(target: Path) -> str:
    return os.readlink(target / "..data")


def wait_all_moved(targets: list[Path], old: list[str], timeout: float = 120.0) -> float:
    """Poll until every target's ..data moved away from ``old``; return the time the last one did."""
    deadline = time.monotonic() + timeout
    i = 0
    while i < len(targets):
        if data_link(targets[i]) != old[i]:
            i += 1
            continue
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {i} of {len(targets)} volumes updated")
        time.sleep(0.0005)
    return time.monotonic()


def check_version(targets: list[Path], version: int) -> None:
    prefix = f"v{version}:".encode()
    bad = [t for t in targets if not (t / "key0").read_bytes().startswith(prefix)]
    if bad:
        raise RuntimeError(f"{len(bad)} volumes do not hold version {version}")


def mount_all(provider: ProviderProcess, pod: Pod, targets: list[Path], files: int) -> float:
    driver = DriverClient(provider.socket_path)
    start = time.monotonic()
    try:
        for t in targets:
            t.mkdir(parents=True, exist_ok=True)
            response = driver.mount(mount_request(pod, objects(files), str(t)))
            if response.error.code:
                raise RuntimeError(response.error.code)
    finally:
        driver.close()
    return time.monotonic() - start


def push(
    cluster: Cluster,
    ns: str,
    provider: ProviderProcess,
    targets: list[Path],
    files: int,
    rotations: int,
    name: str,
) -> tuple[list[float], list[float]]:
    latencies, cpus = [], []
    version = 1000
    for _ in range(rotations):
        version += 1
        old = [data_link(t) for t in targets]
        time.sleep(0.3)  # let the previous rotation's sweeps and registry flush settle
        cpu0 = cpu_seconds(provider.pid)
        t0 = time.monotonic()
        cluster.secret(ns, name, secret_data(files, version))
        done = wait_all_moved(targets, old)
        latencies.append(done - t0)
        time.sleep(0.6)  # include the batched registry flush in the rotation's CPU
        cpus.append(cpu_seconds(provider.pid) - cpu0)
        check_version(targets, version)
    return latencies, cpus


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mounts", type=int, default=1000)
    parser.add_argument("--files", type=int, default=5)
    parser.add_argument("--rotations", type=int, default=20)
    parser.add_argument("--poll-passes", type=int, default=3)
    parser.add_argument(
        "--modes",
        default="pod-token,cluster",
        help="provider --secret-access modes to push with, side by side",
    )
    parser.add_argument(
        "--rotation-workers",
        default="1,4",
        help="provider --rotation-workers values to push with, side by side (4 was the default "
        "before the GIL handoff per syscall was measured)",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root: the volumes live on a real tmpfs", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="rotation-bench-"))
    vols = work / "vols"
    vols.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1g", "tmpfs", str(vols)], check=True)
    kubeconfig = work / "kubeconfig"
    providers: list[ProviderProcess] = []
    apiserver: subprocess.Popen[str] | None = None
    try:
        apiserver, _ = spawn_apiserver(kubeconfig)
        api = config.new_client_from_config(config_file=str(kubeconfig))
        cluster = Cluster(api)
        ns = cluster.namespace("bench")
        pod = cluster.pod(ns)
        cluster.secret(ns, "shared", secret_data(args.files, 0))

        # --- push: csi-vso rotation, in each --secret-access mode (side by side) -----------
        push_rows = []
        metrics_port = None
        configs = [(m, int(w)) for m in args.modes.split(",") for w in args.rotation_workers.split(",")]
        for mode, workers in configs:
            run_id = f"{mode}-w{workers}"
            (work / f"sock-push-{run_id}").mkdir()
            provider = ProviderProcess(
                str(kubeconfig),
                work / f"sock-push-{run_id}",
                work / f"state-push-{run_id}",
                extra_args=("--secret-access", mode, "--rotation-workers", str(workers)),
                kubelet_dir=vols,
            )
            providers.append(provider)
            provider.start().wait_serving()
            kubelet = KubeletDir(vols)  # targets in kubelet's layout, as the provider requires
            targets = [
                kubelet.target(pod.uid, f"push-{run_id}-{i:04d}", create=False) for i in range(args.mounts)
            ]
            mount_seconds = mount_all(provider, pod, targets, args.files)
            many, many_cpu = push(cluster, ns, provider, targets, args.files, args.rotations, "shared")
            rss, peak = rss_mib(provider.pid)
            # One volume of its own Secret: the latency a single pod sees.
            single_name = f"single-{run_id}"
            cluster.secret(ns, single_name, secret_data(args.files, 0))
            single = [kubelet.target(pod.uid, single_name)]
            driver = DriverClient(provider.socket_path)
            response = driver.mount(
                mount_request(
                    pod,
                    [{"secretName": single_name, "key": f"key{i}"} for i in range(args.files)],
                    str(single[0]),
                )
            )
            driver.close()
            assert not response.error.code
            one, one_cpu = push(cluster, ns, provider, single, args.files, args.rotations, single_name)
            metrics_port = next(
                (r.get("metrics_port") for r in provider.log_records() if r.get("msg") == "provider started"),
                None,
            )
            provider.stop()
            push_rows.append(
                (f"{mode}, {workers} worker(s)", many, many_cpu, rss, peak, one, one_cpu, mount_seconds)
            )

        # --- poll: the driver re-Mounts every volume each interval ------------------------
        (work / "sock-poll").mkdir()
        poller = ProviderProcess(
            str(kubeconfig), work / "sock-poll", work / "state-poll", rotation=False, kubelet_dir=vols
        )
        providers.append(poller)
        poller.start().wait_ready()
        poll_targets = [kubelet.target(pod.uid, f"poll-{i:04d}", create=False) for i in range(args.mounts)]
        mount_all(poller, pod, poll_targets, args.files)
        passes, pass_cpu, idle_pass, idle_cpu = [], [], [], []
        version = 5000
        for _ in range(args.poll_passes):
            version += 1
            cluster.secret(ns, "shared", secret_data(args.files, version))
            time.sleep(0.5)  # the provider's cache has the change; the files do not
            cpu0 = cpu_seconds(poller.pid)
            passes.append(mount_all(poller, pod, poll_targets, args.files))
            pass_cpu.append(cpu_seconds(poller.pid) - cpu0)
            check_version(poll_targets, version)
            cpu0 = cpu_seconds(poller.pid)
            idle_pass.append(mount_all(poller, pod, poll_targets, args.files))  # nothing changed
            idle_cpu.append(cpu_seconds(poller.pid) - cpu0)
        poll_rss, poll_peak = rss_mib(poller.pid)
        poller.stop()
    finally:
        for p in providers:
            p.stop()
        if apiserver is not None:
            apiserver.terminate()
            apiserver.wait(timeout=30)
        subprocess.run(["umount", "-l", str(vols)], check=False)
        subprocess.run(["rm", "-rf", str(work)], check=False)

    pass_s = statistics.median(passes)
    ms = 1000.0
    print(
        f"\nrotation: {args.mounts} provider-mode volumes x {args.files} files on tmpfs, one shared Secret, "
        f"{args.rotations} rotations (API write -> last volume's ..data moved), {os.cpu_count()} CPUs\n"
    )
    rows = [("", "last volume p50", "last volume p99", "CPU s / rotation", "provider RSS (peak)")]
    for mode, many, many_cpu, rss, peak, one, one_cpu, _ in push_rows:
        rows += [
            (
                f"csi-vso push ({mode}), {args.mounts} volumes",
                f"{ms * percentile(many, 50):.0f} ms",
                f"{ms * percentile(many, 99):.0f} ms",
                f"{statistics.median(many_cpu):.2f}",
                f"{rss:.0f} MiB ({peak:.0f})",
            ),
            (
                f"csi-vso push ({mode}), 1 volume",
                f"{ms * percentile(one, 50):.1f} ms",
                f"{ms * percentile(one, 99):.1f} ms",
                f"{statistics.median(one_cpu):.3f}",
                "",
            ),
        ]
    rows += [
        (
            f"poll: one re-Mount pass over {args.mounts}",
            f"{pass_s:.2f} s (pass)",
            f"{max(passes):.2f} s (pass)",
            f"{statistics.median(pass_cpu):.2f} (+{statistics.median(idle_cpu):.2f} per idle pass)",
            f"{poll_rss:.0f} MiB ({poll_peak:.0f})",
        ),
        ("poll every 60 s (implied)", f"{30 + pass_s:.1f} s", f"{0.99 * 60 + pass_s:.1f} s", "", ""),
        ("poll every 120 s (implied)", f"{60 + pass_s:.1f} s", f"{0.99 * 120 + pass_s:.1f} s", "", ""),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    mounts = ", ".join(f"{mode} {row[-1]:.2f} s" for mode, *row in push_rows)
    print(
        f"\ninitial Mount of {args.mounts} volumes: {mounts}; idle re-Mount pass "
        f"(unchanged content): {statistics.median(idle_pass):.2f} s; metrics port was {metrics_port}; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    for mode, many, _, _, _, one, *_ in push_rows:
        print(
            json.dumps(
                {
                    "mode": mode,
                    "push_ms": [round(ms * x, 1) for x in many],
                    "single_ms": [round(ms * x, 1) for x in one],
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
