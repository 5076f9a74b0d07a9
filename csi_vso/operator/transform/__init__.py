"""Secret transformations: VSO's ``destination.transformation`` and the ``SecretTransformation`` kind.

Module map (all pure; the controller passes a getter over its watch cache):

- ``spec``: the wire shapes -> frozen specs (``Transformation``, ``SecretTransformationSpec``),
  every problem reported at once.
- ``gather``: a secret's transformation plus the SecretTransformations it references ->
  one :class:`~csi_vso.operator.transform.gather.Plan` (keyed templates, source templates,
  filters, ``excludeRaw``) and its digest; VSO's reference and naming rules live here.
- ``render``: a Plan and what Vault answered -> Secret data (templates rendered with the Go
  template engine in :mod:`csi_vso.operator.gotemplate`, source keys filtered, ``_raw``).
- ``index``: which secrets reference which SecretTransformation, so an edit re-queues exactly
  those.
- ``patterns``: key filters on RE2 (Go's syntax, linear time).
- ``apply``: plan + render in one call, for kinds with their own rendering (VaultPKISecret).

How a secret kind uses it (static, dynamic, and any new kind such as VaultPKISecret): resolve
the plan with :func:`gather.plan_for`, then turn Vault's answer into Secret data with
:func:`render.secret_data`; a bad template or reference raises
:class:`~csi_vso.operator.transform.gather.TransformError` (reason + message naming the
template, line and problem, never a value), which the controller reports as a condition and an
event while the destination is left as it was.
"""
