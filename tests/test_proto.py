"""The generated provider API matches proto/provider.proto and DESIGN.md section 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf.descriptor import FieldDescriptor

from csi_vso.providerapi import provider_pb2, provider_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent

STRING = FieldDescriptor.TYPE_STRING
BYTES = FieldDescriptor.TYPE_BYTES
INT32 = FieldDescriptor.TYPE_INT32
MESSAGE = FieldDescriptor.TYPE_MESSAGE

# message -> [(field, number, type, repeated, message type name or None)], from DESIGN.md section 2.
EXPECTED_FIELDS = {
    "VersionRequest": [("version", 1, STRING, False, None)],
    "VersionResponse": [
        ("version", 1, STRING, False, None),
        ("runtime_name", 2, STRING, False, None),
        ("runtime_version", 3, STRING, False, None),
    ],
    "MountRequest": [
        ("attributes", 1, STRING, False, None),
        ("secrets", 2, STRING, False, None),
        ("target_path", 3, STRING, False, None),
        ("permission", 4, STRING, False, None),
        ("current_object_version", 5, MESSAGE, True, "v1alpha1.ObjectVersion"),
    ],
    "MountResponse": [
        ("object_version", 1, MESSAGE, True, "v1alpha1.ObjectVersion"),
        ("error", 2, MESSAGE, False, "v1alpha1.Error"),
        ("files", 3, MESSAGE, True, "v1alpha1.File"),
    ],
    "ObjectVersion": [("id", 1, STRING, False, None), ("version", 2, STRING, False, None)],
    "File": [
        ("path", 1, STRING, False, None),
        ("mode", 2, INT32, False, None),
        ("contents", 3, BYTES, False, None),
    ],
    "Error": [("code", 1, STRING, False, None)],
}


def test_generated_modules_match_the_proto() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_proto.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_package_and_service() -> None:
    file_desc = provider_pb2.DESCRIPTOR
    assert file_desc.package == "v1alpha1"
    assert file_desc.syntax == "proto3" if hasattr(file_desc, "syntax") else True
    service = file_desc.services_by_name["CSIDriverProvider"]
    assert service.full_name == "v1alpha1.CSIDriverProvider"
    methods = {m.name: (m.input_type.full_name, m.output_type.full_name) for m in service.methods}
    assert methods == {
        "Version": ("v1alpha1.VersionRequest", "v1alpha1.VersionResponse"),
        "Mount": ("v1alpha1.MountRequest", "v1alpha1.MountResponse"),
    }


def test_grpc_method_paths() -> None:
    """The driver dials these exact full method names."""
    source = Path(provider_pb2_grpc.__file__).read_text()
    assert "/v1alpha1.CSIDriverProvider/Version" in source
    assert "/v1alpha1.CSIDriverProvider/Mount" in source


@pytest.mark.parametrize("message_name", sorted(EXPECTED_FIELDS))
def test_message_fields(message_name: str) -> None:
    desc = provider_pb2.DESCRIPTOR.message_types_by_name[message_name]
    actual = [
        (
            f.name,
            f.number,
            f.type,
            f.is_repeated if hasattr(f, "is_repeated") else f.label == FieldDescriptor.LABEL_REPEATED,
            f.message_type.full_name if f.message_type is not None else None,
        )
        for f in desc.fields
    ]
    assert actual == EXPECTED_FIELDS[message_name]


def test_no_unexpected_messages() -> None:
    assert set(provider_pb2.DESCRIPTOR.message_types_by_name) == set(EXPECTED_FIELDS)
