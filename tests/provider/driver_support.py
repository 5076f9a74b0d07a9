"""Acting as the Secrets Store CSI driver and as the cluster around it, for provider tests and the bench.

``DriverClient`` is what the driver does: dial ``unix://<dir>/<provider>.sock`` with
insecure credentials and ``:authority`` ``localhost``, and send a MountRequest whose
``attributes`` are the SPC parameters overwritten by kubelet's keys, exactly as named in
DESIGN.md section 2. ``Cluster`` creates the namespaces, service accounts, pods, tokens and
protected Secrets a Mount needs through the real API (the in-memory server, or a real
cluster via CSI_VSO_TEST_KUBECONFIG).
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
from kubernetes import client

from csi_vso import protected
from csi_vso.operator import access_rbac
from csi_vso.operator.api import AccessPolicy
from csi_vso.operator.destination import Owner
from csi_vso.providerapi import provider_pb2, provider_pb2_grpc


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    uid: str
    service_account: str
    # What kubelet passes in csi.storage.k8s.io/serviceAccount.tokens for this pod (audience ->
    # token): the API-audience token (key "") for pods made by Cluster.pod.
    tokens: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def claiming(self, **changes: str) -> Pod:
        """The same pod's tokens with other attribute keys: a forged or mistaken claim."""
        values = {
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
            "service_account": self.service_account,
        }
        values.update(changes)
        return Pod(**values, tokens=self.tokens)


