"""Mount, end to end: parse, validate, check identity, authorize, render, write or return.

This is the provider's one use case, written as a straight line over small collaborators
so that each step can be read and tested on its own:

1. parse the request's strings and validate them, reporting every problem at once; the
   target must be kubelet's directory of one CSI volume under ``kubelet_dir``
   (:mod:`~csi_vso.provider.targets`);
2. refuse with UNAVAILABLE until the protected-Secret cache has synced (an empty cache
   would otherwise look like NOT_FOUND);
3. confirm the pod's identity against the API (cached per pod UID / token); the target's pod
   UID must be the verified pod's (PERMISSION_DENIED otherwise: pod A's token never writes
   into pod B's volume);
4. for each named Secret: read it from the source (pod-token mode: with the pod's own token,
   so the API server's RBAC decides first, PERMISSION_DENIED naming the Secret; the watch
   cache answers after that first read) — NOT_FOUND, identical for an unprotected one —
   then apply the access policy (PERMISSION_DENIED);
5. render the files and their versions;
6. ``writeMode: provider``: write them into the volume with the atomic writer and tell
   the observers (the rotation registry of issue 4); ``driver``: return them. With
   ``require_mounted_target`` the writer first checks, under its lock, that the target is a
   mount point (the driver's tmpfs) and the Mount fails with FAILED_PRECONDITION otherwise.

Steps 4-5 are :meth:`MountService.render_for`, which rotation calls again when a Secret
changes, so a republish and a rotation produce byte-identical volumes.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from csi_vso.provider import authz
from csi_vso.provider.atomic_writer import (
    FileToWrite,
    InvalidPayloadError,
    NotMountedError,
    TargetBusyError,
    UnsafeTargetError,
    WriteResult,
    write_atomically,
)
from csi_vso.provider.authz import VerifiedPod
from csi_vso.provider.errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    TargetNotMounted,
    TargetUnsafe,
    Unavailable,
    WriteFailed,
)
from csi_vso.provider.identity import API_AUDIENCE
from csi_vso.provider.params import PodClaim, parse_request
from csi_vso.provider.render import ObjectVersion, RenderedFile, payload, render, versions
from csi_vso.provider.targets import DEFAULT_KUBELET_DIR, parse_target
from csi_vso.provider.validation import MountSpec, WriteMode, validate


class SecretSource(Protocol):
    """What Mount needs from the Secret source: the cluster-wide
    :class:`~csi_vso.provider.secret_cache.SecretCache`, or the per-Secret
    :class:`~csi_vso.provider.secret_watches.SecretWatches` that reads with the pod's token."""

    def has_synced(self) -> bool: ...
    def read(self, namespace: str, name: str, *, pod: VerifiedPod, token: str | None) -> Any: ...


class IdentitySource(Protocol):
    """What Mount needs from :class:`~csi_vso.provider.identity.IdentityVerifier`."""

    def verify(self, claim: PodClaim) -> VerifiedPod: ...


class Writer(Protocol):
    """:func:`~csi_vso.provider.atomic_writer.write_atomically`'s shape (tests wrap it)."""

    def __call__(
        self,
        target_dir: Path,
        files: Sequence[FileToWrite],
        *,
        require_mount: bool = False,
        root: Path = ...,
    ) -> WriteResult: ...


@dataclass(frozen=True)
class RenderedMount:
    """A volume's files and versions as the current Secrets make them."""

    files: tuple[RenderedFile, ...]
    versions: tuple[ObjectVersion, ...]

    @property
    def size(self) -> int:
        return sum(len(f.contents) for f in self.files)


@dataclass(frozen=True)
class MountResult:
    """What the servicer returns: files only in driver mode, versions always."""

    spec: MountSpec
    files: tuple[RenderedFile, ...]
    versions: tuple[ObjectVersion, ...]
    bytes_served: int
    changed: bool  # provider mode: whether the volume was rewritten; driver mode: always True


#: Called after every successful Mount (the rotation registry records provider-mode volumes
#: and forgets a target that moved to driver mode).
MountObserver = Callable[[MountSpec, VerifiedPod, RenderedMount], None]


def _decode(data: Mapping[str, str] | None, where: str) -> dict[str, bytes]:
    try:
        return {k: base64.b64decode(v or "", validate=True) for k, v in (data or {}).items()}
    except (binascii.Error, ValueError):
        raise NotFound(f"protected Secret {where} holds data that is not base64") from None


