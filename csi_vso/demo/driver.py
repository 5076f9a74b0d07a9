"""The CSI driver's side of the provider socket: a gRPC client sending what the driver sends."""

from __future__ import annotations

import json
from pathlib import Path

from csi_vso.demo.scenario import DemoError

# -- the CSI driver's side of the socket -------------------------------------------------------


class MountClient:
    """A gRPC client on the provider's unix socket, sending what the Secrets Store CSI driver sends."""

    def __init__(self, socket_path: Path) -> None:
        import grpc

        from csi_vso.providerapi import provider_pb2_grpc

        self._channel = grpc.insecure_channel(f"unix://{socket_path}")
        self._stub = provider_pb2_grpc.CSIDriverProviderStub(self._channel)

    def mount(self, attributes: dict[str, str], target_path: str, timeout: float) -> list[str]:
        import grpc

        from csi_vso.providerapi import provider_pb2

        request = provider_pb2.MountRequest(
            attributes=json.dumps(attributes),
            secrets="null",
            target_path=target_path,
            permission="420",
        )
        try:
            response = self._stub.Mount(request, timeout=timeout)
        except grpc.RpcError as exc:
            raise DemoError(f"Mount failed: {exc.code().name}: {exc.details()}") from None
        if response.error.code:
            raise DemoError(f"Mount failed: provider error {response.error.code}")
        return [f"{v.id}@{v.version[:12]}" for v in response.object_version]

    def close(self) -> None:
        self._channel.close()
