"""An issued certificate as destination Secret data, keyed as VSO writes it. Pure.

Every field of Vault's answer becomes a key (``certificate``, ``private_key``,
``private_key_type``, ``issuing_ca``, ``serial_number``, ``expiration``, and ``ca_chain`` when
Vault sends one, its entries joined by newlines). For a ``kubernetes.io/tls`` destination VSO
adds ``tls.key`` (the private key) and ``tls.crt`` (the certificate followed by ``ca_chain``, or
by ``issuing_ca`` when the chain is empty — the request asks Vault to leave the root out of the
chain), and ``ca.crt`` (the issuing CA) only when the chain is empty.

One Secret write carries the certificate and its key together, and the CSI provider swaps a
volume's files in one ``..data`` rename: a reader never sees a new certificate with an old key.

Unlike VSO, no ``_raw`` key (a second copy of the key, as JSON): the other kinds here do not
write one either.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from csi_vso.operator.render import render

TLS_CERT = "tls.crt"
TLS_KEY = "tls.key"
CA_CERT = "ca.crt"


def certificate_fields(vault_data: Mapping[str, Any]) -> dict[str, Any]:
    """Vault's answer with ``ca_chain`` as one PEM string (dropped when empty), as the keys hold it.

    This is also what a transformation's templates see as ``.Secrets``.
    """
    fields = dict(vault_data)
    chain = fields.get("ca_chain")
    if isinstance(chain, list):
        if chain:
            fields["ca_chain"] = "\n".join(str(c) for c in chain)
        else:
            fields.pop("ca_chain")
    return fields


def certificate_data(vault_data: Mapping[str, Any], *, tls: bool) -> dict[str, bytes]:
    data = render(certificate_fields(vault_data))
    if not tls:
        return data
    certificate = data.get("certificate", b"")
    ca = data.get("ca_chain") or b""
    if not ca and data.get("issuing_ca"):
        ca = data["issuing_ca"]
        data[CA_CERT] = ca
    data[TLS_CERT] = certificate + b"\n" + ca if ca else certificate
    data[TLS_KEY] = data.get("private_key", b"")
    return data
