"""The Secrets Store CSI driver provider (``csi-vso provider``): protected Secrets as files.

One job per module, in the order a Mount passes through them:

- ``servicer``: gRPC in and out, nothing else; ``errors``: the one exception -> status table.
- ``service``: the Mount use case (parse, validate, identity, authorize, render, write/return).
- ``params`` -> ``validation``: request strings -> typed :class:`~.validation.MountSpec`,
  every problem reported at once (pure).
- ``identity``: the claimed pod checked against the API (TokenReview when its token is there).
- ``secret_cache``: label-selected watch cache of protected Secrets (the hot path's only source).
- ``authz``: who may mount which protected Secret (pure); ``render`` + ``versions``: files and
  their keyed versions (pure).
- ``atomic_writer``: the kubelet ``..data`` layout; ``registry`` + ``rotation``: live rotation.
- ``server``: wiring and lifecycle (unix socket, health, metrics endpoint); ``settings``: the
  process settings; ``main``: flags -> settings -> run.
"""
