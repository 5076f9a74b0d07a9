"""From a secret custom resource to a logged-in Vault session.

Resolves ``vaultAuthRef`` and the VaultAuth's ``vaultConnectionRef`` (:mod:`refs`), enforces the
VaultAuth's ``allowedNamespaces``, reads what the settings need from Kubernetes (the CA bundle
Secret, an AppRole secret id or JWT Secret, the ServiceAccount's uid) and asks the Vault layer's
:class:`SessionCache` for the session of (auth uid+generation, connection uid+generation,
ServiceAccount uid).

The Kubernetes reads happen when a session is first built for a key, then at most once a
minute per key (``settings_ttl``): settings are remembered, so a steady-state reconcile costs no
API call here beyond the watch caches, yet a rotated CA bundle or AppRole secret id is picked up
without editing any custom resource (a digest of those values is part of the session key, so a
change means a new login). The ServiceAccount's uid is remembered for a minute too (it changes
only when the account is recreated, which must mean a new login).

Kubernetes auth: the JWT is a TokenRequest for the named ServiceAccount in the *secret's*
namespace (VSO's rule: the consumer's identity, not the operator's), with the VaultAuth's
audiences and expiry; a fresh one is minted at every login.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from csi_vso.operator import api, authglobal, refs
from csi_vso.operator.addresses import AddressPattern, address_allowed, without_userinfo
from csi_vso.operator.vault.cache import SessionCache, SessionKey
from csi_vso.operator.vault.session import JwtSource, VaultSession
from csi_vso.operator.vault.settings import AuthSettings, ConnectionSettings

SA_UID_TTL = 60.0
SETTINGS_TTL = 60.0
CA_KEYS = ("ca.crt", "ca.pem", "tls.crt")
MAX_CA_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Resolved:
    session: VaultSession
    auth_name: str  # namespace/name, for messages
    vault_namespace: str | None


_Settings = tuple[ConnectionSettings, AuthSettings, JwtSource | None]


def _digest(settings: _Settings) -> str:
    """Fingerprint of the values read from Secrets, for the session key (never the values)."""
    connection, auth, _ = settings
    material = hashlib.sha256()
    for value in (connection.ca_cert_pem or "", auth.app_role_secret_id or ""):
        material.update(value.encode())
        material.update(b"\0")
    return material.hexdigest()[:16]


def read_ca_file(path: str, where: str) -> str:
    """``caCertPath``: a PEM bundle on the operator's filesystem (mounted from a ConfigMap or Secret).

    The path is tenant-controlled, so the file must look like a certificate bundle and errors
    name the path only: the operator never echoes a file's content, whatever file it was.
    """
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            text = handle.read(MAX_CA_BYTES + 1)
    except OSError as exc:
        raise refs.RefError(
            "CACertPathUnreadable", f"caCertPath {path!r} of VaultConnection {where}: {exc.strerror}"
        ) from None
    if len(text) > MAX_CA_BYTES or "-----BEGIN CERTIFICATE-----" not in text:
        raise refs.RefError(
            "CACertPathUnreadable",
            f"caCertPath {path!r} of VaultConnection {where} is not a PEM certificate bundle",
        )
    return text


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


class Sessions:
    def __init__(
        self,
        *,
        cache: SessionCache,
        core: client.CoreV1Api,
        get_auth: refs.Getter,
        get_connection: refs.Getter,
        operator_namespace: str,
        get_auth_global: refs.Getter | None = None,
        clock: Callable[[], float] = time.monotonic,
        settings_ttl: float = SETTINGS_TTL,
        allowed_addresses: tuple[AddressPattern, ...] = (),
    ) -> None:
        self._get_auth_global: refs.Getter = get_auth_global or (lambda namespace, name: None)
        self._cache = cache
        self._allowed_addresses = allowed_addresses
        self._settings_ttl = settings_ttl
        self._core = core
        self._get_auth = get_auth
        self._get_connection = get_connection
        self._operator_namespace = operator_namespace
        self._clock = clock
        # base key (no digest) -> (settings, digest, when to read the Secrets again)
        self._settings: dict[SessionKey, tuple[_Settings, str, float]] = {}
        self._sa_uids: dict[tuple[str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def resolve_auth(
        self, secret_namespace: str, auth_ref: api.ObjectRef
    ) -> tuple[dict[str, Any], api.AuthSpec]:
        """The VaultAuth object and spec a secret uses, or RefError (missing, invalid, not allowed)."""
        auth_obj = refs.resolve(
            "VaultAuth", auth_ref, secret_namespace, self._operator_namespace, self._get_auth
        )
        auth_where = f"{_meta(auth_obj).get('namespace')}/{_meta(auth_obj).get('name')}"
        auth_obj = authglobal.merge(auth_obj, self._get_auth_global, self._operator_namespace)
        try:
            auth_spec = api.parse_auth(auth_obj)
        except api.SpecError as exc:
            raise refs.RefError("VaultAuthInvalid", f"VaultAuth {auth_where} is invalid: {exc}") from None
        if not api.auth_allows_namespace(auth_spec, str(_meta(auth_obj).get("namespace")), secret_namespace):
            raise refs.RefError(
                "VaultAuthNotAllowed",
                f"VaultAuth {auth_where} does not allow namespace {secret_namespace!r} "
                "(see its allowedNamespaces)",
            )
        return auth_obj, auth_spec

    def check_address(self, spec: api.ConnectionSpec, where: str) -> None:
        """RefError unless ``--allowed-vault-addresses`` admits the connection's address."""
        if not address_allowed(spec.address, self._allowed_addresses):
            raise refs.RefError(
                "VaultAddressNotAllowed",
                f"VaultConnection {where} address {without_userinfo(spec.address)!r} is not allowed by the "
                "operator's --allowed-vault-addresses",
            )

    def resolve_connection(
        self, auth_spec: api.AuthSpec, auth_namespace: str
    ) -> tuple[dict[str, Any], api.ConnectionSpec]:
        """The VaultConnection a VaultAuth uses, or RefError: missing, invalid, not shared with the
        VaultAuth's namespace, or an address the operator may not send logins to."""
        connection_obj = refs.resolve(
            "VaultConnection",
            auth_spec.connection_ref,
            auth_namespace,
            self._operator_namespace,
            self._get_connection,
        )
        connection_ns = str(_meta(connection_obj).get("namespace"))
        connection_where = f"{connection_ns}/{_meta(connection_obj).get('name')}"
        try:
            connection_spec = api.parse_connection(connection_obj)
        except api.SpecError as exc:
            raise refs.RefError(
                "VaultConnectionInvalid", f"VaultConnection {connection_where} is invalid: {exc}"
            ) from None
        if not api.connection_allows_namespace(
            connection_spec, connection_ns, auth_namespace, self._operator_namespace
        ):
            raise refs.RefError(
                "VaultConnectionNotAllowed",
                f"VaultConnection {connection_where} does not allow VaultAuths of namespace "
                f"{auth_namespace!r} (see its allowedNamespaces)",
            )
        self.check_address(connection_spec, connection_where)
        return connection_obj, connection_spec

    def session_for(self, secret_namespace: str, auth_ref: api.ObjectRef) -> Resolved:
        auth_obj, auth_spec = self.resolve_auth(secret_namespace, auth_ref)
        auth_ns = str(_meta(auth_obj).get("namespace"))
        connection_obj, connection_spec = self.resolve_connection(auth_spec, auth_ns)
        connection_ns = str(_meta(connection_obj).get("namespace"))
        connection_where = f"{connection_ns}/{_meta(connection_obj).get('name')}"
        login = auth_spec.kubernetes or auth_spec.jwt
        sa_uid = ""
        if login is not None and login.service_account:
            sa_uid = self._service_account_uid(secret_namespace, login.service_account)
        key = SessionKey(
            auth_uid=str(_meta(auth_obj).get("uid")),
            auth_generation=int(_meta(auth_obj).get("generation") or 0),
            connection_uid=str(_meta(connection_obj).get("uid")),
            connection_generation=int(_meta(connection_obj).get("generation") or 0),
            service_account_uid=sa_uid,
            # A VaultAuthGlobal folded into the VaultAuth is part of the login: editing it must
            # mean a new session, although the VaultAuth's own generation did not change.
            settings_digest=authglobal.global_fingerprint(auth_obj),
        )
        now = self._clock()
        with self._lock:
            remembered = self._settings.get(key)
        if remembered is None or remembered[2] <= now:
            try:
                settings: _Settings = (
                    self._connection_settings(connection_spec, connection_ns, connection_where),
                    *self._auth_settings(auth_spec, auth_ns, secret_namespace),
                )
            except ValueError as exc:  # the Vault layer's own checks (all problems in one message)
                raise refs.RefError(
                    "VaultAuthInvalid",
                    f"cannot log in with VaultAuth {auth_ns}/{_meta(auth_obj).get('name')}: {exc}",
                ) from None
            remembered = (settings, _digest(settings), now + self._settings_ttl)
            with self._lock:
                self._settings[key] = remembered
        (connection, auth, jwt_source), digest, _ = remembered
        session = self._cache.get(
            dataclasses.replace(key, settings_digest=f"{key.settings_digest}/{digest}"),
            connection=connection,
            auth=auth,
            jwt_source=jwt_source,
        )
        return Resolved(
            session=session,
            auth_name=f"{auth_ns}/{_meta(auth_obj).get('name')}",
            vault_namespace=auth_spec.vault_namespace,
        )

    def forget(self, uid: str) -> None:
        """A VaultAuth or VaultConnection was deleted: drop its sessions and remembered settings."""
        self._cache.evict(lambda key: uid in (key.auth_uid, key.connection_uid))
        with self._lock:
            for key in [k for k in self._settings if uid in (k.auth_uid, k.connection_uid)]:
                del self._settings[key]

    # -- Kubernetes reads (first use of a key only) ---------------------------------------------

    def _service_account_uid(self, namespace: str, name: str) -> str:
        now = self._clock()
        with self._lock:
            cached = self._sa_uids.get((namespace, name))
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            account = self._core.read_namespaced_service_account(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise refs.RefError(
                    "ServiceAccountNotFound", f"ServiceAccount {namespace}/{name} not found"
                ) from None
            raise
        uid = str(account.metadata.uid)
        with self._lock:
            self._sa_uids[(namespace, name)] = (uid, now + SA_UID_TTL)
        return uid

    def _secret_value(self, namespace: str, name: str, keys: tuple[str, ...], what: str) -> str:
        try:
            secret = self._core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise refs.RefError(
                    "SecretNotFound", f"Secret {namespace}/{name} ({what}) not found"
                ) from None
            raise
        data = secret.data or {}
        for key in keys:
            if data.get(key):
                return base64.b64decode(data[key]).decode()
        raise refs.RefError(
            "SecretKeyMissing", f"Secret {namespace}/{name} ({what}) has none of the keys {', '.join(keys)}"
        )

    def _connection_settings(
        self, spec: api.ConnectionSpec, namespace: str, where: str
    ) -> ConnectionSettings:
        ca_pem = None
        if spec.ca_cert_secret and spec.address.startswith("https://"):
            # Plain http has no certificate to check; the article's tlsSecretRef is then unused.
            ca_pem = self._secret_value(
                namespace, spec.ca_cert_secret, CA_KEYS, f"CA of VaultConnection {where}"
            )
        elif spec.ca_cert_path and spec.address.startswith("https://"):
            ca_pem = read_ca_file(spec.ca_cert_path, where)
        return ConnectionSettings(
            address=spec.address,
            headers=spec.headers,
            tls_server_name=spec.tls_server_name,
            ca_cert_pem=ca_pem,
            skip_tls_verify=spec.skip_tls_verify,
            timeout=spec.timeout,
        )

    def _auth_settings(
        self, spec: api.AuthSpec, auth_namespace: str, secret_namespace: str
    ) -> tuple[AuthSettings, JwtSource | None]:
        jwt_source: JwtSource | None = None
        login = spec.kubernetes or spec.jwt
        if login is not None and login.service_account:
            jwt_source = self._token_request(secret_namespace, login)
        elif spec.jwt_secret:
            secret_name = spec.jwt_secret

            def jwt_from_secret() -> str:
                return self._secret_value(auth_namespace, secret_name, ("jwt",), "JWT")

            # Checked now, so a missing Secret is reported as such (SecretNotFound naming it); at a
            # later login the Vault layer can only say that no JWT could be obtained.
            jwt_from_secret()
            jwt_source = jwt_from_secret
        secret_id = ""
        if spec.approle_secret:
            secret_id = self._secret_value(auth_namespace, spec.approle_secret, ("id",), "AppRole secret id")
        method: Any = spec.method
        settings = AuthSettings(
            method=method,
            mount=spec.mount,
            vault_namespace=spec.vault_namespace,
            role=login.role if login else "",
            params=spec.params,
            headers=spec.headers,
            audiences=login.audiences if login else (),
            token_expiration_seconds=login.token_expiration_seconds if login else 600,
            app_role_id=spec.approle_role_id or "",
            app_role_secret_id=secret_id,
        )
        return settings, jwt_source

    def _token_request(self, namespace: str, login: api.ServiceAccountLogin) -> JwtSource:
        core = self._core

        def mint() -> str:
            spec: dict[str, Any] = {"expirationSeconds": login.token_expiration_seconds}
            if login.audiences:
                spec["audiences"] = list(login.audiences)
            body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
            answer = core.create_namespaced_service_account_token(login.service_account, namespace, body)
            return str(answer.status.token)

        return mint
