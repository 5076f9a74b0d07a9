"""A TLS server that serves the certificate in a CSI volume and reloads it in place (demo and tests).

What an application with certificate reload does, in the smallest form that can be checked:

- The certificate and key are read from one version of the volume: ``..data`` is resolved once
  and both files are read from the directory it names, so a rotation landing between the two
  reads cannot pair a new certificate with an old key. (If that directory is removed under the
  read — the provider cleans up the old version right after a swap — the load starts again.)
- ``..data`` is watched (polled every ``--poll`` seconds); when it names another version a new
  :class:`ssl.SSLContext` is built and swapped in for *new* connections. Connections already
  open keep theirs. A load that fails (it would only if certificate and key did not match) keeps
  the previous context and is counted, never fatal.
- Each connection is answered with one line ``pid=<pid> serial=<hex serial>`` so a client can
  tell which process and which certificate served it.

Run: ``python -m csi_vso.demo.tlsserver DIR [--port 0]``; it prints one JSON line with the port
and pid when listening, then one JSON line per reload (``serial``, ``reloads``, ``failed``).
No key material is ever printed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import ssl
import sys
import threading
import types
from pathlib import Path

from cryptography import x509

DATA_LINK = "..data"


def certificate_serial(pem: bytes) -> str:
    """Serial number of the first certificate in ``pem``, upper-case hex (as ``ssl`` reports it)."""
    return format(x509.load_pem_x509_certificate(pem).serial_number, "X")


class ReloadingTLSServer:
    def __init__(
        self,
        directory: Path,
        *,
        cert: str = "tls.crt",
        key: str = "tls.key",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.directory = directory
        self.cert = cert
        self.key = key
        self.version = ""
        self.serial = ""
        self.reloads = 0
        self.failed = 0
        # The context and the serial it presents, swapped together as one tuple.
        self._current: tuple[ssl.SSLContext, str] | None = None
        self._stop = threading.Event()
        self._listener = socket.create_server((host, port))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]

    def reload_if_changed(self) -> bool:
        """Load the version ``..data`` names if it is not the one serving; True when swapped."""
        while True:
            try:
                version = os.readlink(self.directory / DATA_LINK)
            except FileNotFoundError:
                return False  # nothing mounted yet
            if version == self.version:
                return False
            folder = self.directory / version
            try:
                pem = (folder / self.cert).read_bytes()
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(folder / self.cert, folder / self.key)
            except FileNotFoundError:
                continue  # that version was cleaned up under us: look at ..data again
            except (ssl.SSLError, ValueError):
                self.failed += 1  # mismatched or unreadable pair: keep serving the previous one
                self.version = version
                return False
            self.serial = certificate_serial(pem)
            self._current = (context, self.serial)
            self.version = version
            self.reloads += 1
            return True

    def serve_forever(self, poll: float = 0.05) -> None:
        watcher = threading.Thread(target=self._watch, args=(poll,), name="watch", daemon=True)
        watcher.start()
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _watch(self, poll: float) -> None:
        while not self._stop.wait(poll):
            if self.reload_if_changed():
                _say(
                    {"event": "reload", "serial": self.serial, "reloads": self.reloads, "failed": self.failed}
                )

    def _answer(self, conn: socket.socket) -> None:
        current = self._current
        with conn:
            if current is None:
                return
            context, serial = current
            conn.settimeout(5)
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(f"pid={os.getpid()} serial={serial}\n".encode())
            except (OSError, ssl.SSLError):
                pass  # the client hung up or failed its own checks: its side counts that

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()


def _say(record: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m csi_vso.demo.tlsserver", description=__doc__)
    parser.add_argument("directory", type=Path, help="the mounted volume (holds ..data, tls.crt, tls.key)")
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (default: any free one)")
    parser.add_argument("--poll", type=float, default=0.05, help="seconds between ..data checks")
    args = parser.parse_args(argv)
    server = ReloadingTLSServer(args.directory, port=args.port)
    server.reload_if_changed()

    def on_signal(_signum: int, _frame: types.FrameType | None) -> None:
        server.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    _say({"event": "listening", "port": server.port, "pid": os.getpid(), "serial": server.serial})
    server.serve_forever(poll=args.poll)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