def kubelet_attributes(
    pod: Pod, *, spc: str = "spc", tokens: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The keys kubelet (podInfoOnMount) and the driver add to every Mount's attributes."""
    attrs = {
        "csi.storage.k8s.io/pod.name": pod.name,
        "csi.storage.k8s.io/pod.namespace": pod.namespace,
        "csi.storage.k8s.io/pod.uid": pod.uid,
        "csi.storage.k8s.io/serviceAccount.name": pod.service_account,
        "csi.storage.k8s.io/ephemeral": "true",
        "secretProviderClass": spc,
    }
    if tokens:
        attrs["csi.storage.k8s.io/serviceAccount.tokens"] = json.dumps(
            {
                aud: {"token": tok, "expirationTimestamp": "2099-01-01T00:00:00Z"}
                for aud, tok in tokens.items()
            }
        )
    return attrs


def mount_request(
    pod: Pod,
    objects: Any,
    target: str,
    *,
    write_mode: str | None = None,
    permission: str = "420",
    tokens: Mapping[str, str] | None = None,
    parameters: Mapping[str, str] | None = None,
) -> Any:
    """A MountRequest as the driver builds it: SPC parameters, then kubelet's keys over them."""
    params: dict[str, str] = {"objects": objects if isinstance(objects, str) else json.dumps(objects)}
    if write_mode is not None:
        params["writeMode"] = write_mode
    params.update(parameters or {})
    params.update(kubelet_attributes(pod, tokens=pod.tokens if tokens is None else tokens))
    return provider_pb2.MountRequest(
        attributes=json.dumps(params), secrets="null", target_path=target, permission=permission
    )


class DriverClient:
    """A gRPC client over the provider's real unix socket."""

    def __init__(self, socket_path: str) -> None:
        self.channel = grpc.insecure_channel(
            f"unix://{socket_path}", options=[("grpc.default_authority", "localhost")]
        )
        self.stub = provider_pb2_grpc.CSIDriverProviderStub(self.channel)

    def mount(self, request: Any, timeout: float = 30.0) -> Any:
        return self.stub.Mount(request, timeout=timeout)

    def version(self) -> Any:
        return self.stub.Version(provider_pb2.VersionRequest(version="v1alpha1"), timeout=10)

    def close(self) -> None:
        self.channel.close()


class Cluster:
    """Namespaces, service accounts, pods, tokens and Secrets through the real API."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.namespaces: list[str] = []

    def namespace(self, prefix: str = "pv") -> str:
        name = f"{prefix}-{secrets.token_hex(3)}"
        self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        self.namespaces.append(name)
        return name

    def cleanup(self) -> None:
        for name in self.namespaces:
            with contextlib.suppress(client.ApiException):
                self.core.delete_namespace(name)

    def pod(self, namespace: str, name: str = "app-0", service_account: str = "app") -> Pod:
        try:
            self.core.create_namespaced_service_account(
                namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=service_account))
            )
        except client.ApiException as exc:
            if exc.status != 409:
                raise
        created = self.core.create_namespaced_pod(
            namespace,
            client.V1Pod(
                metadata=client.V1ObjectMeta(name=name),
                spec=client.V1PodSpec(
                    service_account_name=service_account,
                    containers=[client.V1Container(name="app", image="registry.k8s.io/pause:3.10")],
                ),
            ),
        )
        pod = Pod(namespace, name, created.metadata.uid, service_account)
        return Pod(namespace, name, pod.uid, service_account, tokens={"": self.token(pod, "")})

    def token(self, pod: Pod, audience: str, expiration_seconds: int = 3600) -> str:
        """A pod-bound service-account token for ``audience`` (what kubelet puts in tokenRequests);
        ``""`` asks, as kubelet does for ``audience: ""``, for the API server's own audiences."""
        request = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(
                audiences=[audience] if audience else [],
                expiration_seconds=expiration_seconds,
                bound_object_ref=client.V1BoundObjectReference(
                    api_version="v1", kind="Pod", name=pod.name, uid=pod.uid
                ),
            )
        )
        result = self.core.create_namespaced_service_account_token(
            pod.service_account, pod.namespace, request
        )
        return str(result.status.token)

    def secret(
        self,
        namespace: str,
        name: str,
        data: Mapping[str, bytes],
        *,
        protect: bool = True,
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        """Create or replace a Secret, protected (operator-style marks) unless told otherwise.

        A protected one also gets what the operator keeps beside it: the Role and RoleBinding
        letting exactly the pods its policy annotations admit read it (pod-token mode).
        """
        body = client.V1Secret(
            metadata=client.V1ObjectMeta(
                name=name,
                namespace=namespace,
                labels=protected.protected_labels("owner-uid") if protect else {"app": "plain"},
                annotations=dict(annotations or {}),
            ),
            data={k: base64.b64encode(v).decode() for k, v in data.items()},
        )
        if protect:
            grant(self.api, namespace, name, policy_of(annotations or {}))
        try:
            self.core.create_namespaced_secret(namespace, body)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
            self.core.replace_namespaced_secret(name, namespace, body)


def policy_of(annotations: Mapping[str, str]) -> AccessPolicy:
    """The access policy the annotations spell (unreadable lists: as narrow as the provider reads them)."""

    def read(key: str) -> tuple[str, ...]:
        try:
            return tuple(protected.decode_list(annotations[key])) if key in annotations else ()
        except ValueError:
            return ("-unreadable-",)

    return AccessPolicy(
        namespaces=read(protected.ALLOWED_NAMESPACES_ANNOTATION),
        service_accounts=read(protected.ALLOWED_SERVICE_ACCOUNTS_ANNOTATION),
    )


def grant(api: client.ApiClient, namespace: str, secret: str, policy: AccessPolicy) -> None:
    """What the operator maintains for a protected Secret: its Role and RoleBinding, built by the
    operator's own code (no ownerReference: the test stands in for the custom resource, and a
    dangling one would be garbage-collected). Nobody admitted: the binding is removed."""
    owner = Owner("secrets.hashicorp.com/v1beta1", "VaultStaticSecret", "test", namespace, "test-uid")
    rbac = client.RbacAuthorizationV1Api(api)
    bound = access_rbac.subjects(namespace, policy)
    name = access_rbac.object_name(secret)
    if not bound:
        with contextlib.suppress(client.ApiException):
            rbac.delete_namespaced_role_binding(name, namespace)
        return
    for obj in (access_rbac.role(owner, secret), access_rbac.role_binding(owner, secret, bound)):
        obj["metadata"].pop("ownerReferences")
        create, replace = (
            (rbac.create_namespaced_role, rbac.replace_namespaced_role)
            if obj["kind"] == "Role"
            else (rbac.create_namespaced_role_binding, rbac.replace_namespaced_role_binding)
        )
        try:
            create(namespace, obj)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
            replace(name, namespace, obj)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
