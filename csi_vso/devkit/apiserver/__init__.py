"""An in-memory Kubernetes API server for tests and the demo (``csi-vso devkit apiserver``).

No kube-apiserver can be installed where this project is developed, so this package serves
the subset of the Kubernetes API that csi-vso, its tests and the official ``kubernetes``
Python client use, over HTTP on 127.0.0.1, with the real server's semantics.

Implemented:
- core/v1 Namespaces (Terminating, content deletion, ``default`` ServiceAccount), Secrets
  (base64 ``data``, ``stringData`` folding, key/size/type checks, ``immutable``), ConfigMaps,
  ServiceAccounts (+ ``token`` = TokenRequest), Pods (+ ``/status``; ServiceAccount
  admission), Events, Services, Nodes; apps/v1 Deployments, StatefulSets, DaemonSets,
  ReplicaSets; coordination.k8s.io/v1 Leases; rbac.authorization.k8s.io/v1 Roles,
  ClusterRoles, RoleBindings, ClusterRoleBindings (enforced, see below); storage.k8s.io/v1
  CSIDrivers; apiextensions.k8s.io/v1 CustomResourceDefinitions and the custom resources
  of every served version (namespaced or cluster-scoped), with
  ``/status``, defaulting, pruning and OpenAPI v3 schema validation.
- get, list (label selectors ``= == != in notin exists !exists``; field selectors
  ``metadata.name``/``metadata.namespace`` and a few per-kind fields; ``limit``/``continue``),
  create (409 AlreadyExists, ``generateName``), replace (409 Conflict on a stale
  resourceVersion), JSON merge / strategic merge / JSON patch, ``dryRun``, delete and
  deletecollection with finalizers, ``deletionTimestamp``, preconditions and propagation
  (Background, Foreground — holding the owner only for ``blockOwnerDeletion`` dependents —,
  Orphan), ownerReference garbage collection a modelled ~20 ms after the delete, namespace
  termination ~200 ms after it (``APIServer(gc_delay=, namespace_delay=)``); 403 with the
  ``NamespaceTerminating`` cause for new content in a Terminating namespace.
- list ``resourceVersionMatch=Exact`` (and continued pages) from a snapshot rebuilt from the
  event log, 410 once compacted, 504 "Too large resource version" for a future version;
  list items of built-in kinds without ``kind``/``apiVersion`` (custom resources keep them).
- Deployments: the real defaults, validation and ``deployments/scale`` (``deployments``).
- strategic merge in the real merge order (``patch``); server-side apply that creates is 201.
- TokenReview answers from a token cache for 10 s after a successful review, as the real
  server does (``token_cache``; ``APIServer(token_cache_ttl=)``).
- watch: one resourceVersion counter across all kinds, ADDED/MODIFIED/DELETED in order
  (selector transitions become ADDED/DELETED, as in the real watch cache), resume from a
  resourceVersion, ``allowWatchBookmarks`` (every minute and 2 s before the deadline),
  ``sendInitialEvents`` (ended by the ``k8s.io/initial-events-end`` bookmark),
  ``timeoutSeconds``, 410 Expired (an ERROR event)
  once the version has left the retained event window (``APIServer.set_watch_window``).
- Errors as ``Status`` objects (400/401/403/404/405/409/410/415/422) worded like the real
  server's; discovery (``/api``, ``/apis``, ``/apis/<g>/<v>``), ``/version``, ``/healthz``,
  ``/.well-known/openid-configuration`` and ``/openid/v1/jwks``.
- TokenRequest (RS256 bound service-account JWTs) and TokenReview (audience, expiry,
  service account and bound pod still present with the same uid); bearer-token
  authentication from a static token list (users and groups) and by service-account tokens
  that carry the API server's audience (as on a real server: OpenBao's kubernetes auth
  therefore needs a reviewer token, see ``csi_vso.devkit.kubeauth``).

- RBAC authorization of every request (``requestinfo`` -> ``rbac``, bindings indexed by
  ``rbacindex``) for callers outside ``system:masters``: verbs, groups, resources,
  subresources, ``resourceNames`` (``list``/``watch`` narrowed by ``metadata.name``; never
  ``create``), ``nonResourceURLs``; requests without a token are ``system:anonymous``; 403
  ``Status`` worded as the real server's. The bootstrap ClusterRoles/bindings of ``bootstrap``.
  SubjectAccessReview / SelfSubjectAccessReview / SelfSubjectRulesReview (``reviews``) answer
  from the same authorizer; SelfSubjectReview and TokenReview carry the pod/node/credential
  extras of bound tokens. ``/openid/v1/jwks`` is ``application/jwk-set+json`` (406 otherwise).

Not implemented, or different from a real cluster:
- No ClusterRole aggregation (``view``/``edit``/``admin`` carry their rules directly), no
  Node authorizer. (RBAC escalation prevention is done: ``escalation``.)
- No admission webhooks, no server-side apply field ownership (``apply-patch+yaml`` is a
  merge patch that creates when missing), no protobuf/CBOR,
  no aggregated discovery, no controllers besides the garbage collector, the namespace
  controller and CRD cleanup (Deployments never get Pods, Pods never run), pods are
  deleted immediately (no kubelet), CRD versions share storage with conversion "None".
  The token cache answers TokenReview only; bearer-token authentication of requests checks
  the store every time. A version from the future is refused at once (the real server
  first waits up to 3 s for its cache).
- Plain HTTP by default; ``APIServer(tls=True)`` (``--tls``) serves HTTPS with a generated CA
  that the written kubeconfig carries. No client-certificate authentication.

Test hooks (in-process only): ``set_watch_window`` (provoke 410), ``drop_watches`` (cut every
stream, as an API server restart does), ``mint_token`` (tokens TokenRequest would refuse, e.g.
already expired), ``add_token`` (act as another user), ``wait_idle`` (controllers caught up).
"""

from __future__ import annotations

from csi_vso.devkit.apiserver.rbac import User
from csi_vso.devkit.apiserver.server import APIServer

__all__ = ["APIServer", "User"]
