"""The demo itself: start everything, mount, rotate, and always tear everything down."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TextIO

from csi_vso import protected
from csi_vso.demo import processes
from csi_vso.demo.driver import MountClient
from csi_vso.demo.kube import KubeApi, configure_openbao, pod_tokens
from csi_vso.demo.processes import Child, free_port, http_ok, read_line
from csi_vso.demo.scenario import (
    APP_NAMESPACE,
    APP_SERVICE_ACCOUNT,
    FILE_NAME,
    GROUP,
    KV_MOUNT,
    KV_PATH,
    LOGIN_SERVICE_ACCOUNT,
    OPERATOR_NAMESPACE,
    PROVIDER_NAME,
    SECRET_KEY,
    SECRET_NAME,
    VAULT_ROLE,
    VOLUME_NAME,
    DemoError,
    Rotation,
    demo_manifests,
    format_rotation,
    mount_attributes,
    pod_manifest,
    spc_parameters,
    wait_for,
)
from csi_vso.devkit.kubeauth import api_server_url
from csi_vso.devkit.process import die_with_parent
from csi_vso.provider.settings import DEFAULT_TOKEN_AUDIENCE


@dataclass(frozen=True)
class Settings:
    once: bool
    interval: float
    timeout: float
    keep_logs: Path | None
    log_level: str
    pki: bool = False  # the certificate scene instead of KV rotations (csi_vso.demo.pkiscene)


# -- the demo ----------------------------------------------------------------------------------


@dataclass
class Demo:
    settings: Settings
    out: TextIO
    workdir: Path = field(init=False)
    children: list[Child] = field(default_factory=list)
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def say(self, line: str = "") -> None:
        print(line, file=self.out, flush=True)

    # The top level: set up, rotate, always tear down.

    def main(self) -> int:
        self.workdir = Path(tempfile.mkdtemp(prefix="csi-vso-demo-"))
        # Ctrl-C and SIGTERM both end the demo through its clean-up, even when the demo was
        # started with SIGINT ignored (as shells do for background jobs).
        previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
        rotating = False
        try:
            self.say(f"csi-vso demo (workdir {self.workdir}, uid {os.geteuid()})")
            state = self.set_up()
            if self.settings.pki:
                return self.certificate_rotations(state)
            rotating = True
            if not self.settings.once:
                self.say(f"rotating every {self.settings.interval:g}s; Ctrl-C stops")
            number = 0
            while True:
                number += 1
                for line in format_rotation(self.rotate(state, number)):
                    self.say(line)
                if self.settings.once:
                    return 0
                time.sleep(self.settings.interval)
        except KeyboardInterrupt:
            # Once rotating, Ctrl-C is how the demo is meant to end.
            rotating = rotating or self._certificates_rotating
            self.say("stopped by Ctrl-C" if rotating else "interrupted during start-up")
            return 0 if rotating else 130
        except DemoError as exc:
            self.say(f"demo failed: {exc}")
            return 1
        except Exception as exc:  # report, then still tear everything down
            self.say(f"demo failed: {describe(exc)}")
            return 1
        finally:
            self.tear_down()
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_int)

    _certificates_rotating = False

    def certificate_rotations(self, state: DemoState) -> int:
        """The certificate scene: set it up, then report each renewal as the TLS server shows it."""
        from csi_vso.demo.pkiscenario import format_certificate_rotation
        from csi_vso.demo.pkiscene import CertificateScene

        scene = CertificateScene(self, state)
        scene.set_up()
        self._certificates_rotating = True
        if not self.settings.once:
            self.say("waiting for each renewal; Ctrl-C stops")
        number = 0
        while True:
            number += 1
            for line in format_certificate_rotation(scene.rotate(number)):
                self.say(line)
            if self.settings.once:
                return 0

    def tear_down(self) -> None:
        """Stop children newest first, undo every side effect, remove the workdir; never raises.

        A second Ctrl-C or a SIGTERM (a supervisor or ``timeout`` following up) must not cut the
        clean-up short and leave processes or a mount behind, so both are ignored meanwhile.
        """
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        previous_term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            self._tear_down()
        finally:
            signal.signal(signal.SIGTERM, previous_term)
            signal.signal(signal.SIGINT, previous_int)

    def _tear_down(self) -> None:
        for child in reversed(self.children):
            child.stop()
        if self.settings.keep_logs is not None:
            # Copied after the children stopped, so the logs are complete.
            with contextlib.suppress(OSError):
                self.settings.keep_logs.mkdir(parents=True, exist_ok=True)
                for child in self.children:
                    shutil.copy(child.log_path, self.settings.keep_logs / child.log_path.name)
        for cleanup in reversed(self.cleanups):
            with contextlib.suppress(Exception):
                cleanup()
        shutil.rmtree(self.workdir, ignore_errors=True)
        left = [c.name for c in self.children if c.alive()]
        if left or self.workdir.exists():
            self.say(
                f"shut down INCOMPLETE: still running {left}, {self.workdir} exists: {self.workdir.exists()}"
            )
        else:
            self.say("shut down: every process stopped, volume and temporary files removed")

    # Set-up, step by step.

    def set_up(self) -> DemoState:
        timeout = self.settings.timeout
        bao = self.start_openbao()
        kubeconfig, api_url = self.start_apiserver()
        api = KubeApi.connect(kubeconfig)
        api.install_crds(timeout)
        api.ensure_namespace(OPERATOR_NAMESPACE)
        api.ensure_namespace(APP_NAMESPACE)
        for account in (LOGIN_SERVICE_ACCOUNT, APP_SERVICE_ACCOUNT):
            api.create_service_account(APP_NAMESPACE, account)

        first_value = "v1-" + secrets.token_hex(4)
        configure_openbao(bao, kubeconfig=kubeconfig)
        bao.client().secrets.kv.v2.create_or_update_secret(
            path=KV_PATH, secret={SECRET_KEY: first_value}, mount_point=KV_MOUNT
        )
        self.say(f"OpenBao: kubernetes auth -> {api_url}, role {VAULT_ROLE}, {KV_MOUNT}/{KV_PATH} = v1")

        operator = self.start_operator(kubeconfig)
        socket_path = self.start_provider(kubeconfig)

        for manifest in demo_manifests(bao.address):
            api.create_custom(manifest, timeout)
            meta = manifest["metadata"]
            self.say(f"applied {manifest['kind']} {meta['namespace']}/{meta['name']}")

        self.say(f"waiting for the operator to sync Secret {APP_NAMESPACE}/{SECRET_NAME} ...")
        try:
            wait_for(
                "the operator to write the protected Secret",
                lambda: self.secret_value_if(api, first_value, operator),
                timeout,
                interval=0.1,
            )
        except DemoError as exc:
            raise DemoError(
                f"{exc}\n{api.describe_custom(GROUP, 'vaultstaticsecrets', APP_NAMESPACE, SECRET_NAME)}"
            ) from None
        self.say(
            f"Secret {APP_NAMESPACE}/{SECRET_NAME} written by the operator ({protected.PROTECTED_SELECTOR})"
        )

        pod = api.create_pod(pod_manifest())
        target = self.prepare_volume(pod["uid"])
        mount = MountClient(socket_path)
        self.cleanups.append(mount.close)
        # As the driver does with tokenRequests [{audience: ""}, {audience: csi-vso}].
        tokens = pod_tokens(api, pod, ["", DEFAULT_TOKEN_AUDIENCE])
        versions = mount.mount(mount_attributes(pod, spc_parameters(), tokens), str(target), timeout)
        self.say(
            f"Mount -> OK (pod {pod['namespace']}/{pod['name']}: verified and read with its own "
            "service-account token for the API server's audiences (pod-token mode; the operator's "
            f"Role/RoleBinding let it read exactly this Secret); writeMode provider; object versions "
            f"{', '.join(versions)})"
        )
        mounted = target / FILE_NAME
        self.say(f"mounted file {mounted}:")
        self.say(f"  {read_text(mounted)!r}")
        return DemoState(
            bao=bao, api=api, target=target, value=first_value, operator=operator, pod=pod, mount=mount
        )

    def secret_value_if(self, api: KubeApi, expected: str, operator: Child) -> str | None:
        operator.check_alive()
        value = api.secret_value(APP_NAMESPACE, SECRET_NAME, SECRET_KEY)
        return value if value == expected else None

    def start_openbao(self) -> Any:
        from csi_vso.devkit.openbao import OpenBaoDevServer

        bao = OpenBaoDevServer()
        self.cleanups.append(bao.close)
        bao.start()
        self.say(f"started OpenBao {bao.address} (dev mode, in memory)")
        return bao

    def spawn(self, name: str, argv: list[str], stdout: int | IO[bytes] | None = None) -> Child:
        log_path = self.workdir / f"{name}.log"
        log = log_path.open("ab")
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=stdout if stdout is not None else log,
            stderr=log,
            cwd=self.workdir,
            start_new_session=True,
            preexec_fn=die_with_parent(),  # a SIGKILLed demo must not leave its children running
        )
        child = Child(name=name, proc=proc, log_path=log_path, log=log)
        self.children.append(child)
        return child

    def wait_http(self, child: Child, url: str) -> None:
        """Wait until ``url`` answers 200, failing early (with its log) if ``child`` exits."""

        def probe() -> bool | None:
            child.check_alive()
            return http_ok(url) or None

        wait_for(f"{child.name} to answer {url}", probe, self.settings.timeout)

    def start_apiserver(self) -> tuple[str, str]:
        kubeconfig = self.workdir / "kubeconfig"
        child = self.spawn(
            "apiserver",
            processes.csi_vso_command("devkit", "apiserver", "--port", "0", "--kubeconfig", str(kubeconfig)),
            stdout=subprocess.PIPE,
        )
        assert child.proc.stdout is not None
        line = read_line(child.proc.stdout, self.settings.timeout, child)
        wait_for("the API server's kubeconfig", lambda: kubeconfig.exists() or None, self.settings.timeout)
        url = api_server_url(kubeconfig)
        self.say(f"started the in-memory API server {url} (pid {child.proc.pid}): {line.strip()}")
        return str(kubeconfig), url

    def start_operator(self, kubeconfig: str) -> Child:
        port = free_port()
        child = self.spawn(
            "operator",
            processes.csi_vso_command(
                "operator",
                "--kubeconfig",
                kubeconfig,
                "--log-level",
                self.settings.log_level,
                "--operator-namespace",
                OPERATOR_NAMESPACE,
                "--metrics-addr",
                f"127.0.0.1:{port}",
            ),
        )
        self.wait_http(child, f"http://127.0.0.1:{port}/healthz")
        self.say(f"started the operator (pid {child.proc.pid}, metrics http://127.0.0.1:{port}/metrics)")
        return child

    def start_provider(self, kubeconfig: str) -> Path:
        port = free_port()
        socket_dir = self.workdir / "providers"
        state_dir = self.workdir / "state"
        socket_dir.mkdir()
        state_dir.mkdir()
        child = self.spawn(
            "provider",
            processes.csi_vso_command(
                "provider",
                "--kubeconfig",
                kubeconfig,
                "--log-level",
                self.settings.log_level,
                "--socket-dir",
                str(socket_dir),
                "--provider-name",
                PROVIDER_NAME,
                "--state-dir",
                str(state_dir),
                # The pod's volume is laid out as kubelet does under the work dir (prepare_volume).
                "--kubelet-dir",
                str(self.workdir),
                # As deployed (deploy/provider/daemonset.yaml): read as the pod, with its token.
                "--secret-access",
                "pod-token",
                "--token-dir",
                str(self.workdir / "tokens"),
                "--metrics-addr",
                f"127.0.0.1:{port}",
            ),
        )
        self.wait_http(child, f"http://127.0.0.1:{port}/readyz")
        socket_path = socket_dir / f"{PROVIDER_NAME}.sock"
        wait_for("the provider socket", lambda: socket_path.exists() or None, self.settings.timeout)
        self.say(f"started the provider (pid {child.proc.pid}, socket {socket_path})")
        return socket_path

    def prepare_volume(self, pod_uid: str, volume: str = VOLUME_NAME) -> Path:
        """The pod's volume as kubelet lays it out: tmpfs as root, a plain directory otherwise.

        Root without the right to mount (an unprivileged container, no ``mount`` binary) gets
        the plain directory too, with the reason: the rest of the demo is the same either way.
        """
        target = self.workdir / "pods" / pod_uid / "volumes" / "kubernetes.io~csi" / volume / "mount"
        target.mkdir(parents=True)
        if os.geteuid() != 0:
            self.say(f"volume {target} (a plain directory: not root, so no tmpfs)")
            return target
        try:
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(target)],
                check=True,
                capture_output=True,
                text=True,
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", None) or str(exc)
            reason = (detail.strip().splitlines() or ["mount failed"])[0].strip()
            self.say(f"volume {target} (a plain directory: could not mount a tmpfs: {reason})")
            return target
        self.cleanups.append(lambda: unmount(target))
        self.say(f"volume {target} (tmpfs, as the driver mounts it)")
        return target

    # One rotation.

    def rotate(self, state: DemoState, number: int) -> Rotation:
        new_value = f"v{number + 1}-" + secrets.token_hex(4)
        mounted = state.target / FILE_NAME
        volume_inode = os.stat(state.target).st_ino
        link_before = os.readlink(state.target / "..data")
        written_wall = time.time()
        started = time.monotonic()
        state.bao.client().secrets.kv.v2.create_or_update_secret(
            path=KV_PATH, secret={SECRET_KEY: new_value}, mount_point=KV_MOUNT
        )

        def changed() -> bool | None:
            state.operator.check_alive()
            return True if read_text(mounted) == new_value else None

        wait_for(f"{FILE_NAME} to show the new version", changed, self.settings.timeout, interval=0.002)
        end_to_end = time.monotonic() - started
        written_at = state.api.secret_written_at(APP_NAMESPACE, SECRET_NAME)
        secret_written = None if written_at is None else max(0.0, written_at - written_wall)
        rotation = Rotation(
            number=number,
            old=state.value,
            new=new_value,
            end_to_end=end_to_end,
            secret_written=secret_written
            if secret_written is not None and secret_written <= end_to_end
            else None,
            data_link_before=link_before,
            data_link_after=os.readlink(state.target / "..data"),
            same_volume=os.stat(state.target).st_ino == volume_inode,
        )
        state.value = new_value
        return rotation


@dataclass
class DemoState:
    bao: Any
    api: KubeApi
    target: Path
    value: str
    operator: Child
    pod: dict[str, str]
    mount: MountClient


def describe(exc: Exception) -> str:
    """One line about an unexpected error; the API's own message for a Kubernetes API error."""
    body = getattr(exc, "body", None)
    if getattr(exc, "status", None) and isinstance(body, str | bytes):
        with contextlib.suppress(ValueError):
            return f"Kubernetes API {exc.status}: {json.loads(body).get('message', '')}"  # type: ignore[attr-defined]
    return f"{exc.__class__.__name__}: {(str(exc).splitlines() or [''])[0]}"


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def unmount(target: Path) -> None:
    subprocess.run(["umount", str(target)], check=False, capture_output=True)
