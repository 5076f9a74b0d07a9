"""apps/v1 Deployments as the real server stores them: defaults, validation, ``/scale``.

Defaulting (the real server applies it on every decode, so creates and updates alike):
``replicas: 1``, ``strategy: RollingUpdate`` with ``maxUnavailable``/``maxSurge`` 25%,
``revisionHistoryLimit: 10``, ``progressDeadlineSeconds: 600`` and the pod template's
defaults (restart/DNS policy, grace period, scheduler, container termination message
and image pull policy, port protocol). Validation adds what the generic workload checks
(``validation.validate_workload``) do not: every container needs a name and an image,
``replicas`` is not negative, a RollingUpdate may not have both budgets at 0, and
``progressDeadlineSeconds`` must exceed ``minReadySeconds``.

``deployments/{name}/scale`` serves an ``autoscaling/v1`` Scale: get, replace and patch
change only ``spec.replicas`` of the Deployment (with its resourceVersion as the
precondition), as ``kubectl scale`` and autoscalers use it.

Pure functions apart from :func:`serve_scale`, which goes through :class:`Operations`.
"""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, Any

import yaml

from csi_vso.devkit.apiserver import errors, patch
from csi_vso.devkit.apiserver.errors import ApiError, FieldError

if TYPE_CHECKING:
    from csi_vso.devkit.apiserver.operations import Operations
    from csi_vso.devkit.apiserver.resources import ResourceType

Obj = dict[str, Any]


