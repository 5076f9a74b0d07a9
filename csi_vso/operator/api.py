"""Custom resources in, typed specs out: parse and validate ``secrets.hashicorp.com/v1beta1`` objects.

Pure. The API server's schema (``deploy/crds/``) already enforces types on a real cluster, but
the operator must never trust that (the schema may be older than the operator, or the object
was stored before the CRD was updated), so everything is checked again here and *every*
problem is reported at once in one :class:`SpecError`: the user fixes a manifest in one round
trip, and the message goes into a condition and an event verbatim.

Wire shapes the operator writes (status, conditions) are ``TypedDict`` s; specs it reads are
frozen dataclasses, so reconcile code cannot mutate what it was given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from csi_vso.operator.transform.spec import Transformation, parse_transformation
from csi_vso.operator.vault.settings import DEFAULT_MOUNTS, MAX_TOKEN_EXPIRATION, MIN_TOKEN_EXPIRATION

GROUP = "secrets.hashicorp.com"
VERSION = "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"

STATIC_KINDS = ("VaultStaticSecret", "VaultSecret")
DYNAMIC_KIND = "VaultDynamicSecret"
PKI_KIND = "VaultPKISecret"
AUTH_KIND = "VaultAuth"
CONNECTION_KIND = "VaultConnection"
AUTH_GLOBAL_KIND = "VaultAuthGlobal"
TRANSFORMATION_KIND = "SecretTransformation"

PLURALS = {
    "VaultConnection": "vaultconnections",
    "VaultAuth": "vaultauths",
    "VaultStaticSecret": "vaultstaticsecrets",
    "VaultSecret": "vaultsecrets",
    "VaultDynamicSecret": "vaultdynamicsecrets",
    "VaultPKISecret": "vaultpkisecrets",
    "VaultAuthGlobal": "vaultauthglobals",
    "SecretTransformation": "secrettransformations",
}

AUTH_METHODS = ("kubernetes", "jwt", "appRole")
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
KV_TYPES = {"kv-v1": 1, "kv-v2": 2}

DEFAULT_STATIC_REFRESH = 3600.0
DEFAULT_TIMEOUT = 30.0

# Kubernetes names: DNS-1123 subdomain for Secrets/workloads, label for namespaces.
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# A Secret type: "Opaque" or a qualified name like "kubernetes.io/basic-auth".
_SECRET_TYPE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class SpecError(ValueError):
    """A custom resource that cannot be acted on; ``problems`` lists every reason, in words."""

    def __init__(self, kind: str, problems: list[str]) -> None:
        self.kind = kind
        self.problems = tuple(problems)
        super().__init__(f"invalid {kind}: " + "; ".join(problems))


# --------------------------------------------------------------------------- wire shapes


class ConditionDict(TypedDict, total=False):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str
    observedGeneration: int
    lastTransitionTime: str


class LeaseDict(TypedDict, total=False):
    id: str
    duration: int
    renewable: bool
    requestID: str
    issuedAt: str
    renewedAt: str
    tokenAccessor: str


class PendingRevocationDict(TypedDict):
    id: str
    revokeAt: str


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class ObjectRef:
    """A reference by name; ``namespace`` None means "referrer's, then the operator's"."""

    name: str
    namespace: str | None = None

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


@dataclass(frozen=True)
class AccessPolicy:
    """Who may mount the destination Secret through the CSI provider (DESIGN.md section 3)."""

    namespaces: tuple[str, ...] = ()
    service_accounts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Destination:
    name: str
    create: bool = False
    overwrite: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    type: str | None = None
    transformation: Transformation | None = None


@dataclass(frozen=True)
class RolloutTarget:
    kind: str
    name: str


@dataclass(frozen=True)
class StaticSecretSpec:
    auth_ref: ObjectRef
    vault_namespace: str | None
    mount: str
    path: str
    kv_version: int | None  # 1, 2, or None: detect from the mount
    version: int | None  # kv-v2 version pin
    refresh_after: float  # seconds
    hmac_secret_data: bool
    destination: Destination
    secret_type: str  # destination Secret type after folding in the article's `type`
    rollout_targets: tuple[RolloutTarget, ...]
    access: AccessPolicy


@dataclass(frozen=True)
class DynamicSecretSpec:
    auth_ref: ObjectRef
    vault_namespace: str | None
    mount: str
    path: str
    params: Mapping[str, Any]
    method: Literal["GET", "PUT"]
    renewal_percent: int
    revoke: bool
    refresh_after: float | None
    revocation_duration: float | None  # None: old leases are left to expire
    rollout_pods: bool
    destination: Destination
    secret_type: str
    rollout_targets: tuple[RolloutTarget, ...]
    access: AccessPolicy
    # Vault-rotated "static" credentials (database static-creds): no lease, the answer's ``ttl``
    # says when Vault rotates them next, and that is when they are fetched again.
    allow_static_creds: bool = False


@dataclass(frozen=True)
class ConnectionSpec:
    address: str
    headers: Mapping[str, str]
    tls_server_name: str | None
    ca_cert_secret: str | None
    skip_tls_verify: bool
    timeout: float
    # csi-vso extension (VSO's VaultConnection has no such field): namespaces whose VaultAuths may
    # use this connection. None: its own namespace only, or everyone when it lives in the
    # operator's namespace (the platform team's shared connection).
    allowed_namespaces: tuple[str, ...] | None = None
    ca_cert_path: str | None = None  # a PEM file on the operator's filesystem (VSO's caCertPath)


@dataclass(frozen=True)
class ServiceAccountLogin:
    role: str
    service_account: str
    audiences: tuple[str, ...]
    token_expiration_seconds: int


@dataclass(frozen=True)
class AuthSpec:
    connection_ref: ObjectRef
    vault_namespace: str | None
    method: str
    mount: str
    allowed_namespaces: tuple[str, ...] | None  # None: only the VaultAuth's own namespace
    params: Mapping[str, str]
    headers: Mapping[str, str]
    kubernetes: ServiceAccountLogin | None = None
    jwt: ServiceAccountLogin | None = None
    jwt_secret: str | None = None
    approle_role_id: str | None = None
    approle_secret: str | None = None


# --------------------------------------------------------------------------- helpers


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string ("30s", "1h30m", "1.5h"); ValueError when malformed."""
    text = text.strip()
    position = 0
    total = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if not text or position != len(text):
        raise ValueError(f"{text!r} is not a duration like 30s, 5m or 1h30m")
    return total


