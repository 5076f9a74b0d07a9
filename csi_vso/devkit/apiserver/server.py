"""The server object: wires store, registry, operations, controllers, auth and HTTP together.

``APIServer(port=0).start()`` serves on 127.0.0.1 from a background thread; ``stop()``
ends open watches, closes keep-alive connections and joins the threads, so a test fixture
leaves nothing behind. ``write_kubeconfig`` writes a kubeconfig for the admin user (or any
static token), which is all the official kubernetes client needs.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import socket
import threading
import time
from collections.abc import Mapping
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from csi_vso.devkit.apiserver import bootstrap, reviews
from csi_vso.devkit.apiserver.auth import ADMIN, Authenticator
from csi_vso.devkit.apiserver.controllers import DEFAULT_GC_DELAY, DEFAULT_NAMESPACE_DELAY, Controllers
from csi_vso.devkit.apiserver.handler import Handler
from csi_vso.devkit.apiserver.operations import Operations
from csi_vso.devkit.apiserver.rbac import User
from csi_vso.devkit.apiserver.rbacindex import StorePolicy
from csi_vso.devkit.apiserver.resources import Registry, ResourceType
from csi_vso.devkit.apiserver.store import Store
from csi_vso.devkit.apiserver.tls import ServingCert, generate
from csi_vso.devkit.apiserver.token_cache import DEFAULT_TTL as DEFAULT_TOKEN_CACHE_TTL
from csi_vso.devkit.apiserver.token_cache import TokenCache
from csi_vso.devkit.apiserver.tokens import BoundObject, TokenIssuer

Obj = dict[str, Any]

DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
KUBERNETES_VERSION = {"major": "1", "minor": "33", "gitVersion": "v1.33.0-csi-vso-devkit"}


class App:
    """Everything a request handler needs, shared by all connections."""

    def __init__(
        self,
        *,
        watch_window: int,
        bookmark_interval: float,
        tokens: Mapping[str, User],
        issuer: str,
        root_ca_pem: str,
        gc_delay: float = DEFAULT_GC_DELAY,
        namespace_delay: float = DEFAULT_NAMESPACE_DELAY,
        token_cache_ttl: float = DEFAULT_TOKEN_CACHE_TTL,
    ) -> None:
        self.store = Store(window=watch_window)
        self.policy = StorePolicy(self.store)  # indexes RBAC bindings from the first write on
        self.registry = Registry.with_builtins()
        self.ops = Operations(self.store, self.registry, root_ca_pem=root_ca_pem)
        self.controllers = Controllers(self.ops, gc_delay=gc_delay, namespace_delay=namespace_delay)
        self.issuer = TokenIssuer(issuer)
        self.auth = Authenticator(self.store, self.issuer, tokens)
        self.token_cache = TokenCache(token_cache_ttl)
        self.bookmark_interval = bookmark_interval
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()

    def track(self, conn: socket.socket, alive: bool) -> None:
        with self._conn_lock:
            (self._connections.add if alive else self._connections.discard)(conn)

    def close_connections(self) -> None:
        with self._conn_lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def version_info(self) -> Obj:
        return {
            **KUBERNETES_VERSION,
            "gitCommit": "",
            "gitTreeState": "clean",
            "buildDate": "",
            "goVersion": "",
            "compiler": "python",
            "platform": "linux/amd64",
        }

    def openid_configuration(self) -> Obj:
        return {
            "issuer": self.issuer.issuer,
            "jwks_uri": f"{self.issuer.issuer}/openid/v1/jwks",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def review(self, rt: ResourceType, namespace: str, body: Any, user: User) -> Obj:
        if rt.plural == "tokenreviews":
            review = self.auth.token_review(body)
            spec = review["spec"]
            audiences = list(spec.get("audiences") or self.auth.api_audiences)
            review["status"] = self.token_cache.remember(spec.get("token", ""), audiences, review["status"])
            return review
        if rt.plural == "selfsubjectreviews":
            return self.auth.self_subject_review(user)
        if rt.plural == "selfsubjectaccessreviews":
            return reviews.self_subject_access_review(self.policy, user, body)
        if rt.plural == "selfsubjectrulesreviews":
            return reviews.self_subject_rules_review(self.policy, user, body)
        return reviews.subject_access_review(self.policy, body)


class APIServer:
    """An in-memory Kubernetes API server on 127.0.0.1 (see the package docstring)."""

    def __init__(
        self,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        tokens: Mapping[str, User] | None = None,
        admin_token: str | None = None,
        watch_window: int = 25_000,
        bookmark_interval: float = 60.0,
        issuer: str = DEFAULT_ISSUER,
        tls: bool = False,
        gc_delay: float = DEFAULT_GC_DELAY,
        namespace_delay: float = DEFAULT_NAMESPACE_DELAY,
        token_cache_ttl: float = DEFAULT_TOKEN_CACHE_TTL,
    ) -> None:
        self.admin_token = admin_token or secrets.token_urlsafe(24)
        static = {self.admin_token: ADMIN, **(tokens or {})}
        # A CA exists even over plain HTTP: every namespace gets it as kube-root-ca.crt, as in a cluster.
        self.ca = generate(host)
        self.tls: ServingCert | None = self.ca if tls else None
        self.app = App(
            watch_window=watch_window,
            bookmark_interval=bookmark_interval,
            tokens=static,
            issuer=issuer,
            root_ca_pem=self.ca.ca_pem.decode(),
            gc_delay=gc_delay,
            namespace_delay=namespace_delay,
            token_cache_ttl=token_cache_ttl,
        )
        self._host = host
        self._port = port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> APIServer:
        handler = type("BoundHandler", (Handler,), {"app": self.app})
        httpd = ThreadingHTTPServer((self._host, self._port), handler)
        httpd.daemon_threads = True
        if self.tls is not None:
            # Handshakes happen in each connection's thread (do_handshake_on_connect=False), so
            # a client that never completes one cannot stall the accept loop.
            httpd.socket = self.tls.server_context().wrap_socket(
                httpd.socket, server_side=True, do_handshake_on_connect=False
            )
        httpd.block_on_close = False
        self._httpd = httpd
        self.app.controllers.start()
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="apiserver-http", daemon=True
        )
        self._thread.start()
        self.app.ops.create(self._type("", "v1", "namespaces"), "", {"metadata": {"name": "default"}})
        self.app.ops.create(self._type("", "v1", "namespaces"), "", {"metadata": {"name": "kube-system"}})
        rbac_group = "rbac.authorization.k8s.io"
        for role in bootstrap.cluster_roles():
            self.app.ops.create(self._type(rbac_group, "v1", "clusterroles"), "", role)
        for binding in bootstrap.cluster_role_bindings():
            self.app.ops.create(self._type(rbac_group, "v1", "clusterrolebindings"), "", binding)
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self.app.store.close_watchers()
        self.app.close_connections()
        self._httpd.server_close()
        self.app.controllers.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None

    def __enter__(self) -> APIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --------------------------------------------------------------- accessors

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{self._host}:{self.port}"

    @property
    def store(self) -> Store:
        return self.app.store

    def _type(self, group: str, version: str, plural: str) -> ResourceType:
        rt = self.app.registry.lookup(group, version, plural)
        assert rt is not None
        return rt

    def add_token(self, token: str, user: User) -> None:
        """Accept ``token`` as a bearer token for ``user`` (tests acting as someone else)."""
        self.app.auth.static[token] = user

    def set_watch_window(self, events: int) -> None:
        """Retain only the newest ``events`` watch events; older resumes get 410 Expired."""
        self.app.store.set_window(events)

    def drop_watches(self) -> None:
        """End every open watch stream now, as when an API server restarts (clients resume)."""
        self.app.store.close_watchers()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until the garbage collector / namespace controller have no queued work."""
        return self.app.controllers.wait_idle(timeout)

    def mint_token(
        self,
        namespace: str,
        service_account: str,
        audiences: list[str],
        *,
        expiration_seconds: int = 3600,
        issued_at: float | None = None,
        bound_pod: str | None = None,
    ) -> str:
        """A service-account token bypassing TokenRequest's limits (e.g. already expired), for tests."""
        sa = self.app.store.get("serviceaccounts", namespace, service_account)
        if sa is None:
            raise KeyError(f"service account {namespace}/{service_account} not found")
        bound = None
        if bound_pod is not None:
            pod = self.app.store.get("pods", namespace, bound_pod)
            if pod is None:
                raise KeyError(f"pod {namespace}/{bound_pod} not found")
            bound = BoundObject("Pod", bound_pod, pod.meta["uid"])
        token, _ = self.app.issuer.issue(
            namespace=namespace,
            service_account=service_account,
            service_account_uid=sa.meta["uid"],
            audiences=audiences,
            expiration_seconds=expiration_seconds,
            bound=bound,
            issued_at=time.time() if issued_at is None else issued_at,
        )
        return token

    def kubeconfig(self, token: str | None = None, user: str = "admin") -> Obj:
        cluster: Obj = {"server": self.url}
        if self.tls is not None:
            cluster["certificate-authority-data"] = base64.b64encode(self.tls.ca_pem).decode()
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "csi-vso-devkit", "cluster": cluster}],
            "users": [{"name": user, "user": {"token": token or self.admin_token}}],
            "contexts": [
                {
                    "name": "csi-vso-devkit",
                    "context": {"cluster": "csi-vso-devkit", "user": user, "namespace": "default"},
                }
            ],
            "current-context": "csi-vso-devkit",
            "preferences": {},
        }

    def write_kubeconfig(self, path: str | Path, token: str | None = None, user: str = "admin") -> Path:
        """Write a kubeconfig (mode 0600: it holds a bearer token) and return its path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch(mode=0o600, exist_ok=True)
        target.write_text(yaml.safe_dump(self.kubeconfig(token, user), sort_keys=False))
        return target
