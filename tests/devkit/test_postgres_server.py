"""The PostgreSQL wrapper: TCP on 127.0.0.1, password authentication, never root."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest

from csi_vso.devkit import postgres
from csi_vso.devkit.postgres import PostgresServer


def test_superuser_logs_in_over_tcp_with_password(postgres: PostgresServer) -> None:
    with psycopg.connect(postgres.dsn()) as conn:
        row = conn.execute(
            "select current_user, rolsuper from pg_roles where rolname = current_user"
        ).fetchone()
        addr = conn.execute("select inet_server_addr()::text").fetchone()
    assert row == (postgres.superuser, True)
    assert addr is not None and addr[0].startswith("127.0.0.1")


def test_wrong_password_is_refused(postgres: PostgresServer) -> None:
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(postgres.dsn(password="not-the-password")).close()


def test_url_form_connects(postgres: PostgresServer) -> None:
    with psycopg.connect(postgres.url()) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


@pytest.mark.skipif(os.geteuid() != 0, reason="only meaningful as root")
def test_server_does_not_run_as_root(postgres: PostgresServer) -> None:
    with psycopg.connect(postgres.dsn()) as conn:
        pid_row = conn.execute("select pg_backend_pid()").fetchone()
    assert pid_row is not None
    # The backend has exited by now; the postmaster's owner is what matters.
    postmaster_pid = int((postgres.data_dir / "postmaster.pid").read_text().split()[0])
    assert os.stat(f"/proc/{postmaster_pid}").st_uid != 0


def test_binaries_behind_a_private_directory_still_start_as_the_unprivileged_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkout under a 0700 directory (mktemp -d, /root): the server user cannot reach the venv."""
    if os.geteuid() != 0:
        pytest.skip("only root runs the server as another user")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / "pginstall").symlink_to(postgres.postgres_bin_dir().parent)
    monkeypatch.setattr(postgres, "postgres_bin_dir", lambda: private / "pginstall" / "bin")
    with PostgresServer() as server, psycopg.connect(server.dsn()) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
        assert private not in server._bin.parents  # a world-readable copy was used
