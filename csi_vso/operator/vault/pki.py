"""The PKI engine's answers as typed values (pure): an issued certificate, what it says about itself.

``<mount>/issue/<role>`` answers with the certificate, its private key, the issuing CA and chain,
the serial number and the expiration (Unix seconds), and sometimes ``warnings`` — notably when
Vault silently shortened the requested ``ttl`` to the role's ``max_ttl``. The key material stays
out of ``repr`` so a stray log line or assertion message cannot print it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from csi_vso.operator.vault.errors import RequestContext, VaultInvalid

__all__ = ["IssuedCertificate", "parse_issued"]


@dataclass(frozen=True)
class IssuedCertificate:
    data: Mapping[str, Any] = field(repr=False)  # every field of Vault's answer, key included
    serial_number: str
    expiration: int  # Unix seconds
    warnings: tuple[str, ...] = ()

    def capped_ttl_warning(self) -> str | None:
        """Vault's warning when it used the role's max TTL instead of the requested one."""
        for warning in self.warnings:
            if "maxTTL" in warning or "max_ttl" in warning:
                return warning
        return None


def parse_issued(body: Mapping[str, Any] | None, *, context: RequestContext) -> IssuedCertificate:
    data = (body or {}).get("data")
    if not isinstance(data, dict):
        raise VaultInvalid(f"{context.describe()}: answer has no data object", context=context)
    serial = data.get("serial_number")
    expiration = data.get("expiration")
    if not isinstance(serial, str) or not serial:
        raise VaultInvalid(f"{context.describe()}: answer has no serial_number", context=context)
    if isinstance(expiration, bool) or not isinstance(expiration, int) or expiration <= 0:
        raise VaultInvalid(f"{context.describe()}: answer has no expiration", context=context)
    if not isinstance(data.get("certificate"), str) or not isinstance(data.get("private_key"), str):
        raise VaultInvalid(
            f"{context.describe()}: answer lacks the certificate or its private key", context=context
        )
    warnings = (body or {}).get("warnings")
    return IssuedCertificate(
        data=data,
        serial_number=serial,
        expiration=expiration,
        warnings=tuple(str(w)[:300] for w in warnings) if isinstance(warnings, list) else (),
    )
