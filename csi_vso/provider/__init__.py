"""The Secrets Store CSI driver provider (``csi-vso provider``): protected Secrets as files.

One job per module, in the order a Mount passes through them:

- ``servicer``: gRPC in and out, nothing else; ``errors``: the one exception -> status table.
- ``service``: the Mount use case (parse, validate, identity, authorize, render, write/return).
- ``params`` -> ``validation``: request strings -> typed :class:`~.validation.MountSpec`,
  every problem reported at once (pure).
- ``identity``: the claimed pod checked against the API (SelfSubjectReview with the pod's own
  token; TokenReview for the csi-vso audience token).
- ``pod_api``: the API calls made *as the pod*, with its token (SelfSubjectReview,
  SelfSubjectAccessReview, one Secret's list/watch), through a client with no credential of its own.
- ``secret_watches`` (``--secret-access=pod-token``, default): one name-narrowed watch per Secret
  mounted on this node, run with the freshest token of the pods that mount it;
  ``token_store``: those tokens kept (tmpfs, 0600) for restart recovery.
- ``secret_cache`` (``--secret-access=cluster``): label-selected watch cache of every protected
  Secret, bounded by ``cache_budget``; also the per-Secret informer ``secret_watches`` runs.
- ``authz``: who may mount which protected Secret (pure); ``render`` + ``versions``: files and
  their keyed versions (pure).
- ``atomic_writer``: the kubelet ``..data`` layout; ``registry`` + ``rotation``: live rotation.
- ``server``: wiring and lifecycle (unix socket, health, metrics endpoint); ``settings``: the
  process settings; ``main``: flags -> settings -> run.
"""
