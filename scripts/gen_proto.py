"""Regenerate csi_vso/providerapi/provider_pb2*.py from proto/provider.proto.

The include mapping ``-Icsi_vso/providerapi=proto`` makes protoc see the file as
``csi_vso/providerapi/provider.proto``, so the generated gRPC module imports its
messages package-absolutely and nothing needs patching afterwards.

Usage: python scripts/gen_proto.py [--check]
  --check  generate into a temporary directory and exit 1 if the committed files differ.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "proto" / "provider.proto"
PACKAGE_DIR = Path("csi_vso") / "providerapi"
GENERATED = ("provider_pb2.py", "provider_pb2.pyi", "provider_pb2_grpc.py")


def generate(out_root: Path) -> None:
    """Run protoc with the package include mapping; output lands in out_root/csi_vso/providerapi."""
    (out_root / PACKAGE_DIR).mkdir(parents=True, exist_ok=True)
    include = f"-I{PACKAGE_DIR.as_posix()}={PROTO.parent}"
    grpc_include = str(Path(protoc.__file__).parent / "_proto")
    rc = protoc.main(
        [
            "grpc_tools.protoc",
            include,
            f"-I{grpc_include}",
            f"--python_out={out_root}",
            f"--pyi_out={out_root}",
            f"--grpc_python_out={out_root}",
            str(PACKAGE_DIR / "provider.proto"),
        ]
    )
    if rc != 0:
        raise SystemExit(f"protoc failed with exit code {rc}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed modules are stale")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        stale = [
            name
            for name in GENERATED
            if not (ROOT / PACKAGE_DIR / name).exists()
            or not filecmp.cmp(Path(tmp) / PACKAGE_DIR / name, ROOT / PACKAGE_DIR / name, shallow=False)
        ]
        if args.check:
            if stale:
                print(f"stale generated modules: {', '.join(stale)}; run python scripts/gen_proto.py")
                return 1
            print("generated modules are up to date")
            return 0
        for name in GENERATED:
            shutil.copyfile(Path(tmp) / PACKAGE_DIR / name, ROOT / PACKAGE_DIR / name)
        print(f"wrote {', '.join(GENERATED)} into {PACKAGE_DIR}")
        return 0


if __name__ == "__main__":
    sys.exit(main())
