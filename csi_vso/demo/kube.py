"""The demo's side of the Kubernetes API and of OpenBao's configuration.

``KubeApi`` wraps the few calls the demo makes as an admin of the devkit API server (the
kubernetes client is untyped; this keeps it at the edge). ``configure_openbao`` sets up the
kubernetes auth method, a policy and a role the way a platform team would on a real cluster.
"""

from __future__ import annotations

import base64
import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from csi_vso import protected
from csi_vso.demo.scenario import (
    APP_NAMESPACE,
    GROUP,
    LOGIN_SERVICE_ACCOUNT,
    VAULT_POLICY,
    VAULT_ROLE,
    VERSION,
    vault_policy,
    wait_for,
)
from csi_vso.devkit.kubeauth import configure_kubernetes_auth

# -- OpenBao set-up ----------------------------------------------------------------------------


def configure_openbao(bao: Any, *, kubeconfig: str) -> None:
    """Kubernetes auth against the demo API server, a policy and a role for the login account."""
    client = bao.client()
    configure_kubernetes_auth(client, kubeconfig=kubeconfig)
    client.sys.create_or_update_policy(name=VAULT_POLICY, policy=vault_policy())
    client.auth.kubernetes.create_role(
        name=VAULT_ROLE,
        bound_service_account_names=[LOGIN_SERVICE_ACCOUNT],
        bound_service_account_namespaces=[APP_NAMESPACE],
        policies=[VAULT_POLICY],
        ttl="1h",
        mount_point="kubernetes",
    )


# -- Kubernetes API ----------------------------------------------------------------------------


@dataclass
class KubeApi:
    """The few API calls the demo makes, as an admin of the devkit API server."""

    kubeconfig: str
    client: Any

    @classmethod
    def connect(cls, kubeconfig: str) -> KubeApi:
        from csi_vso.kube import api_client

        return cls(kubeconfig=kubeconfig, client=api_client(kubeconfig))

    def install_crds(self, timeout: float) -> None:
        from kubernetes import client

        from csi_vso.operator.crds import build_crds

        ext = client.ApiextensionsV1Api(self.client)
        custom = client.CustomObjectsApi(self.client)
        crds = build_crds()
        for crd in crds:
            ext.create_custom_resource_definition(body=crd)
        for crd in crds:
            plural = crd["spec"]["names"]["plural"]
            wait_for(
                f"CRD {crd['metadata']['name']} to be served",
                functools.partial(_served, custom, plural),
                timeout,
            )

    def ensure_namespace(self, name: str) -> None:
        from kubernetes import client

        with _ignore_conflict():
            client.CoreV1Api(self.client).create_namespace(body={"metadata": {"name": name}})

    def create_service_account(self, namespace: str, name: str) -> None:
        from kubernetes import client

        client.CoreV1Api(self.client).create_namespaced_service_account(
            namespace, body={"metadata": {"name": name}}
        )

    def create_custom(self, manifest: dict[str, Any], timeout: float) -> None:
        from kubernetes import client

        group, version = manifest["apiVersion"].split("/")
        plural = manifest["kind"].lower() + "s"
        client.CustomObjectsApi(self.client).create_namespaced_custom_object(
            group, version, manifest["metadata"]["namespace"], plural, body=manifest
        )

    def describe_custom(self, group: str, plural: str, namespace: str, name: str) -> str:
        """The object's status conditions, for a failure message (no secret data in them)."""
        from kubernetes import client

        try:
            obj = client.CustomObjectsApi(self.client).get_namespaced_custom_object(
                group, VERSION, namespace, plural, name
            )
        except Exception as exc:  # a diagnostic must not hide the original failure
            return f"(could not read {plural}/{name}: {exc.__class__.__name__})"
        conditions = (obj.get("status") or {}).get("conditions") or []
        lines = [f"{plural} {namespace}/{name} conditions:"]
        lines += [
            f"  {c.get('type')}={c.get('status')} {c.get('reason', '')}: {c.get('message', '')}"
            for c in conditions
        ]
        return "\n".join(lines) if conditions else f"{plural} {namespace}/{name} has no status conditions yet"

    def _secret(self, namespace: str, name: str) -> Any:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        try:
            return client.CoreV1Api(self.client).read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        secret = self._secret(namespace, name)
        if secret is None or not protected.is_protected(secret.metadata.labels):
            return None
        encoded = (secret.data or {}).get(key)
        return None if encoded is None else base64.b64decode(encoded).decode()

    def secret_written_at(self, namespace: str, name: str) -> float | None:
        """When the operator wrote the Secret's current content (its written-at annotation)."""
        secret = self._secret(namespace, name)
        stamp = (
            None
            if secret is None
            else (secret.metadata.annotations or {}).get(protected.WRITTEN_AT_ANNOTATION)
        )
        if not stamp:
            return None
        try:
            return protected.parse_written_at(stamp).timestamp()
        except ValueError:
            return None

    def create_pod(self, manifest: dict[str, Any]) -> dict[str, str]:
        from kubernetes import client

        pod = client.CoreV1Api(self.client).create_namespaced_pod(
            manifest["metadata"]["namespace"], body=manifest
        )
        return {
            "name": pod.metadata.name,
            "namespace": pod.metadata.namespace,
            "uid": pod.metadata.uid,
            "serviceAccount": pod.spec.service_account_name,
        }


def pod_tokens(api: KubeApi, pod: dict[str, str], audiences: list[str]) -> dict[str, dict[str, str]]:
    """Tokens of the pod's service account bound to the pod, one per audience, as kubelet requests
    them for the driver's ``tokenRequests`` (``""``: the API server's own audiences)."""
    from kubernetes import client

    out: dict[str, dict[str, str]] = {}
    for audience in audiences:
        answer = client.CoreV1Api(api.client).create_namespaced_service_account_token(
            pod["serviceAccount"],
            pod["namespace"],
            body={
                "spec": {
                    "audiences": [audience] if audience else [],
                    "expirationSeconds": 600,
                    "boundObjectRef": {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "name": pod["name"],
                        "uid": pod["uid"],
                    },
                }
            },
        )
        expires = answer.status.expiration_timestamp
        stamp = expires.isoformat() if hasattr(expires, "isoformat") else str(expires)
        out[audience] = {"token": answer.status.token, "expirationTimestamp": stamp}
    return out


def _served(custom: Any, plural: str) -> bool | None:
    from kubernetes.client.exceptions import ApiException

    try:
        custom.list_cluster_custom_object(GROUP, VERSION, plural)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return True


@contextlib.contextmanager
def _ignore_conflict() -> Iterator[None]:
    from kubernetes.client.exceptions import ApiException

    try:
        yield
    except ApiException as exc:
        if exc.status != 409:
            raise