class _Reader:
    """Typed field access on an untrusted mapping that collects problems instead of raising."""

    def __init__(self, data: Any, where: str, problems: list[str]) -> None:
        self.where = where
        self.problems = problems
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            problems.append(f"{where or 'spec'} must be an object")
            data = {}
        self.data: Mapping[str, Any] = data

    def _path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def sub(self, key: str) -> _Reader:
        return _Reader(self.data.get(key), self._path(key), self.problems)

    def present(self, key: str) -> bool:
        return self.data.get(key) is not None

    def string(self, key: str, *, required: bool = False, default: str | None = None) -> str | None:
        value = self.data.get(key)
        if value is None or value == "":
            if required:
                self.problems.append(f"{self._path(key)} is required")
            return default
        if not isinstance(value, str):
            self.problems.append(f"{self._path(key)} must be a string")
            return default
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.problems.append(f"{self._path(key)} must be true or false")
            return default
        return value

    def integer(
        self, key: str, default: int | None, *, minimum: int | None = None, maximum: int | None = None
    ) -> int | None:
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.problems.append(f"{self._path(key)} must be an integer")
            return default
        if minimum is not None and value < minimum:
            self.problems.append(f"{self._path(key)} must be at least {minimum} (got {value})")
            return default
        if maximum is not None and value > maximum:
            self.problems.append(f"{self._path(key)} must be at most {maximum} (got {value})")
            return default
        return value

    def duration(self, key: str) -> float | None:
        value = self.string(key)
        if value is None:
            return None
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.problems.append(f"{self._path(key)}: {exc}")
            return None

    def string_list(self, key: str) -> tuple[str, ...] | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problems.append(f"{self._path(key)} must be a list of strings")
            return None
        return tuple(value)

    def string_map(self, key: str) -> dict[str, str]:
        value = self.data.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            self.problems.append(f"{self._path(key)} must map strings to strings")
            return {}
        return dict(value)


def _ref(text: str | None, default: str) -> ObjectRef:
    value = text or default
    namespace, _, name = value.rpartition("/")
    return ObjectRef(name=name, namespace=namespace or None)


def _check_ref(reader: _Reader, key: str, ref: ObjectRef) -> None:
    if not _DNS_SUBDOMAIN.match(ref.name) or (
        ref.namespace is not None and not _DNS_LABEL.match(ref.namespace)
    ):
        reader.problems.append(f"{reader._path(key)} {str(ref)!r} is not a valid name or namespace/name")


