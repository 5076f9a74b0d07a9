"""Assemble the provider from its settings and run it: gRPC on a unix socket, metrics over HTTP.

:class:`ProviderServer` builds every collaborator (Secret cache, identity check, Mount
service, metrics) from :class:`~csi_vso.provider.settings.ProviderSettings` and an API
client, and owns the process lifecycle:

- ``start()``: start the Secret informer, the metrics endpoint and the extensions, bind
  ``<socket-dir>/<provider-name>.sock`` with its final mode 0600 (whoever can connect can
  ask for any pod's files, so only root, i.e. the driver, may; see :func:`bind_private`),
  start gRPC with the health service reporting NOT_SERVING, and flip it to SERVING once the
  cache synced.
- ``stop(grace)``: report NOT_SERVING, refuse new calls, let in-flight Mounts finish for up
  to ``grace`` seconds, stop the informer and the endpoint, remove the socket.

Extensions (the rotation of issue 4) get the assembled server through ``extensions``: each
is called as ``extension.start(server)`` after the Secret cache and the metrics endpoint
started but before the socket is bound, so no Mount is served before every extension is in
place (a provider-mode Mount must reach the rotation registry), and as ``extension.stop()``
before the core stops. They reach ``server.cache``, ``server.service``, ``server.metrics``
and ``server.settings``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from kubernetes import client

from csi_vso.provider.atomic_writer import write_atomically
from csi_vso.provider.identity import IdentityVerifier, KubeIdentityAPI
from csi_vso.provider.metrics import MetricsServer, ProviderMetrics
from csi_vso.provider.pod_api import PodAPI
from csi_vso.provider.secret_cache import SecretCache, check_cluster_access
from csi_vso.provider.secret_watches import SecretWatches
from csi_vso.provider.service import MountService, Writer
from csi_vso.provider.servicer import ProviderServicer
from csi_vso.provider.settings import POD_TOKEN, ProviderSettings
from csi_vso.provider.token_store import TokenStore
from csi_vso.provider.versions import load_or_create_key
from csi_vso.providerapi import provider_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = "v1alpha1.CSIDriverProvider"
# Above the driver's 4 MiB so an oversized request reaches us and gets a clear answer.
_MAX_MESSAGE = 8 * 1024 * 1024


class Extension(Protocol):
    def start(self, server: ProviderServer) -> None: ...
    def stop(self) -> None: ...


def remove_stale_socket(path: Path) -> None:
    """Unlink a socket left by a previous run; refuse to touch anything that is not a socket.

    The socket dir is a hostPath that outlives the container, so after a crash or a node
    reboot the old socket file is still there and bind(2) would fail with EADDRINUSE.
    """
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise RuntimeError(f"{path} exists and is not a socket; refusing to replace it")
    path.unlink()
    log.info("removed stale socket", extra={"socket": str(path)})


def bind_private(grpc_server: grpc.Server, path: Path) -> None:
    """Bind ``grpc_server`` to the unix socket ``path`` so that the socket never exists there
    with a mode other than 0600.

    bind(2) creates the socket file with 0777 minus the umask, and a chmod after it leaves a
    window in which any local process may connect (all of it under umask 000). Changing the
    umask is process-wide and would race the threads already running. So the socket is bound
    inside a fresh 0700 directory next to ``path`` (nobody else can reach into it), chmodded
    there, then renamed over ``path`` (a stale socket of a previous run is replaced in the
    same step; anything else at ``path`` is refused first).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_socket(path)
    # Short names: a unix socket path has at most 107 bytes.
    private = Path(tempfile.mkdtemp(prefix=".", dir=path.parent))  # mode 0700
    try:
        staged = private / "s"
        if grpc_server.add_insecure_port(f"unix://{staged}") == 0:
            raise RuntimeError(f"could not bind {path}")
        os.chmod(staged, 0o600)
        os.rename(staged, path)
    finally:
        with contextlib.suppress(OSError):
            for entry in os.listdir(private):
                os.unlink(private / entry)
            os.rmdir(private)


