"""One call for a secret kind that has its own rendering (VaultPKISecret): transformed or not.

Static and dynamic secrets resolve the plan first (its digest decides whether Vault is read at
all) and render later; a kind that always has fresh Vault data in hand when it writes can do
both at once::

    transformed = apply_transformation(
        obj, spec.destination.transformation, rt.getter("SecretTransformation"),
        exclude_raw=rt.exclude_raw, secrets=vault_data, raw=vault_data,
    )
    data = transformed.data if transformed is not None else kind_specific_rendering(vault_data)

``None`` means no transformation is configured: the kind keeps its own rendering (for PKI, VSO
then adds ``tls.crt``/``tls.key``; with templates it does not). Errors are
:class:`~csi_vso.operator.transform.gather.TransformError`, which the controller reports as a
condition and an event while the destination stays as it was. Store ``digest`` in status
(``transformationDigest``) to notice a SecretTransformation edit, and add the kind to the
controller's ``SECRET_KINDS`` so its references are indexed and edits re-queue it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from csi_vso.operator.transform.gather import Getter, plan_for
from csi_vso.operator.transform.render import secret_data
from csi_vso.operator.transform.spec import Transformation


@dataclass(frozen=True)
class Transformed:
    data: dict[str, bytes] = field(repr=False)
    digest: str


def apply_transformation(
    obj: Mapping[str, Any],
    transformation: Transformation | None,
    get_transformation: Getter,
    *,
    exclude_raw: bool,
    secrets: Mapping[str, Any],
    raw: Mapping[str, Any],
    metadata: Mapping[str, Any] | None = None,
) -> Transformed | None:
    """The transformed Secret data and the plan's digest; None without a transformation."""
    plan = plan_for(obj, transformation, get_transformation, exclude_raw=exclude_raw)
    if plan is None:
        return None
    return Transformed(
        data=secret_data(plan, secrets=secrets, raw=raw, metadata=metadata), digest=plan.digest()
    )
