"""VaultPKISecret in, typed spec out: parse and validate, every problem reported at once. Pure.

The fields are VSO's (``api/v1beta1/vaultpkisecret_types.go``) so its manifests apply unchanged,
plus this project's access policy (``allowedKubernetesNamespaces``, ``allowedServiceAccounts``).
Checks beyond VSO's schema, each because a tenant writes the spec and the operator's Vault token
does the request:

- ``role``, ``issuerRef`` and every ``mount`` segment must be plain path segments: a role of
  ``../../sys/policy/x`` would otherwise aim the operator's token at another endpoint.
- List fields are joined with commas for Vault (as VSO does), so an entry containing a comma
  would smuggle extra names into the request: refused.
- ``ttl`` and ``notAfter`` are exclusive (Vault refuses both), ``notAfter`` must be
  ``YYYY-MM-DDTHH:MM:SSZ``, ``expiryOffset`` a duration (VSO: ``30s``, ``5m``...): the CRD does not
  pattern-check it, so a malformed value reaches the operator and becomes a condition naming it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from csi_vso.operator import api

FORMATS = ("pem", "der", "pem_bundle")
PRIVATE_KEY_FORMATS = ("der", "pem", "pkcs8")
MAX_LIST_ENTRIES = 100
MAX_ENTRY_LENGTH = 1024
TLS_SECRET_TYPE = "kubernetes.io/tls"  # noqa: S105 (a Secret type)

_SEGMENT = re.compile(r"^[A-Za-z0-9_][-A-Za-z0-9_.@]*$")
_TTL = re.compile(r"^([0-9]+(?:\.[0-9]+)?)d$")
_NOT_AFTER = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_LIST_FIELDS = (
    ("altNames", "alt_names"),
    ("ipSans", "ip_sans"),
    ("uriSans", "uri_sans"),
    ("otherSans", "other_sans"),
    ("userIDs", "user_ids"),
)


@dataclass(frozen=True)
class PKISecretSpec:
    auth_ref: api.ObjectRef
    vault_namespace: str | None
    mount: str
    role: str
    issuer_ref: str | None
    request: Mapping[str, Any]  # the body of <mount>/issue/<role>, VSO's parameters
    expiry_offset: float  # seconds before expiration to renew (0: at expiration, minus jitter)
    revoke: bool
    clear: bool
    destination: api.Destination
    secret_type: str
    rollout_targets: tuple[api.RolloutTarget, ...]
    access: api.AccessPolicy

    @property
    def issue_path(self) -> str:
        """``<mount>/issue/<role>``, or ``<mount>/issuer/<ref>/issue/<role>`` (VSO's getPath)."""
        if self.issuer_ref:
            return f"{self.mount}/issuer/{self.issuer_ref}/issue/{self.role}"
        return f"{self.mount}/issue/{self.role}"

    @property
    def is_tls(self) -> bool:
        return self.secret_type == TLS_SECRET_TYPE


def parse_ttl(text: str) -> float:
    """Seconds in a VSO ``ttl``: a Go duration, or a number of days (``30d``)."""
    days = _TTL.match(text.strip())
    if days:
        return float(days.group(1)) * 86400
    return api.parse_duration(text)


def _segment(reader: api._Reader, key: str, value: str | None) -> None:
    if value is not None and (not _SEGMENT.match(value) or value in (".", "..")):
        reader.problems.append(f"{key} {value!r} must be one path segment (letters, digits, - _ . @)")


def _mount(reader: api._Reader, value: str | None) -> str | None:
    if value is None:
        return None
    mount = value.strip("/")
    if not mount or any(not _SEGMENT.match(p) or p in (".", "..") for p in mount.split("/")):
        reader.problems.append(f"mount {value!r} must be a path of plain segments (no '..', no empty part)")
    return mount


def _names(reader: api._Reader, key: str) -> tuple[str, ...]:
    values = reader.string_list(key) or ()
    if len(values) > MAX_LIST_ENTRIES:
        reader.problems.append(f"{key} has {len(values)} entries; at most {MAX_LIST_ENTRIES}")
        return ()
    for value in values:
        if "," in value or not value.strip() or len(value) > MAX_ENTRY_LENGTH:
            reader.problems.append(
                f"{key}: {value[:80]!r} must be non-empty, without commas, at most {MAX_ENTRY_LENGTH} chars"
            )
    return values


def parse_pki_secret(obj: Mapping[str, Any]) -> PKISecretSpec:
    """Spec of a VaultPKISecret; raises :class:`api.SpecError` listing every problem."""
    problems: list[str] = []
    spec = api._spec(obj, api.PKI_KIND, problems)
    auth_ref = api._ref(spec.string("vaultAuthRef"), "default")
    api._check_ref(spec, "vaultAuthRef", auth_ref)
    mount = _mount(spec, spec.string("mount", required=True))
    role = spec.string("role", required=True)
    _segment(spec, "role", role)
    issuer_ref = spec.string("issuerRef")
    _segment(spec, "issuerRef", issuer_ref)

    request: dict[str, Any] = {}
    common_name = spec.string("commonName")
    if common_name is not None:
        if len(common_name) > MAX_ENTRY_LENGTH:
            problems.append(f"commonName is longer than {MAX_ENTRY_LENGTH} characters")
        request["common_name"] = common_name
    for key, vault_key in _LIST_FIELDS:
        values = _names(spec, key)
        if values:
            request[vault_key] = ",".join(values)
    ttl = spec.string("ttl")
    if ttl is not None:
        try:
            if parse_ttl(ttl) <= 0:
                problems.append(f"ttl {ttl!r} must be positive")
        except ValueError as exc:
            problems.append(f"ttl: {exc} (or days, e.g. 30d)")
        request["ttl"] = ttl
    not_after = spec.string("notAfter")
    if not_after is not None:
        if not _NOT_AFTER.match(not_after):
            problems.append(f"notAfter {not_after!r} must be a UTC time like 2030-01-31T23:59:59Z")
        else:
            try:
                datetime.strptime(not_after, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            except ValueError:
                problems.append(f"notAfter {not_after!r} is not a valid date")
        request["not_after"] = not_after
    if ttl is not None and not_after is not None:
        problems.append("set ttl or notAfter, not both (Vault refuses both)")
    fmt = spec.string("format")
    if fmt is not None:
        if fmt not in FORMATS:
            problems.append(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
        request["format"] = fmt
    key_format = spec.string("privateKeyFormat")
    if key_format is not None:
        if key_format not in PRIVATE_KEY_FORMATS:
            problems.append(f"privateKeyFormat {key_format!r} is not one of {', '.join(PRIVATE_KEY_FORMATS)}")
        request["private_key_format"] = key_format
    if spec.boolean("excludeCNFromSans", False):
        request["exclude_cn_from_sans"] = True
    # As VSO: the root stays out of ca_chain (clients hold it already).
    request["remove_roots_from_chain"] = True

    offset = 0.0
    offset_text = spec.string("expiryOffset")
    if offset_text is not None:
        try:
            offset = api.parse_duration(offset_text)
        except ValueError as exc:
            problems.append(f"expiryOffset: {exc}")
    destination = api._destination(spec)
    rollout_targets = api._rollout_targets(spec)
    access = api._access(spec)
    revoke = spec.boolean("revoke", False)
    clear = spec.boolean("clear", False)
    vault_namespace = spec.string("namespace")
    if problems:
        raise api.SpecError(api.PKI_KIND, problems)
    assert destination is not None and mount is not None and role is not None
    return PKISecretSpec(
        auth_ref=auth_ref,
        vault_namespace=vault_namespace,
        mount=mount,
        role=role,
        issuer_ref=issuer_ref,
        request=request,
        expiry_offset=offset,
        revoke=revoke,
        clear=clear,
        destination=destination,
        secret_type=api._secret_type(None, destination),
        rollout_targets=rollout_targets,
        access=access,
    )