def _destination(reader: _Reader) -> Destination | None:
    if not reader.present("destination"):
        reader.problems.append("destination is required")
        return None
    d = reader.sub("destination")
    name = d.string("name", required=True)
    if name is not None and not _DNS_SUBDOMAIN.match(name):
        d.problems.append(f"destination.name {name!r} is not a valid Secret name")
    secret_type = d.string("type")
    if secret_type is not None and not _SECRET_TYPE.match(secret_type):
        d.problems.append(f"destination.type {secret_type!r} is not a Secret type")
    transformation = parse_transformation(
        d.data.get("transformation"), "destination.transformation", d.problems
    )
    return Destination(
        name=name or "",
        create=d.boolean("create", False),
        overwrite=d.boolean("overwrite", False),
        labels=d.string_map("labels"),
        annotations=d.string_map("annotations"),
        type=secret_type,
        transformation=transformation,
    )


def _rollout_targets(reader: _Reader) -> tuple[RolloutTarget, ...]:
    value = reader.data.get("rolloutRestartTargets")
    if value is None:
        return ()
    if not isinstance(value, list):
        reader.problems.append("rolloutRestartTargets must be a list")
        return ()
    targets = []
    for index, item in enumerate(value):
        t = _Reader(item, f"rolloutRestartTargets[{index}]", reader.problems)
        kind = t.string("kind", required=True)
        name = t.string("name", required=True)
        if kind is not None and kind not in WORKLOAD_KINDS:
            reader.problems.append(
                f"rolloutRestartTargets[{index}].kind {kind!r} is not one of {', '.join(WORKLOAD_KINDS)}"
            )
        elif kind and name:
            targets.append(RolloutTarget(kind=kind, name=name))
    return tuple(targets)


def _access(reader: _Reader) -> AccessPolicy:
    namespaces = reader.string_list("allowedKubernetesNamespaces") or ()
    for ns in namespaces:
        if ns != "*" and not _DNS_LABEL.match(ns):
            reader.problems.append(f"allowedKubernetesNamespaces: {ns!r} is not a namespace name or '*'")
    accounts = reader.string_list("allowedServiceAccounts") or ()
    for sa in accounts:
        ns, _, name = sa.rpartition("/")
        if not _DNS_SUBDOMAIN.match(name) or (ns and not _DNS_LABEL.match(ns)):
            reader.problems.append(f"allowedServiceAccounts: {sa!r} is not 'name' or 'namespace/name'")
    return AccessPolicy(namespaces=tuple(namespaces), service_accounts=tuple(accounts))


def _spec(obj: Mapping[str, Any], kind: str, problems: list[str]) -> _Reader:
    if not isinstance(obj, Mapping):
        raise SpecError(kind, ["object is not a mapping"])
    return _Reader(obj.get("spec"), "", problems)


def _secret_type(declared: str | None, destination: Destination | None) -> str:
    if destination is not None and destination.type:
        return destination.type
    if declared is not None and declared not in KV_TYPES:
        return declared
    return "Opaque"


# --------------------------------------------------------------------------- parsers


def parse_static_secret(obj: Mapping[str, Any]) -> StaticSecretSpec:
    """Spec of a VaultStaticSecret or VaultSecret; raises SpecError listing every problem."""
    problems: list[str] = []
    kind = str(obj.get("kind") or "VaultStaticSecret") if isinstance(obj, Mapping) else "VaultStaticSecret"
    spec = _spec(obj, kind, problems)
    auth_ref = _ref(spec.string("vaultAuthRef"), "default")
    _check_ref(spec, "vaultAuthRef", auth_ref)
    mount = spec.string("mount", required=True)
    path = spec.string("path", required=True)
    declared_type = spec.string("type")
    if declared_type is not None and declared_type not in KV_TYPES and not _SECRET_TYPE.match(declared_type):
        problems.append(f"type {declared_type!r} is neither kv-v1, kv-v2 nor a Secret type")
    kv_version = KV_TYPES.get(declared_type or "")
    version = spec.integer("version", None, minimum=0) or None
    if version is not None and kv_version == 1:
        problems.append("version can only be pinned for kv-v2 secrets")
    refresh = spec.duration("refreshAfter")
    if refresh is not None and refresh < 1:
        problems.append("refreshAfter must be at least 1s")
    hmac_secret_data = spec.boolean("hmacSecretData", True)
    destination = _destination(spec)
    rollout_targets = _rollout_targets(spec)
    access = _access(spec)
    vault_namespace = spec.string("namespace")
    if problems:
        raise SpecError(kind, problems)
    assert destination is not None and mount is not None and path is not None
    return StaticSecretSpec(
        auth_ref=auth_ref,
        vault_namespace=vault_namespace,
        mount=mount.strip("/"),
        path=path.strip("/"),
        kv_version=kv_version,
        version=version,
        refresh_after=refresh if refresh else DEFAULT_STATIC_REFRESH,
        hmac_secret_data=hmac_secret_data,
        destination=destination,
        secret_type=_secret_type(declared_type, destination),
        rollout_targets=rollout_targets,
        access=access,
    )


