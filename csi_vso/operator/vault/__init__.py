"""The operator's Vault/OpenBao layer: settings, login, reads, leases, typed errors.

Everything Vault-facing the controllers need, behind a small typed interface; no Kubernetes API
calls and no environment reads in here (the caller resolves CRs and Secrets and passes values).

Interface for the controllers
-----------------------------
Settings (frozen; secret fields hidden from ``repr``)::

    ConnectionSettings(address=, headers=, tls_server_name=, ca_cert_pem=, skip_tls_verify=, timeout=)
    AuthSettings(method="kubernetes"|"jwt"|"appRole", mount="" (default per method: kubernetes, jwt,
                 approle), vault_namespace=, role=, params=, headers=, audiences=,
                 token_expiration_seconds=600, app_role_id=, app_role_secret_id=)

Both raise ``ValueError`` (all problems in one message) for settings that cannot work;
``AuthSettings.problems()`` lists them. ``audiences``/``token_expiration_seconds`` are carried for the
caller's TokenRequest; this layer only uses the JWT it is handed.

Sessions::

    cache = SessionCache(interval=5.0); cache.start()          # token upkeep thread
    key = SessionKey(auth_uid, auth_generation, connection_uid, connection_generation, sa_uid)
    session = cache.get(key, connection=conn, auth=auth, jwt_source=lambda: token_request(...))
    cache.evict(lambda k: k.auth_uid == deleted_uid); cache.close()

``jwt_source`` is called at every login (first use, expiry, after a 403), so it must mint a fresh
token each time. Exceptions it raises become ``VaultUnavailable`` unless they already are a
``VaultError`` (raise ``VaultDenied``/``VaultInvalid`` yourself for a missing ServiceAccount).

``VaultSession`` methods (``namespace=None`` means the VaultAuth's Vault namespace)::

    read_kv(mount, path, kv_version=1|2, version=None, namespace=None) -> KVSecret(.data, .version)
    detect_kv_version(mount, namespace=None) -> 1|2     # sys/internal/ui/mounts/<mount>, like the CLI
    mount_info(path, namespace=None) -> MountInfo(.path, .type, .kv_version)
    read_dynamic(mount, path, method="GET"|"PUT"|"POST", params=None, namespace=None)
        -> DynamicSecret(.data, .lease=Lease(.id, .duration, .renewable))
    renew_lease(lease_id, increment=None, namespace=None) -> Lease   # sys/leases/renew
    revoke_lease(lease_id, namespace=None) -> None                  # sys/leases/revoke
    lookup_lease(lease_id, namespace=None) -> LeaseInfo(.ttl, .renewable, .expire_time, ...)
    lookup_token_ttl(accessor) -> seconds left (auth/token/lookup-accessor; VaultNotFound: gone)
    issue_certificate(path, params, mount=, namespace=None) -> IssuedCertificate(.data, .serial_number,
        .expiration, .warnings)                                     # <mount>/issue/<role> (PKI)
    revoke_certificate(mount, serial_number, namespace=None) -> None  # <mount>/revoke
    login_count, token_state(), token_accessor

``SessionCache(on_relogin=callback)``: called when a session replaces its token (expiry, max
TTL, a 403): leases issued under the old token end when it expires, so the caller re-checks them.

Lease decisions, pure (``leases``)::

    renewal_delay(duration, renewal_percent=67, jitter=random.random()) -> seconds after issue
    judge_renewal(lease=old, requested_increment=n, granted=new_or_None)
        -> RenewalVerdict(verdict=Verdict.KEEP | Verdict.NEW_CREDENTIALS, reason=<words>)

Errors (``errors``): ``VaultUnavailable`` (``.temporary`` True: unreachable, 5xx, 429, sealed),
``VaultDenied`` (401/403 after one re-login), ``VaultNotFound`` (404, deleted kv-v2 version,
unknown lease), ``VaultInvalid`` (400, TLS verification failure, unexpected answer). All derive
from ``VaultError`` and carry ``.context`` (operation, address, path, mount, namespace),
``.status`` and ``.outcome``. Messages never contain tokens or secret data.

Things to know
--------------
- Vault revokes a token's leases when the token expires. The cache's upkeep thread renews tokens
  at two thirds of their TTL, which keeps dynamic leases alive; when a token cannot be renewed
  (not renewable, max TTL reached) the session logs in again and ``login_count`` increases:
  leases from the old token end with it.
- After an operator restart, ``lookup_lease(id)`` tells whether a lease recorded in status is still
  alive and for how long; ``renew_lease`` works with the new token (sys/leases/renew is policy-
  based, not tied to the issuing token), but the lease still ends when the token that issued it
  expires.
- Vault answers 403 both for a dead token and for a policy that forbids the path; the session
  cannot tell them apart, so a policy denial costs one extra login before ``VaultDenied`` is raised
  (except the lookups ``lookup_lease`` / ``lookup_token_ttl``: a re-login would abandon the token
  and the leases it issued, for a question the operator can live without).
- The default mount for ``appRole`` is ``approle`` (lower case, Vault's default); pass ``mount=""``
  to get it — Vault paths are case-sensitive, ``auth/appRole/login`` would be a different mount.
- Metrics: ``metrics.VAULT_REQUESTS`` counter ``csi_vso_vault_requests_total{operation,outcome}``.
"""

from __future__ import annotations

from csi_vso.operator.vault.cache import SessionCache, SessionKey
from csi_vso.operator.vault.errors import (
    RequestContext,
    VaultDenied,
    VaultError,
    VaultInvalid,
    VaultNotFound,
    VaultUnavailable,
)
from csi_vso.operator.vault.leases import RenewalVerdict, Verdict, judge_renewal, renewal_delay
from csi_vso.operator.vault.model import DynamicSecret, KVSecret, Lease, LeaseInfo, MountInfo
from csi_vso.operator.vault.session import JwtSource, TokenState, VaultSession
from csi_vso.operator.vault.settings import AUTH_METHODS, AuthMethod, AuthSettings, ConnectionSettings

__all__ = [
    "AUTH_METHODS",
    "AuthMethod",
    "AuthSettings",
    "ConnectionSettings",
    "DynamicSecret",
    "JwtSource",
    "KVSecret",
    "Lease",
    "LeaseInfo",
    "MountInfo",
    "RenewalVerdict",
    "RequestContext",
    "SessionCache",
    "SessionKey",
    "TokenState",
    "VaultDenied",
    "VaultError",
    "VaultInvalid",
    "VaultNotFound",
    "VaultSession",
    "VaultUnavailable",
    "Verdict",
    "judge_renewal",
    "renewal_delay",
]
