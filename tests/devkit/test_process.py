"""The shared child-server lifecycle: a server that dies or never answers is a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from csi_vso.devkit.openbao import OpenBaoDevServer, OpenBaoError


def test_a_server_that_exits_while_starting_names_its_status_and_log() -> None:
    server = OpenBaoDevServer(binary="/bin/false")
    with pytest.raises(OpenBaoError, match=r"bao server exited with status 1 while starting; see .*bao\.log"):
        server.start()
    assert not server.running
    server.close()


def test_a_server_that_never_answers_times_out_and_is_stopped(tmp_path: Path) -> None:
    silent = tmp_path / "silent-bao"
    silent.write_text("#!/bin/sh\nexec sleep 60\n")
    silent.chmod(0o755)
    server = OpenBaoDevServer(binary=str(silent), start_timeout=0.5)
    with pytest.raises(OpenBaoError, match=r"bao server did not become ready within 0\.5s"):
        server.start()
    assert not server.running  # the stray child was stopped, not left behind
    server.close()