def parse_dynamic_secret(obj: Mapping[str, Any]) -> DynamicSecretSpec:
    """Spec of a VaultDynamicSecret; raises SpecError listing every problem."""
    problems: list[str] = []
    spec = _spec(obj, DYNAMIC_KIND, problems)
    auth_ref = _ref(spec.string("vaultAuthRef"), "default")
    _check_ref(spec, "vaultAuthRef", auth_ref)
    mount = spec.string("mount", required=True)
    path = spec.string("path", required=True)
    params = spec.data.get("params") or {}
    if not isinstance(params, Mapping):
        problems.append("params must be an object")
        params = {}
    method = (spec.string("requestHTTPMethod") or "GET").upper()
    if method == "POST":
        method = "PUT"  # Vault treats POST and PUT alike
    if method not in ("GET", "PUT"):
        problems.append(f"requestHTTPMethod {method!r} is not GET, PUT or POST")
        method = "GET"
    if params and method == "GET":
        method = "PUT"  # parameters can only travel in a body, as VSO does
    renewal_percent = spec.integer("renewalPercent", 67, minimum=0, maximum=90)
    refresh = spec.duration("refreshAfter")
    revocation = spec.duration("revocationDuration")
    rollout = spec.string("rollout")
    if rollout is not None and rollout not in ("pods", "none"):
        problems.append(f"rollout {rollout!r} is not 'pods' or 'none'")
    destination = _destination(spec)
    rollout_targets = _rollout_targets(spec)
    access = _access(spec)
    revoke = spec.boolean("revoke", False)
    allow_static_creds = spec.boolean("allowStaticCreds", False)
    vault_namespace = spec.string("namespace")
    if problems:
        raise SpecError(DYNAMIC_KIND, problems)
    assert destination is not None and mount is not None and path is not None
    return DynamicSecretSpec(
        auth_ref=auth_ref,
        vault_namespace=vault_namespace,
        mount=mount.strip("/"),
        path=path.strip("/"),
        params=dict(params),
        method="PUT" if method == "PUT" else "GET",
        renewal_percent=renewal_percent if renewal_percent is not None else 67,
        revoke=revoke,
        refresh_after=refresh or None,
        revocation_duration=revocation,
        rollout_pods=rollout == "pods",
        destination=destination,
        secret_type=_secret_type(None, destination),
        rollout_targets=rollout_targets,
        access=access,
        allow_static_creds=bool(allow_static_creds),
    )


def parse_connection(obj: Mapping[str, Any]) -> ConnectionSpec:
    """Spec of a VaultConnection; raises SpecError listing every problem."""
    problems: list[str] = []
    spec = _spec(obj, CONNECTION_KIND, problems)
    address = spec.string("address", required=True)
    if address is not None and not re.match(r"^https?://[^/\s]+", address):
        problems.append(f"address {address!r} must be an http:// or https:// URL")
    ca = spec.string("caCertSecretRef")
    alias = spec.string("tlsSecretRef")
    if ca and alias and ca != alias:
        problems.append("caCertSecretRef and tlsSecretRef name different Secrets; set one")
    ca_path = spec.string("caCertPath")
    if ca_path and (ca or alias):
        problems.append("caCertPath and caCertSecretRef are mutually exclusive; set one")
    if ca_path and not ca_path.startswith("/"):
        problems.append(f"caCertPath {ca_path!r} must be an absolute path")
    timeout = spec.duration("timeout")
    headers = spec.string_map("headers")
    server_name = spec.string("tlsServerName")
    skip = spec.boolean("skipTLSVerify", False)
    allowed = spec.string_list("allowedNamespaces")
    for ns in allowed or ():
        if ns != "*" and not _DNS_LABEL.match(ns):
            problems.append(f"allowedNamespaces: {ns!r} is not a namespace name or '*'")
    if problems:
        raise SpecError(CONNECTION_KIND, problems)
    assert address is not None
    return ConnectionSpec(
        address=address.rstrip("/"),
        headers=headers,
        tls_server_name=server_name,
        ca_cert_secret=ca or alias,
        skip_tls_verify=skip,
        timeout=timeout or DEFAULT_TIMEOUT,
        allowed_namespaces=allowed,
        ca_cert_path=ca_path,
    )


