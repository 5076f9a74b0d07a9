"""Rotation fairness: a small volume's rotation latency next to another tenant's huge volumes.

Issue 10, finding 1: one tenant's big volumes must not push another tenant's rotation past its
usual latency. One process runs the real :class:`~csi_vso.provider.rotation.Rotator` and the
real atomic writer on a tmpfs (Secrets come from an in-memory source that notifies like the
watch cache, so the API server's own latency is not in the numbers):

- tenant A: ``--big-volumes`` volumes (default 10) of one Secret with ``--big-files`` keys
  (default 512, the per-volume cap), one file per key: 5,120 files. The cap is 512 files per
  volume, so "5,000-file volumes" means ten volumes at the cap, rewritten together. A thread
  rewrites A's Secret again as soon as the previous rotation of all its volumes is done.
- tenant B: one volume with one file. Each sample replaces B's Secret and times until the
  volume's ``..data`` moved, as seen by a reader in a process of its own polling every 0.5 ms
  (the application's view; a polling thread inside the bench would add its own GIL waits).

Per run: B's p50/p99 alone (baseline) and while A churns, and the ratio. ``--runs`` runs, the
table shows each run's numbers and the medians. Run as root (tmpfs):

    python bench/fairness_bench.py [--runs 5 --samples 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from csi_vso import logs  # noqa: E402
from csi_vso.provider.authz import VerifiedPod  # noqa: E402
from tests.provider.rotation_support import (  # noqa: E402
    MemorySecrets,
    make_secret,
    make_spec,
    mount,
    new_rotator,
    wait_idle,
)

POD_B = VerifiedPod(namespace="team-b", name="app-b", uid="uid-b", service_account="app")


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def big_data(files: int, version: int) -> dict[str, bytes]:
    return {f"k{i:04d}": f"{version}-{i}".encode() for i in range(files)}


# The reader: a process of its own, as the application reading the volume is. Polling from a
# thread of the bench would time the bench's own wait for the GIL along with the rotation.
_READER = """
import os, sys, time
for line in sys.stdin:
    target, before = line.rstrip("\\n").split("\\0")
    deadline = time.monotonic() + 30
    while os.readlink(target + "/..data") == before:
        if time.monotonic() > deadline:
            break
        time.sleep(0.0005)
    print(time.monotonic(), flush=True)
"""


class Reader:
    """A separate process that polls a volume's ``..data`` every 0.5 ms and reports (on the
    shared monotonic clock) when it moved."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _READER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def watch(self, target: Path, before: str) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(f"{target}\0{before}\n")
        self._proc.stdin.flush()

    def moved_at(self) -> float:
        assert self._proc.stdout is not None
        return float(self._proc.stdout.readline())

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        self._proc.wait(timeout=10)


def small_latency(
    secrets: MemorySecrets, reader: Reader, target: Path, samples: int, start: int
) -> list[float]:
    """Replace B's Secret ``samples`` times; each time, seconds until the reader saw ``..data`` move."""
    out = []
    for n in range(start, start + samples):
        before = os.readlink(target / "..data")
        reader.watch(target, before)
        time.sleep(0.002)  # the reader is polling before the change
        began = time.monotonic()
        secrets.set(make_secret("small", {"value": f"v{n}".encode()}, namespace="team-b"))
        moved = reader.moved_at()
        if os.readlink(target / "..data") == before:
            raise RuntimeError("the small volume did not rotate within 30 s")
        out.append(moved - began)
        time.sleep(0.005)  # let A's churn take the workers again between samples
    return out


def one_run(base: Path, args: argparse.Namespace) -> dict[str, float]:
    secrets = MemorySecrets()
    secrets.set(make_secret("big", big_data(args.big_files, 0), namespace="team-a"), notify=False)
    secrets.set(make_secret("small", {"value": b"v0"}, namespace="team-b"), notify=False)
    rotator, _registry, _prom = new_rotator(secrets, base / "state", gc_interval=3600.0)
    rotator.start()
    reader = Reader()
    try:
        big_targets = []
        for i in range(args.big_volumes):
            target = base / f"big-{i}"
            target.mkdir()
            mount(rotator, secrets, make_spec(target, [{"secretName": "big", "secretNamespace": "team-a"}]))
            big_targets.append(target)
        small = base / "small"
        small.mkdir()
        mount(rotator, secrets, make_spec(small, [{"secretName": "small"}], pod=POD_B), POD_B)
        wait_idle(rotator)
        alone = small_latency(secrets, reader, small, args.samples, 1)
        stop = threading.Event()
        rounds = [0]

        def churn() -> None:
            version = 1
            while not stop.is_set():
                links = [os.readlink(t / "..data") for t in big_targets]
                secrets.set(make_secret("big", big_data(args.big_files, version), namespace="team-a"))
                while not stop.is_set() and any(
                    os.readlink(t / "..data") == link for t, link in zip(big_targets, links, strict=True)
                ):
                    time.sleep(0.005)  # the load generator itself must not take the GIL all the time
                version += 1
                rounds[0] += 1

        churner = threading.Thread(target=churn, daemon=True)
        churner.start()
        time.sleep(0.2)  # A is mid-rotation before the first sample
        busy = small_latency(secrets, reader, small, args.samples, args.samples + 1)
        stop.set()
        churner.join()
        wait_idle(rotator, timeout=120)
        return {
            "alone_p50": percentile(alone, 50) * 1000,
            "alone_p99": percentile(alone, 99) * 1000,
            "busy_p50": percentile(busy, 50) * 1000,
            "busy_p99": percentile(busy, 99) * 1000,
            "big_rounds": float(rounds[0]),
        }
    finally:
        reader.close()
        rotator.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--big-volumes", type=int, default=10)
    parser.add_argument("--big-files", type=int, default=512)
    args = parser.parse_args()
    logs.configure(level="warning")  # a warning shows its fields (the error), as in the provider
    results = []
    for run in range(args.runs):
        base = Path(tempfile.mkdtemp(prefix="csi-vso-fair-"))
        mounted = os.geteuid() == 0
        if mounted:
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512m", "tmpfs", str(base)], check=True)
        try:
            results.append(one_run(base, args))
        finally:
            if mounted:
                subprocess.run(["umount", "-l", str(base)], check=False)
            subprocess.run(["rm", "-rf", str(base)], check=False)
        r = results[-1]
        print(
            f"run {run + 1}: alone p50 {r['alone_p50']:.2f} ms p99 {r['alone_p99']:.2f} ms | "
            f"next to tenant A p50 {r['busy_p50']:.2f} ms p99 {r['busy_p99']:.2f} ms | "
            f"A's rotations meanwhile {r['big_rounds']:.0f}",
            flush=True,
        )
    med = {k: statistics.median(r[k] for r in results) for k in results[0]}
    print()
    print(
        f"small volume (1 file) rotation latency, {args.samples} samples per run, median of {args.runs} "
        f"runs; tenant A: {args.big_volumes} volumes x {args.big_files} files "
        f"= {args.big_volumes * args.big_files} files rotating back to back"
    )
    print(f"{'':24}{'alone (baseline)':>18}{'next to tenant A':>18}{'ratio':>8}")
    for p in ("p50", "p99"):
        alone, busy = med[f"alone_{p}"], med[f"busy_{p}"]
        print(f"{'rotation ' + p + ' (ms)':24}{alone:>18.2f}{busy:>18.2f}{busy / alone:>8.2f}")
    print(f"{'A rotations per run':24}{'':>18}{med['big_rounds']:>18.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