class MountService:
    """The Mount use case over a Secret source, an identity check and the atomic writer."""

    def __init__(
        self,
        *,
        secrets: SecretSource,
        identity: IdentitySource,
        version_key: bytes,
        writer: Writer = write_atomically,
        require_mounted_target: bool = False,
        kubelet_dir: Path = DEFAULT_KUBELET_DIR,
    ) -> None:
        self._secrets = secrets
        self._identity = identity
        self._key = version_key
        self._writer = writer
        self._require_mount = require_mounted_target
        self._kubelet_dir = kubelet_dir
        self._observers: list[MountObserver] = []

    def add_observer(self, observer: MountObserver) -> None:
        self._observers.append(observer)

    def mount(self, *, attributes: str, secrets: str, target_path: str, permission: str) -> MountResult:
        # 1. Parse and validate.
        spec = validate(
            parse_request(
                attributes=attributes, secrets=secrets, target_path=target_path, permission=permission
            ),
            kubelet_dir=self._kubelet_dir,
        )
        # 2. Only answer from a complete cache.
        if not self._secrets.has_synced():
            raise Unavailable("the protected Secret cache has not synced yet; retry shortly")
        # 3. Identity.
        pod = self._identity.verify(spec.pod)
        target = parse_target(self._kubelet_dir, spec.target_path)
        if isinstance(target, list) or target.pod_uid != pod.uid:
            raise PermissionDenied(
                f"target_path {spec.target_path} is not a volume of pod {pod.namespace}/{pod.name} "
                f"(UID {pod.uid}), whose identity this Mount verified"
            )
        # 4.-5. Look up, authorize, render.
        rendered = self.render_for(pod, spec)
        # 6. Write or return. Observers hear of every Mount: a volume that moves to driver mode
        # must leave the rotation registry, or rotation would keep writing into it.
        if spec.write_mode is WriteMode.DRIVER:
            for observer in self._observers:
                observer(spec, pod, rendered)
            return MountResult(
                spec=spec,
                files=rendered.files,
                versions=rendered.versions,
                bytes_served=rendered.size,
                changed=True,
            )
        result = self.write(spec, rendered)
        for observer in self._observers:
            observer(spec, pod, rendered)
        return MountResult(
            spec=spec,
            files=(),
            versions=rendered.versions,
            bytes_served=rendered.size,
            changed=result.changed,
        )

    def render_for(self, pod: VerifiedPod, spec: MountSpec) -> RenderedMount:
        """Steps 4-5 for an already verified pod: the volume as the cached Secrets make it now."""
        data: dict[tuple[str, str], dict[str, bytes]] = {}
        token = spec.pod.tokens.get(API_AUDIENCE)
        for obj in spec.objects:
            ref = (obj.secret_namespace, obj.secret_name)
            if ref in data:
                continue
            secret = self._secrets.read(*ref, pod=pod, token=token)
            if secret is None:
                raise authz.not_found(*ref)
            meta = secret.metadata
            authz.authorize(
                pod,
                secret_namespace=ref[0],
                secret_name=ref[1],
                labels=meta.labels,
                annotations=meta.annotations,
            )
            data[ref] = _decode(secret.data, f"{ref[0]}/{ref[1]}")
        files = render(spec.objects, data, spec.permission)
        if not files:
            raise NotFound("the protected Secrets of this volume hold no data: nothing to mount")
        return RenderedMount(files=files, versions=versions(self._key, files))

    def write(self, spec: MountSpec, rendered: RenderedMount) -> WriteResult:
        """Write ``rendered`` into the spec's target with the atomic writer; errors become ProviderErrors."""
        target = spec.target_path
        try:
            return self._writer(
                Path(target),
                payload(rendered.files),
                require_mount=self._require_mount,
                root=self._kubelet_dir,
            )
        except InvalidPayloadError as exc:
            raise InvalidArgument(exc.problems) from None
        except NotMountedError as exc:
            raise TargetNotMounted(str(exc)) from None
        except UnsafeTargetError as exc:
            raise TargetUnsafe(f"refusing to write into {target}: {exc}") from None
        except TargetBusyError as exc:
            raise Unavailable(f"{exc}; retry the Mount") from None
        except (FileNotFoundError, NotADirectoryError):
            raise InvalidArgument([f"target_path {target} is not an existing directory"]) from None
        except OSError as exc:
            raise WriteFailed(f"writing into {target} failed: {exc.strerror or type(exc).__name__}") from None