class ProviderServer:
    """The provider process: collaborators wired from settings, plus start/stop."""

    def __init__(
        self,
        settings: ProviderSettings,
        api: client.ApiClient,
        *,
        extensions: Sequence[Extension] = (),
        writer: Writer = write_atomically,
    ) -> None:
        self.settings = settings
        self.metrics = ProviderMetrics()
        self._api = api
        self.pods = PodAPI(api)
        self.identity = IdentityVerifier(
            KubeIdentityAPI(api),
            pods=self.pods,
            audience=settings.token_audience,
            require_api_token=settings.secret_access == POD_TOKEN,
            allow_unverified=settings.allow_unverified_pods,
        )
        self.cache: SecretWatches | SecretCache = (
            SecretWatches(
                self.pods, store=TokenStore(settings.token_dir), forget_pod=self.identity.forget_pod
            )
            if settings.secret_access == POD_TOKEN
            else SecretCache(api, max_bytes=settings.cluster_cache_max_bytes or None)
        )
        self.metrics.track_cached_secrets(self.cache.count)
        self.metrics.track_secret_watches(self.cache.watch_count)
        self.service = MountService(
            secrets=self.cache,
            identity=self.identity,
            version_key=load_or_create_key(settings.state_dir),
            writer=writer,
            require_mounted_target=settings.require_mounted_target,
            kubelet_dir=settings.kubelet_dir,
        )
        self._extensions = list(extensions)
        self._health = health.HealthServicer()
        self._grpc = grpc.server(
            ThreadPoolExecutor(max_workers=settings.max_workers, thread_name_prefix="mount"),
            options=[
                ("grpc.max_receive_message_length", _MAX_MESSAGE),
                ("grpc.max_send_message_length", _MAX_MESSAGE),
            ],
        )
        provider_pb2_grpc.add_CSIDriverProviderServicer_to_server(
            ProviderServicer(self.service, self.metrics), self._grpc
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._grpc)
        self._http = MetricsServer(settings.metrics_host, settings.metrics_port, self.metrics, self.ready)
        self._stopping = threading.Event()
        self._ready_thread = threading.Thread(target=self._become_ready, name="ready", daemon=True)

    @property
    def socket_path(self) -> Path:
        return self.settings.socket_path

    @property
    def metrics_port(self) -> int:
        return self._http.port

    def ready(self) -> bool:
        return self.cache.has_synced() and not self._stopping.is_set()

    def _set_health(self, status: int) -> None:
        for name in ("", SERVICE_NAME):
            self._health.set(name, status)

    def _become_ready(self) -> None:
        while not self._stopping.is_set():
            if self.cache.wait_for_sync(timeout=0.5):
                if not self._stopping.is_set():
                    self._set_health(health_pb2.HealthCheckResponse.SERVING)
                    log.info("provider ready", extra={"socket": str(self.socket_path)})
                return

    def start(self) -> None:
        self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        if self.settings.secret_access != POD_TOKEN:
            self._check_cluster_access()
        self.cache.start()
        self._http.start()
        # Extensions first: the rotation registers its Mount observer here, and a Mount served
        # before that would write a volume that rotation never hears of (until a republish).
        for extension in self._extensions:
            extension.start(self)
        path = self.socket_path
        bind_private(self._grpc, path)
        self._grpc.start()
        self._ready_thread.start()
        log.info(
            "provider started",
            extra={
                "socket": str(path),
                "metrics_port": self.metrics_port,
                "state_dir": str(self.settings.state_dir),
            },
        )

    def _check_cluster_access(self) -> None:
        """``--secret-access=cluster`` refuses to start without its cluster-wide Secret RBAC."""
        try:
            missing = check_cluster_access(self._api)
        except Exception as exc:
            raise RuntimeError(f"cannot check the provider's RBAC: {type(exc).__name__}") from None
        if missing:
            raise RuntimeError(
                "--secret-access=cluster needs RBAC the provider's identity lacks: "
                + ", ".join(missing)
                + " (or run the default --secret-access=pod-token, which needs none)"
            )

    def stop(self, grace: float | None = None) -> None:
        """Stop accepting Mounts, let in-flight ones finish (up to ``grace`` s), release everything."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        self._grpc.stop(self.settings.grace_seconds if grace is None else grace).wait()
        for extension in reversed(self._extensions):
            extension.stop()
        self.cache.stop()
        self._http.stop()
        if self._ready_thread.is_alive():
            self._ready_thread.join()
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(self.socket_path.lstat().st_mode):
                self.socket_path.unlink()
        log.info("provider stopped")

    def wait(self) -> None:
        """Block until the gRPC server has terminated (after :meth:`stop`)."""
        self._grpc.wait_for_termination()
