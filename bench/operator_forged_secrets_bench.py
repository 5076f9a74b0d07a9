"""Operator memory under forged labelled Secrets (issue 10, finding 2b), baseline side by side.

Anyone who may create a Secret can label it ``app.kubernetes.io/managed-by=csi-vso`` unless the
admission policy is installed. This bench forges N Secrets of 700 KiB in a private devkit API
server and measures, in a fresh child process per run, the operator's Secret watch cache from
start to synced:

- **baseline**: the cache as it was before the fix, every selected Secret kept whole, listed in
  one response;
- **csi-vso**: the operator's ``secret_informer`` with the :mod:`csi_vso.operator.secretcache`
  transform (none of the forgeries is a custom resource's destination, so each is kept as
  metadata only), listed in pages.

Columns: peak RSS of the child (``VmHWM``), RSS once synced, time to sync; medians of ``--runs``
runs, and the baseline/csi-vso ratio of the peak. The operator's Deployment limit is 512 MiB.

Usage: python bench/operator_forged_secrets_bench.py [--counts 250,500,1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client, config

from csi_vso import protected
from csi_vso.devkit.apiserver_process import spawn_apiserver

SECRET_BYTES = 700 * 1024
SELECTOR = f"{protected.MANAGED_BY_LABEL}={protected.MANAGED_BY_VALUE}"


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def child(mode: str, kubeconfig: str) -> None:
    """One measurement: build the cache, wait until synced, print JSON."""
    from csi_vso.operator import secretcache
    from csi_vso.operator.watch import Informer, secret_informer

    core = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
    started = time.monotonic()
    if mode == "baseline":
        holder: list[Informer] = []

        def list_secrets(**kwargs: Any) -> Any:
            if kwargs.get("watch"):  # synced as the operator's informers are: cache filled
                holder[0].synced.set()
            return core.list_secret_for_all_namespaces(**kwargs)

        list_secrets.__doc__ = "List or watch Secrets.\n\n:rtype: V1SecretList\n"
        informer = Informer(list_secrets, resync_period=300.0, label_selector=SELECTOR)
        holder.append(informer)
    else:
        informer = secret_informer(
            core,
            label_selector=SELECTOR,
            resync_period=300.0,
            transform=lambda s: secretcache.slim(s, lambda *_: False),
        )
    informer.start()
    if not informer.wait_for_sync(600):
        raise SystemExit("cache did not sync")
    synced = time.monotonic() - started
    print(
        json.dumps(
            {
                "cached": len(informer.list()),
                "peak_kib": _status_kib("VmHWM"),
                "rss_kib": _status_kib("VmRSS"),
                "sync_s": synced,
            }
        ),
        flush=True,
    )
    informer.stop()


def forge(core: client.CoreV1Api, namespace: str, start: int, stop: int) -> None:
    payload = base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()

    def one(index: int) -> None:
        core.create_namespaced_secret(
            namespace,
            {
                "metadata": {
                    "name": f"forged-{index}",
                    "labels": protected.protected_labels(str(uuid.uuid4())),
                },
                "data": {"blob": payload},
            },
        )

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(start, stop)))


def _mib(kib: float) -> str:
    return f"{kib / 1024:.0f} MiB"


def measure(mode: str, kubeconfig: str, runs: int, expected: int) -> dict[str, float]:
    results = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, __file__, "--child", mode, "--kubeconfig", kubeconfig],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        result = json.loads(out.strip().splitlines()[-1])
        assert result["cached"] == expected, result
        results.append(result)
    return {key: statistics.median(r[key] for r in results) for key in ("peak_kib", "rss_kib", "sync_s")}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--counts", default="250,500,1000", help="forged Secrets, comma-separated, ascending")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", choices=("baseline", "csi-vso"), help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.kubeconfig)
        return 0
    counts = [int(c) for c in args.counts.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = str(Path(tmp) / "kubeconfig")
        server, _ = spawn_apiserver(Path(kubeconfig))
        try:
            core = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
            core.create_namespace({"metadata": {"name": "tenant"}})
            kib = SECRET_BYTES // 1024
            print(f"forged Secrets of {kib} KiB, medians of {args.runs} runs (operator limit 512 MiB)")
            print(
                f"{'forged':>7} | {'baseline peak':>13} | {'csi-vso peak':>12} | {'ratio':>6} | "
                f"{'baseline RSS':>12} | {'csi-vso RSS':>11} | {'baseline sync':>13} | {'csi-vso sync':>12}"
            )
            have = 0
            for count in counts:
                forge(core, "tenant", have, count)
                have = count
                base = measure("baseline", kubeconfig, args.runs, count)
                ours = measure("csi-vso", kubeconfig, args.runs, count)
                ratio = base["peak_kib"] / ours["peak_kib"]
                print(
                    f"{count:>7} | {_mib(base['peak_kib']):>13} | {_mib(ours['peak_kib']):>12} | "
                    f"{ratio:>5.1f}x | "
                    f"{_mib(base['rss_kib']):>12} | {_mib(ours['rss_kib']):>11} | "
                    f"{base['sync_s']:>11.2f} s | {ours['sync_s']:>10.2f} s",
                    flush=True,
                )
        finally:
            server.terminate()
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