def _image_pull_policy(image: str) -> str:
    """``Always`` for an untagged or ``:latest`` image (no digest), else ``IfNotPresent``."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def default_pod_spec(spec: Obj) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            if not isinstance(container, dict):
                continue
            container.setdefault("resources", {})
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            if isinstance(container.get("image"), str) and container["image"]:
                container.setdefault("imagePullPolicy", _image_pull_policy(container["image"]))
            for port in container.get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")


def apply_defaults(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("replicas", 1)
    strategy = spec.setdefault("strategy", {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            if isinstance(rolling, dict):
                rolling.setdefault("maxUnavailable", "25%")
                rolling.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    template = spec.get("template")
    if isinstance(template, dict):
        metadata = template.setdefault("metadata", {})
        if isinstance(metadata, dict):
            metadata.setdefault("creationTimestamp", None)
        if isinstance(template.get("spec"), dict):
            default_pod_spec(template["spec"])


def _is_zero(value: Any) -> bool:
    return value in (0, "0", "0%")


def validate(obj: Obj) -> list[FieldError]:
    spec = obj.get("spec") or {}
    out: list[FieldError] = []
    replicas = spec.get("replicas")
    if isinstance(replicas, int) and replicas < 0:
        out.append(errors.invalid_value("spec.replicas", replicas, "must be greater than or equal to 0"))
    template_spec = (spec.get("template") or {}).get("spec") or {}
    for i, container in enumerate(template_spec.get("containers") or []):
        if not isinstance(container, dict):
            continue
        if not container.get("name"):
            out.append(errors.required(f"spec.template.spec.containers[{i}].name"))
        if not container.get("image"):
            out.append(errors.required(f"spec.template.spec.containers[{i}].image"))
    restart = template_spec.get("restartPolicy", "Always")
    if restart != "Always":
        out.append(errors.not_supported("spec.template.spec.restartPolicy", restart, ["Always"]))
    strategy = spec.get("strategy") or {}
    rolling = strategy.get("rollingUpdate") or {}
    if strategy.get("type") == "Recreate" and strategy.get("rollingUpdate") is not None:
        out.append(
            errors.forbidden(
                "spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'"
            )
        )
    elif _is_zero(rolling.get("maxUnavailable")) and _is_zero(rolling.get("maxSurge")):
        out.append(
            errors.invalid_value(
                "spec.strategy.rollingUpdate.maxUnavailable",
                rolling.get("maxUnavailable"),
                "may not be 0 when `maxSurge` is 0",
            )
        )
    deadline = spec.get("progressDeadlineSeconds")
    min_ready = spec.get("minReadySeconds") or 0
    if isinstance(deadline, int) and deadline <= min_ready:
        out.append(
            errors.invalid_value(
                "spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"
            )
        )
    return out


# ----------------------------------------------------------------- /scale


def selector_string(selector: Obj | None) -> str:
    """A LabelSelector in the text form Scale.status.selector carries."""
    parts = [f"{k}={v}" for k, v in sorted(((selector or {}).get("matchLabels") or {}).items())]
    for expr in (selector or {}).get("matchExpressions") or []:
        key, op, values = expr.get("key", ""), expr.get("operator", ""), sorted(expr.get("values") or [])
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(sorted(parts))


def scale_of(deployment: Obj) -> Obj:
    meta = deployment["metadata"]
    spec = deployment.get("spec") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta.get("namespace", ""),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
            "creationTimestamp": meta.get("creationTimestamp"),
        },
        "spec": {"replicas": spec.get("replicas", 1)},
        "status": {
            "replicas": (deployment.get("status") or {}).get("replicas", 0),
            "selector": selector_string(spec.get("selector")),
        },
    }


def _decode_patch(content_type: str, raw: bytes) -> Any:
    try:
        if content_type == "application/apply-patch+yaml":
            return yaml.safe_load(raw)
        return json.loads(raw or b"null")
    except (ValueError, yaml.YAMLError) as exc:
        raise errors.bad_request(f"error decoding patch: {exc}") from None


def _patched_scale(current: Obj, content_type: str, raw: bytes) -> Any:
    content_type = content_type.split(";")[0].strip().lower()
    body = _decode_patch(content_type, raw)
    try:
        if content_type == "application/json-patch+json":
            return patch.json_patch(current, body)
        if content_type == "application/strategic-merge-patch+json":
            return patch.strategic_merge_patch(copy.deepcopy(current), body)
        if content_type in ("application/merge-patch+json", "application/apply-patch+yaml"):
            return patch.merge_patch(current, body)
    except patch.PatchError as exc:
        raise ApiError(422, "Invalid", str(exc)) from None
    raise ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, "
        f"application/strategic-merge-patch+json (got {content_type})",
    )


def serve_scale(
    ops: Operations,
    rt: ResourceType,
    namespace: str,
    name: str,
    method: str,
    raw: bytes,
    content_type: str,
    dry_run: bool = False,
) -> Obj:
    """GET / PUT / PATCH ``deployments/{name}/scale``; returns the Scale to answer with."""
    with ops.store.lock:
        current = ops.get(rt, namespace, name).obj
        if method == "GET":
            return scale_of(current)
        if method == "PUT":
            try:
                wanted = json.loads(raw or b"null")
            except ValueError as exc:
                raise errors.bad_request(
                    f"the body of the request could not be decoded as JSON: {exc}"
                ) from None
        elif method == "PATCH":
            wanted = _patched_scale(scale_of(current), content_type, raw)
        else:
            raise errors.method_not_allowed(method)
        if not isinstance(wanted, dict):
            raise errors.bad_request("Scale body must be a JSON object")
        replicas = (wanted.get("spec") or {}).get("replicas", 0)
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise errors.invalid(
                "Scale",
                "autoscaling",
                name,
                [errors.invalid_value("spec.replicas", replicas, "must be greater than or equal to 0")],
            )
        rv = (wanted.get("metadata") or {}).get("resourceVersion")
        if rv and rv != current["metadata"]["resourceVersion"]:
            raise errors.conflict(rt.plural, rt.group, name, errors.STALE)
        updated = copy.deepcopy(current)
        updated["spec"] = {**(updated.get("spec") or {}), "replicas": replicas}
        stored = ops.update(rt, namespace, name, updated, dry_run=dry_run)
        return scale_of(stored.obj)
