"""The CustomResourceDefinitions of the ``secrets.hashicorp.com/v1beta1`` API, built in one place.

The YAML under ``deploy/crds/`` is generated from here (``python -m csi_vso.operator.crds DIR``)
and a test checks that the two agree, so the schema has one source of truth and the
``VaultSecret`` kind the seed article uses cannot drift from ``VaultStaticSecret``: both are
built from the same function.

Schemas list every field DESIGN.md section 5 names, including the ones real VSO does not have
(``rollout``, ``revocationDuration``, ``allowedKubernetesNamespaces``, ``tlsSecretRef``,
``tokenReviewerServiceAccount``). Values the operator can judge better than a schema (an
unknown auth method, a KV version that is really a Secret type) are deliberately *not* enums:
the API server would reject the object and the user would never see our condition explaining
what is wrong. Structural limits (types, minimums, required names) stay in the schema.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from csi_vso.operator.vault.settings import MAX_TOKEN_EXPIRATION, MIN_TOKEN_EXPIRATION

GROUP = "secrets.hashicorp.com"
VERSION = "v1beta1"

Schema = dict[str, Any]

# Duration strings in Go's format, as VSO accepts them ("30s", "1h30m", "1.5h").
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"


def _str(description: str, **extra: Any) -> Schema:
    return {"type": "string", "description": description, **extra}


def _bool(description: str, default: bool | None = None) -> Schema:
    schema: Schema = {"type": "boolean", "description": description}
    if default is not None:
        schema["default"] = default
    return schema


def _int(description: str, **extra: Any) -> Schema:
    return {"type": "integer", "description": description, **extra}


def _str_map(description: str) -> Schema:
    return {"type": "object", "description": description, "additionalProperties": {"type": "string"}}


def _str_list(description: str) -> Schema:
    return {"type": "array", "description": description, "items": {"type": "string"}}


def _duration(description: str) -> Schema:
    return _str(description, pattern=DURATION_PATTERN)


def _obj(description: str, properties: dict[str, Schema], required: list[str] | None = None) -> Schema:
    schema: Schema = {"type": "object", "description": description, "properties": properties}
    if required:
        schema["required"] = required
    return schema


def _conditions() -> Schema:
    condition = _obj(
        "One aspect of the object's state (metav1.Condition).",
        {
            "type": _str("Ready, SecretSynced or LeaseRenewal."),
            "status": _str("True, False or Unknown.", enum=["True", "False", "Unknown"]),
            "reason": _str("CamelCase reason for the last transition."),
            "message": _str("Human-readable detail; never contains secret values."),
            "observedGeneration": _int("metadata.generation this condition was computed from."),
            "lastTransitionTime": _str("When status last changed.", format="date-time"),
        },
        required=["type", "status"],
    )
    return {
        "type": "array",
        "description": "Conditions Ready, SecretSynced and (dynamic secrets) LeaseRenewal.",
        "items": condition,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
    }


def _destination() -> Schema:
    return _obj(
        "The Kubernetes Secret the operator writes (always marked protected).",
        {
            "name": _str("Name of the Secret, in the custom resource's namespace.", minLength=1),
            "create": _bool("Create the Secret when it does not exist.", default=False),
            "overwrite": _bool(
                "Take over an existing Secret the operator does not own (otherwise refused).",
                default=False,
            ),
            "labels": _str_map("Extra labels on the Secret (the protected marks always win)."),
            "annotations": _str_map("Extra annotations on the Secret (the operator's own always win)."),
            "type": _str("Secret type, e.g. Opaque or kubernetes.io/basic-auth (default Opaque)."),
            "transformation": _transformation(),
        },
        required=["name"],
    )


def _template() -> Schema:
    return _obj(
        "Go text/template text (with VSO's Sprig functions).",
        {
            "name": _str("Template name (default: <namespace>/<object>/<key>)."),
            "text": _str("Template text; sees .Secrets, .Metadata, .Annotations and .Labels."),
        },
        required=["text"],
    )


def _templates(description: str) -> Schema:
    return {"type": "object", "description": description, "additionalProperties": _template()}


def _patterns(description: str) -> Schema:
    return _str_list(description + " Regular expressions over source key names.")


def _transformation() -> Schema:
    return _obj(
        "How the secret data is transformed before it is stored (VSO's Transformation).",
        {
            "templates": _templates("Secret key -> template whose output becomes the key's value."),
            "transformationRefs": {
                "type": "array",
                "description": "SecretTransformations whose templates and filters are used.",
                "items": _obj(
                    "A SecretTransformation reference.",
                    {
                        "name": _str("SecretTransformation name.", minLength=1),
                        "namespace": _str("Its namespace (default: this object's)."),
                        "templateRefs": {
                            "type": "array",
                            "description": "Only these templates (absent: all of them).",
                            "items": _obj(
                                "A template of the SecretTransformation.",
                                {
                                    "name": _str("Key of the template in its templates.", minLength=1),
                                    "keyOverride": _str("Secret key for its output (default: name)."),
                                },
                                required=["name"],
                            ),
                        },
                        "ignoreIncludes": _bool("Do not use its includes.", default=False),
                        "ignoreExcludes": _bool("Do not use its excludes.", default=False),
                    },
                    required=["name"],
                ),
            },
            "includes": _patterns("Keep only source keys matching one of these (after excludes)."),
            "excludes": _patterns("Drop source keys matching one of these (templated keys never are)."),
            "excludeRaw": _bool("Leave out the _raw key (Vault's whole answer as JSON).", default=False),
        },
    )


def secret_transformation_spec() -> Schema:
    return _obj(
        "Shared templates and filters for secret transformations.",
        {
            "templates": _templates("Key -> template; every one is rendered unless templateRefs narrows."),
            "sourceTemplates": {
                "type": "array",
                "description": "Templates never rendered to a key: {{define}}s used via {{template}}.",
                "items": _template(),
            },
            "includes": _patterns("Keep only source keys matching one of these."),
            "excludes": _patterns("Drop source keys matching one of these."),
        },
    )


def _rollout_targets() -> Schema:
    return {
        "type": "array",
        "description": "Workloads restarted (pod-template annotation) when the Secret's data changes.",
        "items": _obj(
            "A workload in the custom resource's namespace.",
            {
                "kind": _str("Workload kind.", enum=["Deployment", "StatefulSet", "DaemonSet"]),
                "name": _str("Workload name.", minLength=1),
            },
            required=["kind", "name"],
        ),
    }


def _access_policy() -> dict[str, Schema]:
    return {
        "allowedKubernetesNamespaces": _str_list(
            "Namespaces whose pods may mount the Secret through the CSI provider, besides its own "
            "('*' = any). Empty or absent: only the Secret's own namespace."
        ),
        "allowedServiceAccounts": _str_list(
            "If set, only pods running as one of these service accounts may mount it "
            "('name' in the pod's namespace or 'namespace/name')."
        ),
    }


def _secret_status(extra: dict[str, Schema] | None = None) -> Schema:
    properties: dict[str, Schema] = {
        "observedGeneration": _int("metadata.generation last reconciled."),
        "lastGeneration": _int("metadata.generation last synced (VSO's field name)."),
        "secretMAC": _str("Keyed HMAC-SHA256 (base64) of the data last written; not the data."),
        "lastSyncTime": _str("When the destination Secret was last confirmed in sync.", format="date-time"),
        "lastWriteTime": _str("When the destination Secret's data was last written.", format="date-time"),
        "transformationDigest": _str(
            "Fingerprint of the transformation last applied (templates, filters, annotations, labels)."
        ),
        "conditions": _conditions(),
    }
    properties.update(extra or {})
    return _obj("Observed state, written by the operator.", properties)


def static_secret_spec() -> Schema:
    return _obj(
        "A KV secret synced into a protected Kubernetes Secret.",
        {
            "vaultAuthRef": _str("VaultAuth name ('name' or 'namespace/name'); default: 'default'."),
            "namespace": _str("Vault/OpenBao namespace of the secret."),
            "mount": _str("KV secrets engine mount path.", minLength=1),
            "path": _str("Secret path inside the mount.", minLength=1),
            "type": _str(
                "kv-v1 or kv-v2; any other value is taken as the destination Secret's type "
                "(e.g. Opaque, kubernetes.io/basic-auth) and the KV version is detected from the mount."
            ),
            "version": _int("kv-v2 only: pin this secret version (0 or absent: latest).", minimum=0),
            "refreshAfter": _duration("Re-read from Vault this often (re-sync at 80-90 %). Default 1h."),
            "hmacSecretData": _bool("Keep a keyed HMAC of the data in status.secretMAC.", default=True),
            "destination": _destination(),
            "rolloutRestartTargets": _rollout_targets(),
            **_access_policy(),
        },
        required=["mount", "path", "destination"],
    )


def dynamic_secret_spec() -> Schema:
    return _obj(
        "Leased credentials (e.g. database) synced into a protected Kubernetes Secret.",
        {
            "vaultAuthRef": _str("VaultAuth name ('name' or 'namespace/name'); default: 'default'."),
            "namespace": _str("Vault/OpenBao namespace of the secrets engine."),
            "mount": _str("Secrets engine mount path.", minLength=1),
            "path": _str("Path that issues credentials, e.g. creds/readonly.", minLength=1),
            "params": {
                "type": "object",
                "description": "Request parameters (sent with PUT/POST).",
                "x-kubernetes-preserve-unknown-fields": True,
            },
            "requestHTTPMethod": _str("GET (default) or PUT/POST with params.", enum=["GET", "PUT", "POST"]),
            "renewalPercent": _int(
                "Renew the lease at this percentage of its TTL (plus up to 10 % jitter).",
                minimum=0,
                maximum=90,
                default=67,
            ),
            "revoke": _bool("Revoke the lease when the custom resource is deleted.", default=False),
            "allowStaticCreds": _bool(
                "Credentials Vault rotates itself (database static-creds): no lease; fetched again "
                "when the answer's ttl says Vault has rotated them."
            ),
            "refreshAfter": _duration("Fetch new credentials this often when the lease has no TTL."),
            "revocationDuration": _duration(
                "After a rotation, keep the old lease valid this long, then revoke it (absent: the old "
                "lease is not revoked and ends on its own TTL)."
            ),
            "rollout": _str(
                "'pods': restart workloads whose pod templates consume the Secret via env or a secret "
                "volume when the credentials rotate (CSI consumers are rewritten in place instead).",
                enum=["pods", "none", ""],
            ),
            "destination": _destination(),
            "rolloutRestartTargets": _rollout_targets(),
            **_access_policy(),
        },
        required=["mount", "path", "destination"],
    )


def pki_secret_spec() -> Schema:
    names = "May repeat; entries must not contain commas (they are joined with commas for Vault)."
    return _obj(
        "A certificate from Vault's PKI engine, renewed before expiry, in a protected Kubernetes Secret.",
        {
            "vaultAuthRef": _str("VaultAuth name ('name' or 'namespace/name'); default: 'default'."),
            "namespace": _str("Vault/OpenBao namespace of the PKI mount."),
            "mount": _str("PKI secrets engine mount path.", minLength=1),
            "role": _str("PKI role that issues the certificate (<mount>/issue/<role>).", minLength=1),
            "issuerRef": _str("Issuer to use (<mount>/issuer/<ref>/issue/<role>); default: the mount's."),
            "commonName": _str("Common name requested."),
            "altNames": _str_list("DNS names and email addresses requested as SANs. " + names),
            "ipSans": _str_list("IP SANs requested. " + names),
            "uriSans": _str_list("URI SANs requested. " + names),
            "otherSans": _str_list("Other SANs, each 'oid;type:value'. " + names),
            "userIDs": _str_list("User ID (OID 0.9.2342.19200300.100.1.1) subject values. " + names),
            "ttl": _str(
                "Requested lifetime, e.g. 72h or 30d (default: the role's). Over the role's max_ttl the "
                "request is refused with a condition (Vault would silently shorten it)."
            ),
            "notAfter": _str("Requested end of validity, UTC 'YYYY-MM-DDTHH:MM:SSZ' (instead of ttl)."),
            "format": _str("pem (default), der (base64) or pem_bundle (key and CA appended)."),
            "privateKeyFormat": _str("der (default: follows format), pem or pkcs8."),
            "excludeCNFromSans": _bool("Leave the common name out of the DNS/email SANs.", default=False),
            "expiryOffset": _str(
                "Renew this long before expiration, e.g. 30s, 15m, 1h (default 0: at expiration); "
                "renewals are spread earlier by up to a fifth of the renewal interval. Checked by the "
                "operator (a malformed value becomes a condition)."
            ),
            "revoke": _bool(
                "Revoke the current certificate when the custom resource is deleted.", default=False
            ),
            "clear": _bool(
                "Empty the destination Secret's data when the custom resource is deleted.", default=False
            ),
            "destination": _destination(),
            "rolloutRestartTargets": _rollout_targets(),
            **_access_policy(),
        },
        required=["mount", "role", "destination"],
    )


def _pki_status() -> dict[str, Schema]:
    return {
        "serialNumber": _str("Serial number of the certificate in the destination Secret."),
        "expiration": _int("Its expiration, Unix seconds.", format="int64"),
        "lastRotation": _int("When it was issued, Unix seconds (VSO's field name).", format="int64"),
        "valid": _bool("The last reconcile succeeded."),
        "error": _str("Reason of the last failure (empty when valid)."),
    }


def connection_spec() -> Schema:
    return _obj(
        "How to reach Vault/OpenBao.",
        {
            "address": _str("Vault address, e.g. https://vault.example.com:8200.", minLength=1),
            "headers": _str_map("Extra HTTP headers on every request."),
            "tlsServerName": _str("SNI / certificate name to expect."),
            "caCertSecretRef": _str("Secret (in this namespace) with ca.crt: the CA bundle to trust."),
            "tlsSecretRef": _str("Alias of caCertSecretRef (the seed article's name)."),
            "caCertPath": _str(
                "PEM CA bundle file on the operator's filesystem (exclusive with caCertSecretRef)."
            ),
            "skipTLSVerify": _bool("Do not verify the server certificate (testing only).", default=False),
            "timeout": _duration("Per-request timeout (default 30s)."),
            "allowedNamespaces": _str_list(
                "csi-vso extension: namespaces whose VaultAuths may use this connection ('*' = all). "
                "Absent: its own namespace only, or every namespace when the connection is in the "
                "operator's namespace."
            ),
        },
        required=["address"],
    )


def auth_spec() -> Schema:
    service_account_token = {
        "role": _str("Vault role to log in as.", minLength=1),
        "serviceAccount": _str("ServiceAccount (in the custom resource's namespace) whose token is used."),
        "audiences": _str_list("Audiences of the requested token."),
        "tokenExpirationSeconds": _int(
            "Lifetime of the requested token, seconds (600 to 3600).",
            minimum=MIN_TOKEN_EXPIRATION,
            maximum=MAX_TOKEN_EXPIRATION,
            default=MIN_TOKEN_EXPIRATION,
        ),
    }
    return _obj(
        "How to log in to Vault/OpenBao.",
        {
            "vaultConnectionRef": _str(
                "VaultConnection name ('name' or 'namespace/name'); default 'default'."
            ),
            "namespace": _str("Vault/OpenBao namespace to log in to."),
            "method": _str("kubernetes, jwt or appRole."),
            "mount": _str("Auth method mount path (default: kubernetes, jwt, or approle for appRole)."),
            "allowedNamespaces": _str_list(
                "Namespaces whose secrets may use this VaultAuth ('*' = all). Absent: only its own."
            ),
            "params": _str_map("Extra login parameters."),
            "headers": _str_map("Extra HTTP headers on login."),
            "kubernetes": _obj(
                "Kubernetes auth: TokenRequest for the ServiceAccount, then login.",
                {
                    **service_account_token,
                    "tokenReviewerServiceAccount": _str(
                        "Accepted for compatibility with the seed article; Vault's TokenReview uses the "
                        "login token itself (the operator does not hand out a reviewer token)."
                    ),
                },
            ),
            "jwt": _jwt(service_account_token),
            "appRole": _app_role(),
            "vaultAuthGlobalRef": _obj(
                "Inherit login settings from a VaultAuthGlobal.",
                {
                    "name": _str("VaultAuthGlobal name.", pattern="^([a-z0-9.-]{1,253})$"),
                    "namespace": _str(
                        "Its namespace (default: this VaultAuth's).", pattern="^([a-z0-9-]{1,63})$"
                    ),
                    "allowDefault": _bool("Without a name, use the VaultAuthGlobal named 'default'."),
                    "mergeStrategy": _obj(
                        "How headers and params combine with the global's.",
                        {
                            "headers": _str(
                                "union, replace or none (default).", enum=["union", "replace", "none"]
                            ),
                            "params": _str(
                                "union, replace or none (default).", enum=["union", "replace", "none"]
                            ),
                        },
                    ),
                },
            ),
        },
    )


def _jwt(service_account_token: dict[str, Schema]) -> Schema:
    return _obj(
        "JWT auth: a ServiceAccount token or a JWT stored in a Secret (key 'jwt').",
        {**service_account_token, "secretRef": _str("Secret holding the JWT under key 'jwt'.")},
    )


def _app_role() -> Schema:
    return _obj(
        "AppRole auth.",
        {
            "roleId": _str("AppRole role_id."),
            "secretRef": _str("Secret holding the secret_id under key 'id'."),
        },
    )


def auth_global_spec() -> Schema:
    service_account_token = {
        "role": _str("Vault role to log in as."),
        "serviceAccount": _str("ServiceAccount (in the secret's namespace) whose token is used."),
        "audiences": _str_list("Audiences of the requested token."),
        "tokenExpirationSeconds": _int("Lifetime of the requested token.", minimum=600),
    }
    placement = {
        "namespace": _str("Vault/OpenBao namespace of the auth mount."),
        "mount": _str("Auth method mount path."),
        "params": _str_map("Extra login parameters."),
        "headers": _str_map("Extra HTTP headers."),
    }
    return _obj(
        "Login defaults shared by VaultAuths that reference this object.",
        {
            "allowedNamespaces": _str_list(
                "Namespaces whose VaultAuths may use this ('*' = all). Absent: only its own."
            ),
            "vaultConnectionRef": _str("VaultConnection for VaultAuths that name none."),
            "defaultVaultNamespace": _str(
                "Vault namespace when neither VaultAuth nor method block sets one."
            ),
            "defaultAuthMethod": _str(
                "Method when the VaultAuth sets none.", enum=["kubernetes", "jwt", "appRole", "aws", "gcp"]
            ),
            "defaultMount": _str("Mount when neither VaultAuth nor method block sets one."),
            "params": _str_map("Default login parameters (see mergeStrategy)."),
            "headers": _str_map("Default headers (see mergeStrategy)."),
            "kubernetes": _obj("Kubernetes auth defaults.", {**service_account_token, **placement}),
            "jwt": _obj(
                "JWT auth defaults.",
                {**service_account_token, "secretRef": _str("Secret holding the JWT."), **placement},
            ),
            "appRole": _obj(
                "AppRole auth defaults.",
                {
                    "roleId": _str("AppRole role_id."),
                    "secretRef": _str("Secret holding the secret_id."),
                    **placement,
                },
            ),
        },
    )


def _validity_status() -> Schema:
    return _obj(
        "Observed state, written by the operator.",
        {
            "valid": _bool("The spec is valid and its references resolve."),
            "error": _str("Why it is not valid."),
            "observedGeneration": _int("metadata.generation last validated."),
            "conditions": _conditions(),
        },
    )


def _lease_status() -> dict[str, Schema]:
    return {
        "secretLease": _obj(
            "The current lease. The id is not a credential (it cannot be used to read the secret) "
            "but only the operator's service account can renew or revoke with it.",
            {
                "id": _str("Lease id."),
                "duration": _int("Lease TTL in seconds when issued or last renewed."),
                "renewable": _bool("Whether Vault allows renewing it."),
                "requestID": _str("Vault request id that issued it."),
                "issuedAt": _str("When the credentials were issued.", format="date-time"),
                "renewedAt": _str("When the lease was last renewed (or issued).", format="date-time"),
                "tokenAccessor": _str(
                    "Accessor of the Vault token that issued the lease (Vault revokes the lease when "
                    "that token expires). Not a credential: it can only look up, renew or revoke "
                    "that token, given a policy on auth/token/*-accessor."
                ),
            },
        ),
        "pendingRevocations": {
            "type": "array",
            "description": "Old leases kept valid for revocationDuration after a rotation.",
            "items": _obj(
                "A lease to revoke later.",
                {"id": _str("Lease id."), "revokeAt": _str("When to revoke it.", format="date-time")},
                required=["id", "revokeAt"],
            ),
        },
        "lastRenewalTime": _int("Unix time of the last renewal (VSO's field name)."),
    }


_AGE_COLUMN = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
_READY_COLUMN = {
    "name": "Ready",
    "type": "string",
    "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
}
_REASON_COLUMN = {
    "name": "Reason",
    "type": "string",
    "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
}


def _crd(
    kind: str,
    plural: str,
    spec: Schema,
    status: Schema,
    columns: list[dict[str, str]],
    short_names: list[str],
) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": ["csi-vso"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [*columns, _READY_COLUMN, _REASON_COLUMN, _AGE_COLUMN],
                    "schema": {
                        "openAPIV3Schema": _obj(
                            f"{kind} (csi-vso, VSO-compatible).",
                            {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec,
                                "status": status,
                            },
                            required=["spec"],
                        )
                    },
                }
            ],
        },
    }


def build_crds() -> list[dict[str, Any]]:
    """Every CRD the operator serves, in install order."""
    static_columns = [
        {"name": "Path", "type": "string", "jsonPath": ".spec.path"},
        {"name": "Destination", "type": "string", "jsonPath": ".spec.destination.name"},
    ]
    return [
        _crd(
            "VaultConnection",
            "vaultconnections",
            connection_spec(),
            _validity_status(),
            [{"name": "Address", "type": "string", "jsonPath": ".spec.address"}],
            ["vc"],
        ),
        _crd(
            "VaultAuth",
            "vaultauths",
            auth_spec(),
            _validity_status(),
            [
                {"name": "Method", "type": "string", "jsonPath": ".spec.method"},
                {"name": "Connection", "type": "string", "jsonPath": ".spec.vaultConnectionRef"},
            ],
            ["va"],
        ),
        _crd(
            "VaultStaticSecret",
            "vaultstaticsecrets",
            static_secret_spec(),
            _secret_status(),
            static_columns,
            ["vss"],
        ),
        _crd("VaultSecret", "vaultsecrets", static_secret_spec(), _secret_status(), static_columns, ["vs"]),
        _crd(
            "VaultDynamicSecret",
            "vaultdynamicsecrets",
            dynamic_secret_spec(),
            _secret_status(_lease_status()),
            [
                *static_columns,
                {"name": "Lease TTL", "type": "integer", "jsonPath": ".status.secretLease.duration"},
            ],
            ["vds"],
        ),
        _crd(
            "VaultPKISecret",
            "vaultpkisecrets",
            pki_secret_spec(),
            _secret_status(_pki_status()),
            [
                {"name": "Common Name", "type": "string", "jsonPath": ".spec.commonName"},
                {"name": "Destination", "type": "string", "jsonPath": ".spec.destination.name"},
                {"name": "Serial", "type": "string", "jsonPath": ".status.serialNumber"},
            ],
            ["vps"],
        ),
        _crd(
            "VaultAuthGlobal",
            "vaultauthglobals",
            auth_global_spec(),
            _validity_status(),
            [{"name": "Default Method", "type": "string", "jsonPath": ".spec.defaultAuthMethod"}],
            ["vag"],
        ),
        _crd(
            "SecretTransformation",
            "secrettransformations",
            secret_transformation_spec(),
            _validity_status(),
            [],
            ["st"],
        ),
    ]


def file_name(crd: dict[str, Any]) -> str:
    """``deploy/crds/`` file name of one CRD: ``<group>_<plural>.yaml`` (kubebuilder's convention)."""
    return f"{GROUP}_{crd['spec']['names']['plural']}.yaml"


def render(crd: dict[str, Any]) -> str:
    return yaml.safe_dump(crd, sort_keys=False, allow_unicode=True, width=100)


def write_all(directory: Path) -> list[Path]:
    """Write every CRD as YAML into ``directory``; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for crd in build_crds():
        path = directory / file_name(crd)
        path.write_text(
            "# Generated by `python -m csi_vso.operator.crds deploy/crds`; do not edit.\n" + render(crd)
        )
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "deploy/crds")):
        print(written_path)