def _service_account_login(reader: _Reader, *, sa_required: bool) -> ServiceAccountLogin:
    role = reader.string("role", required=True)
    sa = reader.string("serviceAccount", required=sa_required)
    if sa is not None and not _DNS_SUBDOMAIN.match(sa):
        reader.problems.append(f"{reader._path('serviceAccount')} {sa!r} is not a valid name")
    audiences = reader.string_list("audiences") or ()
    expiration = reader.integer(
        "tokenExpirationSeconds",
        MIN_TOKEN_EXPIRATION,
        minimum=MIN_TOKEN_EXPIRATION,
        maximum=MAX_TOKEN_EXPIRATION,
    )
    return ServiceAccountLogin(
        role=role or "",
        service_account=sa or "",
        audiences=audiences,
        token_expiration_seconds=expiration or MIN_TOKEN_EXPIRATION,
    )


def parse_auth(obj: Mapping[str, Any]) -> AuthSpec:
    """Spec of a VaultAuth; raises SpecError listing every problem (an unknown method included)."""
    problems: list[str] = []
    spec = _spec(obj, AUTH_KIND, problems)
    connection_ref = _ref(spec.string("vaultConnectionRef"), "default")
    _check_ref(spec, "vaultConnectionRef", connection_ref)
    method = spec.string("method", required=True) or ""
    if method and method not in AUTH_METHODS:
        problems.append(f"method {method!r} is not supported (use one of: {', '.join(AUTH_METHODS)})")
    kubernetes = jwt = None
    jwt_secret = role_id = approle_secret = None
    if method == "kubernetes":
        if not spec.present("kubernetes"):
            problems.append("kubernetes is required when method is kubernetes")
        kubernetes = _service_account_login(spec.sub("kubernetes"), sa_required=True)
    elif method == "jwt":
        if not spec.present("jwt"):
            problems.append("jwt is required when method is jwt")
        sub = spec.sub("jwt")
        jwt = _service_account_login(sub, sa_required=False)
        jwt_secret = sub.string("secretRef")
        if not jwt.service_account and not jwt_secret:
            problems.append("jwt needs serviceAccount or secretRef")
    elif method == "appRole":
        if not spec.present("appRole"):
            problems.append("appRole is required when method is appRole")
        sub = spec.sub("appRole")
        role_id = sub.string("roleId", required=True)
        approle_secret = sub.string("secretRef", required=True)
    allowed = spec.string_list("allowedNamespaces")
    params = spec.string_map("params")
    headers = spec.string_map("headers")
    # Vault's own default mount, not the method name: appRole mounts at "approle".
    mount = spec.string("mount") or DEFAULT_MOUNTS.get(method, method)
    vault_namespace = spec.string("namespace")
    if problems:
        raise SpecError(AUTH_KIND, problems)
    return AuthSpec(
        connection_ref=connection_ref,
        vault_namespace=vault_namespace,
        method=method,
        mount=mount.strip("/"),
        allowed_namespaces=allowed,
        params=params,
        headers=headers,
        kubernetes=kubernetes,
        jwt=jwt,
        jwt_secret=jwt_secret,
        approle_role_id=role_id,
        approle_secret=approle_secret,
    )


def auth_allows_namespace(auth: AuthSpec, auth_namespace: str, secret_namespace: str) -> bool:
    """VaultAuth ``allowedNamespaces``: absent means only its own namespace; ``*`` means all."""
    if secret_namespace == auth_namespace:
        return True
    allowed = auth.allowed_namespaces or ()
    return "*" in allowed or secret_namespace in allowed


def connection_allows_namespace(
    connection: ConnectionSpec, connection_namespace: str, auth_namespace: str, operator_namespace: str
) -> bool:
    """May a VaultAuth in ``auth_namespace`` use this VaultConnection (issue 10, finding 9)?

    A connection carries headers and a CA choice and decides where tokens go, so another
    namespace may only borrow it when the connection says so: by default only its own namespace,
    or anyone when it lives in the operator's namespace (where the seed article's
    ``vaultConnectionRef: default`` finds the platform team's connection); ``allowedNamespaces``
    (``*`` = all) widens that.
    """
    if auth_namespace == connection_namespace:
        return True
    allowed = connection.allowed_namespaces
    if allowed is None:
        return connection_namespace == operator_namespace
    return "*" in allowed or auth_namespace in allowed
