"""``csi-vso demo --pki``: a TLS server serving a certificate that the operator renews in place.

After the demo's common set-up (OpenBao, API server, operator, provider, the pod), this scene:

1. enables OpenBao's PKI engine, generates a root CA and a role (``max_ttl`` 60 s), and lets the
   operator's Vault role issue with it;
2. applies a VaultPKISecret (30 s certificates, renewed 20 s before expiry) and waits for its
   ``kubernetes.io/tls`` Secret;
3. mounts a second volume of the pod (``tls.crt``, ``tls.key``, ``ca.crt``) through the provider
   socket, in provider write mode;
4. starts :mod:`csi_vso.demo.tlsserver` on that volume, a separate process that reloads its
   certificate when ``..data`` changes;
5. connects with a client that trusts only the root CA, prints the serial the server presents,
   and keeps connecting until the serial changes: the same server pid before and after, and how
   many verified handshakes happened meanwhile (none may fail).
"""

from __future__ import annotations

import socket
import ssl
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from csi_vso.demo.kube import pod_tokens
from csi_vso.demo.pkiscenario import (
    COMMON_NAME,
    PKI_DOMAIN,
    PKI_MOUNT,
    PKI_ROLE,
    ROLE_MAX_TTL,
    TLS_SECRET,
    TLS_VOLUME,
    CertificateRotation,
    pki_manifest,
    pki_policy,
    pki_spc_parameters,
)
from csi_vso.demo.processes import free_port
from csi_vso.demo.scenario import (
    APP_NAMESPACE,
    GROUP,
    VAULT_POLICY,
    DemoError,
    mount_attributes,
    vault_policy,
    wait_for,
)
from csi_vso.provider.settings import DEFAULT_TOKEN_AUDIENCE

if TYPE_CHECKING:
    from csi_vso.demo.processes import Child
    from csi_vso.demo.runner import Demo, DemoState

POLL = 0.05


def handshake(port: int, ca_pem: str) -> tuple[int, str]:
    """One fresh TLS connection verified against ``ca_pem``: the server's pid and presented serial."""
    context = ssl.create_default_context(cadata=ca_pem)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=COMMON_NAME) as tls,
    ):
        peer = tls.getpeercert() or {}
        serial = str(peer["serialNumber"])
        line = tls.recv(200).decode()
    fields = dict(part.split("=", 1) for part in line.split())
    return int(fields["pid"]), serial


@dataclass
class CertificateScene:
    demo: Demo
    state: DemoState
    ca_pem: str = ""
    port: int = 0
    server: Child | None = None
    current: tuple[int, str] = (0, "")
    seen_at: float = field(default_factory=time.monotonic)

    def set_up(self) -> None:
        demo, api, timeout = self.demo, self.state.api, self.demo.settings.timeout
        client = self.state.bao.client()
        client.sys.enable_secrets_engine("pki", path=PKI_MOUNT, config={"max_lease_ttl": "87600h"})
        root = client.write(
            f"{PKI_MOUNT}/root/generate/internal",
            common_name="csi-vso demo root",
            ttl="87600h",
            key_type="ec",
        )
        self.ca_pem = root["data"]["certificate"]
        client.write(
            f"{PKI_MOUNT}/roles/{PKI_ROLE}",
            allowed_domains=PKI_DOMAIN,
            allow_subdomains=True,
            max_ttl=ROLE_MAX_TTL,
            key_type="ec",
        )
        client.sys.create_or_update_policy(name=VAULT_POLICY, policy=vault_policy() + pki_policy())
        demo.say(f"OpenBao: PKI engine at {PKI_MOUNT}/, a root CA, role {PKI_ROLE} (max_ttl {ROLE_MAX_TTL})")

        manifest = pki_manifest()
        api.create_custom(manifest, timeout)
        spec = manifest["spec"]
        demo.say(
            f"applied VaultPKISecret {APP_NAMESPACE}/{TLS_SECRET} "
            f"(ttl {spec['ttl']}, expiryOffset {spec['expiryOffset']})"
        )
        try:
            wait_for(
                "the operator to write the certificate",
                self._certificate_written,
                timeout,
                interval=0.1,
            )
        except DemoError as exc:
            raise DemoError(
                f"{exc}\n{api.describe_custom(GROUP, 'vaultpkisecrets', APP_NAMESPACE, TLS_SECRET)}"
            ) from None
        demo.say(f"Secret {APP_NAMESPACE}/{TLS_SECRET} (kubernetes.io/tls) written by the operator")

        pod, mount = self.state.pod, self.state.mount
        target = demo.prepare_volume(pod["uid"], TLS_VOLUME)
        # As the driver does with tokenRequests "" and csi-vso.
        tokens = pod_tokens(api, pod, ["", DEFAULT_TOKEN_AUDIENCE])
        mount.mount(mount_attributes(pod, pki_spc_parameters(), tokens), str(target), timeout)
        demo.say(f"Mount -> OK: {target} holds tls.crt, tls.key, ca.crt (writeMode provider)")

        self.port = free_port()
        self.server = demo.spawn(
            "tlsserver",
            [sys.executable, "-m", "csi_vso.demo.tlsserver", str(target), "--port", str(self.port)],
        )
        self.current = wait_for("the TLS server to answer", self._try_handshake, timeout, interval=0.1)
        self.seen_at = time.monotonic()
        pid, serial = self.current
        demo.say(f"started a TLS server on 127.0.0.1:{self.port} (pid {pid}) reading {target}")
        demo.say(f"  it presents serial {serial}, verified against the root CA for {COMMON_NAME}")

    def _certificate_written(self) -> bool | None:
        self.state.operator.check_alive()
        return True if self.state.api.secret_value(APP_NAMESPACE, TLS_SECRET, "tls.crt") else None

    def _try_handshake(self) -> tuple[int, str] | None:
        assert self.server is not None
        self.server.check_alive()
        try:
            return handshake(self.port, self.ca_pem)
        except (OSError, ValueError, KeyError):
            return None

    def rotate(self, number: int) -> CertificateRotation:
        """Connect every 50 ms until the server presents another serial; count every handshake."""
        assert self.server is not None
        before = self.current
        deadline = time.monotonic() + self.demo.settings.timeout
        handshakes = failed = 0
        while True:
            self.server.check_alive()
            self.state.operator.check_alive()
            try:
                now = handshake(self.port, self.ca_pem)
                handshakes += 1
            except (OSError, ValueError, KeyError):
                failed += 1
                now = before
            if now[1] != before[1]:
                break
            if time.monotonic() > deadline:
                raise DemoError(
                    f"timed out after {self.demo.settings.timeout:.0f}s waiting for the certificate to rotate"
                )
            time.sleep(POLL)
        waited = time.monotonic() - self.seen_at
        self.current, self.seen_at = now, time.monotonic()
        return CertificateRotation(
            number=number,
            pid_before=before[0],
            pid_after=now[0],
            serial_before=before[1],
            serial_after=now[1],
            handshakes=handshakes,
            failed=failed,
            waited=waited,
        )
