"""Build a kubernetes ``ApiClient`` from explicit settings.

The only place that decides between a kubeconfig file and in-cluster configuration, so
the provider, the operator and the demo connect the same way. Callers pass the path the
CLI parsed; nothing here reads the environment beyond what the kubernetes client itself
does for in-cluster config.
"""

from __future__ import annotations

from kubernetes import client, config


def api_client(kubeconfig: str | None) -> client.ApiClient:
    """Return an ApiClient for ``kubeconfig``, or for the pod's service account when None."""
    configuration = client.Configuration()
    if kubeconfig:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    else:
        config.load_incluster_config(client_configuration=configuration)
    return client.ApiClient(configuration)
