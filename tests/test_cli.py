"""The command line wires every subcommand and the shared flags."""

from __future__ import annotations

import subprocess
import sys

import pytest

from csi_vso import __version__
from csi_vso.cli import SUBCOMMANDS, build_parser, main


def test_version_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == __version__


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_every_subcommand_takes_the_common_flags(command: str) -> None:
    args = build_parser().parse_args(
        [command, "--kubeconfig", "/x", "--log-level", "debug", "--log-format", "json"]
    )
    assert (args.kubeconfig, args.log_level, args.log_format) == ("/x", "debug", "json")


def test_unknown_log_format_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["provider", "--log-format", "xml"])
    assert exc.value.code == 2
    assert "invalid choice: 'xml'" in capsys.readouterr().err


def test_console_script_entry_point_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "csi_vso", "version"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert result.stdout.strip() == __version__


LOADED_MODULES = """
import sys
from csi_vso import cli
try:
    cli.main(["provider", "--help"])
except SystemExit:
    pass
print(" ".join(sorted(sys.modules)))
"""


def test_running_one_subcommand_imports_only_its_module() -> None:
    """The provider process must not carry the operator's, demo's or devkit's dependencies."""
    result = subprocess.run(
        [sys.executable, "-c", LOADED_MODULES], capture_output=True, text=True, check=True
    )
    loaded = set(result.stdout.strip().splitlines()[-1].split())
    assert "csi_vso.provider.main" in loaded
    assert not {m for m in loaded if m.startswith(("csi_vso.operator", "csi_vso.demo", "csi_vso.devkit"))}
    assert "hvac" not in loaded
