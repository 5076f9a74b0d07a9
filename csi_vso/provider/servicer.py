"""The gRPC face of the provider: proto in, domain call, proto out. Nothing else lives here.

Failures are turned into a status by :func:`csi_vso.provider.errors.status_for` (the one
mapping) and returned with ``context.abort``; the driver shows the message in the pod's
events. What is logged about a Mount is its outcome and the pod it was for: never the
request's ``attributes`` or ``secrets``, never file contents, and for an unexpected
exception only its type and stack frames (its message could quote data).
"""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any, NoReturn

import grpc

from csi_vso import __version__
from csi_vso.provider.errors import ProviderError, status_for
from csi_vso.provider.metrics import ProviderMetrics
from csi_vso.provider.service import MountResult, MountService
from csi_vso.providerapi import provider_pb2, provider_pb2_grpc

log = logging.getLogger(__name__)

API_VERSION = "v1alpha1"
RUNTIME_NAME = "csi-vso"


def to_response(result: MountResult) -> Any:
    """Domain result -> MountResponse (files only in driver mode)."""
    return provider_pb2.MountResponse(
        object_version=[provider_pb2.ObjectVersion(id=v.id, version=v.version) for v in result.versions],
        files=[provider_pb2.File(path=f.path, mode=f.mode, contents=f.contents) for f in result.files],
    )


class ProviderServicer(provider_pb2_grpc.CSIDriverProviderServicer):  # type: ignore[misc]
    def __init__(self, service: MountService, metrics: ProviderMetrics) -> None:
        self._service = service
        self._metrics = metrics

    def Version(self, request: Any, context: grpc.ServicerContext) -> Any:
        return provider_pb2.VersionResponse(
            version=API_VERSION, runtime_name=RUNTIME_NAME, runtime_version=__version__
        )

    def Mount(self, request: Any, context: grpc.ServicerContext) -> Any:
        started = time.perf_counter()
        try:
            result = self._service.mount(
                attributes=request.attributes,
                secrets=request.secrets,
                target_path=request.target_path,
                permission=request.permission,
            )
            # Built here, so a response that cannot be built is a status the metrics count,
            # not an UNKNOWN from gRPC after an OK was recorded.
            response = to_response(result)
        except Exception as exc:
            self._fail(exc, context, time.perf_counter() - started, request.target_path)
        mode = result.spec.write_mode.value
        self._metrics.observe_mount(
            code=grpc.StatusCode.OK.name,
            mode=mode,
            seconds=time.perf_counter() - started,
            bytes_served=result.bytes_served,
        )
        pod = result.spec.pod
        log.debug(
            "mount served",
            extra={
                "pod": f"{pod.namespace}/{pod.name}",
                "mode": mode,
                "files": len(result.versions),
                "changed": result.changed,
            },
        )
        return response

    def _fail(self, exc: Exception, context: grpc.ServicerContext, seconds: float, target: str) -> NoReturn:
        code, message = status_for(exc)
        self._metrics.observe_mount(code=code.name, mode="unknown", seconds=seconds)
        # The target path (kubelet's, with the pod UID in it) tells which volume failed; it is
        # the driver's, never pod-controlled content.
        if isinstance(exc, ProviderError):
            log.info("mount refused", extra={"code": code.name, "reason": message, "target": target})
        else:
            frames = "".join(traceback.format_tb(exc.__traceback__))
            log.error(
                "mount failed unexpectedly",
                extra={"error": type(exc).__name__, "frames": frames, "target": target},
            )
        context.abort(code, message)
        raise AssertionError("context.abort returned")  # it raises; this keeps the type checker honest
