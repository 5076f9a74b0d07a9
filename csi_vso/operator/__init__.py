"""The operator: syncs Vault/OpenBao into protected Kubernetes Secrets (VSO's v1beta1 API).

Module map (pure modules decide, edge modules do I/O):

- ``api`` (pure): custom resources -> frozen specs, every problem reported at once.
- ``crds``: the CRD schemas; ``deploy/crds/`` is generated from it.
- ``refs`` (pure): ``vaultAuthRef``/``vaultConnectionRef`` lookup (referrer's namespace, then
  ``--operator-namespace``).
- ``addresses`` (pure): ``--allowed-vault-addresses`` patterns and matching.
- ``secretcache``: what the watch cache keeps of a labelled Secret (whole only for a CR's
  destination; metadata for anything else) and the paged list.
- ``destination`` (pure): the protected Secret (marks from :mod:`csi_vso.protected`,
  ownerReference, content MAC, access policy, written-at) and the ownership check.
- ``hmac``: the keyed MAC; its key lives in Secret ``--hmac-key-secret`` (default
  ``csi-vso-hmac-key``) in the operator namespace.
- ``static`` / ``dynamic`` + ``leases`` (pure plans): when to read Vault, renew, rotate, revoke.
  Lease state is in the CR's status, credentials only in the destination Secret.
- ``pkispec`` / ``pkiplan`` / ``pkidata`` (pure) + ``pki``: VaultPKISecret — spec, renewal
  schedule (expiration - expiryOffset, stable jitter), VSO's Secret keys, and the reconciler
  that issues, revokes and clears; ``pkimetrics``: issuance counts and expiry aggregates.
- ``rollout``: restarts consumers of a changed Secret (env/envFrom/secret volumes, not CSI).
- ``sessions``: from a CR to a logged-in session of the Vault layer (``vault/``).
- ``controller``, ``workqueue``, ``watch``, ``runtime``: watch caches, queue, backoff, the shared
  Kubernetes edges; ``conditions``, ``events``, ``metrics``; ``leader``; ``main`` (flags).
"""
