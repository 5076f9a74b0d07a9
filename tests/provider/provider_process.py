"""Run the real `csi-vso provider` as a child process: start, wait for ready, SIGKILL, SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


class ProviderProcess:
    """One `csi-vso provider` process; its JSON log lines are collected from stderr."""

    def __init__(
        self,
        kubeconfig: str,
        socket_dir: Path,
        state_dir: Path,
        *,
        rotation: bool = True,
        token_dir: Path | None = None,
        extra_args: tuple[str, ...] = (),
        kubelet_dir: Path | None = None,
        preexec: Callable[[], None] | None = None,
    ) -> None:
        self.rotation = rotation
        # Pod tokens kept for restarts (pod-token mode): beside the state dir unless told.
        self.token_dir = token_dir if token_dir is not None else state_dir.parent / "tokens"
        self.extra_args = extra_args
        self.kubelet_dir = kubelet_dir
        self.preexec = preexec
        self.kubeconfig = kubeconfig
        self.socket_dir = socket_dir
        self.state_dir = state_dir
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self._events: dict[str, float] = {}
        self._cond = threading.Condition()

    @property
    def socket_path(self) -> str:
        return str(self.socket_dir / "vso.sock")

    def start(self) -> ProviderProcess:
        self._events = {}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                # The real CLI; the wrapper only to run without rotation (the bench's poll side).
                *(
                    ["csi_vso"]
                    if self.rotation
                    else ["tests.provider.rotating_provider", "--without-rotation"]
                ),
                "provider",
                "--kubeconfig",
                self.kubeconfig,
                "--socket-dir",
                str(self.socket_dir),
                "--state-dir",
                str(self.state_dir),
                "--token-dir",
                str(self.token_dir),
                *self.extra_args,
                "--metrics-addr",
                "127.0.0.1:0",
                "--log-format",
                "json",
                *(["--kubelet-dir", str(self.kubelet_dir)] if self.kubelet_dir is not None else []),
            ],
            cwd=ROOT,
            preexec_fn=self.preexec,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        return self

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            now = time.monotonic()
            with self._cond:
                self.lines.append(line)
                try:
                    msg = json.loads(line).get("msg", "")
                except ValueError:
                    msg = ""
                self._events.setdefault(msg, now)
                self._cond.notify_all()

    def wait_for_log(self, message: str, timeout: float = 30.0) -> float:
        """Block until a log line with ``msg == message`` appears; return when it was read."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while message not in self._events:
                if self.proc is not None and self.proc.poll() is not None:
                    raise AssertionError(
                        f"provider exited ({self.proc.returncode}): {''.join(self.lines[-20:])}"
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {message!r} log line: {''.join(self.lines[-20:])}")
                self._cond.wait(timeout=min(left, 0.2))
            return self._events[message]

    def wait_ready(self, timeout: float = 30.0) -> float:
        return self.wait_for_log("provider ready", timeout)

    def wait_serving(self, timeout: float = 30.0) -> float:
        """Until Mounts are answered with rotation running: both log lines, in either order.

        Rotation starts once the cache has synced, which can be before the socket is bound, so
        "rotation started" alone does not mean the socket answers yet.
        """
        return max(self.wait_for_log("rotation started", timeout), self.wait_ready(timeout))

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL: no chance to clean up, like an OOM kill or a node crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log_records(self) -> list[dict[str, Any]]:
        out = []
        for line in list(self.lines):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out
