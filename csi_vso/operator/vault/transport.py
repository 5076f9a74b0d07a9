"""All HTTP to Vault goes through :class:`Transport`: one hvac adapter per connection, every option
explicit, errors translated and counted in one place.

Why this shape:

- hvac reads ``VAULT_*`` environment variables when a ``Client`` is built without explicit values,
  and requests reads ``REQUESTS_CA_BUNDLE``/proxies/``.netrc`` when ``trust_env`` is on. Only the
  CLI may read the environment, so we build hvac's ``RawAdapter`` ourselves with every argument
  given and a ``requests.Session`` with ``trust_env = False``.
- The token and the Vault namespace are per request headers, not adapter state, so a logged-in
  session can change its token (re-login) without rebuilding the connection pool.
- TLS: requests has no option for a server name different from the URL's host, nor for an
  in-memory CA bundle. urllib3 has both (``server_hostname``: SNI and certificate name check;
  ``ssl_context``: trust roots loaded from PEM text), so a small ``HTTPAdapter`` passes them to
  the pool manager. Its ``cert_verify`` keeps requests from adding certifi's bundle to a
  context that should trust only the configured CA. Limit: ``tls_server_name`` applies to direct
  connections; through an HTTPS proxy urllib3 would use it for the proxy hop's target only (we
  configure no proxies, so this does not arise).
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

import hvac.adapters
import requests
from requests.adapters import HTTPAdapter

from csi_vso.operator.vault.errors import RequestContext, VaultError, VaultInvalid, translate
from csi_vso.operator.vault.metrics import record_request
from csi_vso.operator.vault.settings import ConnectionSettings

__all__ = ["Transport", "build_ssl_context"]


def build_ssl_context(connection: ConnectionSettings) -> ssl.SSLContext:
    """The TLS client context for a connection: its CA (or the system store), verification on/off."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if connection.skip_tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if connection.ca_cert_pem:
        # Only the configured CA: a fresh context without the system store.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cadata=connection.ca_cert_pem)
    return context


class _TLSAdapter(HTTPAdapter):
    """Hands our SSL context and server name to urllib3 (see the module docstring)."""

    def __init__(self, context: ssl.SSLContext, server_hostname: str | None, verify: bool) -> None:
        self._context = context
        self._server_hostname = server_hostname
        self._verify = verify
        super().__init__()

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        pool_kwargs["ssl_context"] = self._context
        if self._server_hostname:
            pool_kwargs["server_hostname"] = self._server_hostname
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        conn.cert_reqs = "CERT_REQUIRED" if self._verify else "CERT_NONE"
        conn.ca_certs = None
        conn.ca_cert_dir = None


class Transport:
    """HTTP to one Vault address with fixed headers; returns decoded JSON or raises a typed error."""

    def __init__(
        self, connection: ConnectionSettings, *, extra_headers: Mapping[str, str] | None = None
    ) -> None:
        self.address = connection.address
        session = requests.Session()
        session.trust_env = False
        session.headers.update(connection.headers)
        session.headers.update(extra_headers or {})
        verify = not connection.skip_tls_verify
        session.verify = verify
        if connection.address.startswith("https://"):
            session.mount(
                "https://", _TLSAdapter(build_ssl_context(connection), connection.tls_server_name, verify)
            )
        self._session = session
        self._adapter = hvac.adapters.RawAdapter(
            base_uri=connection.address,
            token=None,
            cert=None,
            verify=verify,
            timeout=connection.timeout,
            proxies={},
            allow_redirects=True,
            session=session,
            namespace=None,
            ignore_exceptions=False,
            strict_http=False,
            request_header=True,
        )

    def request(
        self,
        context: RequestContext,
        method: str,
        *,
        token: str | None = None,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Send one request to ``/v1/<context.path>``; ``None`` for an empty (204) answer."""
        headers: dict[str, str] = {}
        if token:
            headers["X-Vault-Token"] = token
        if context.namespace:
            headers["X-Vault-Namespace"] = context.namespace
        try:
            response = self._adapter.request(
                method,
                f"/v1/{context.path}",
                headers=headers,
                json=dict(json) if json is not None else None,
                params=dict(params) if params else None,
            )
            body = _decode(response, context)
        except VaultError as known:
            record_request(context.operation, known.outcome)
            raise
        except Exception as exc:
            translated = translate(exc, context)
            record_request(context.operation, translated.outcome)
            # `from None`: the hvac exception carries the whole response body; keep it out of tracebacks.
            raise translated from None
        record_request(context.operation, "ok")
        return body

    def close(self) -> None:
        self._session.close()


def _decode(response: requests.Response, context: RequestContext) -> dict[str, Any] | None:
    if response.status_code == 204 or not response.content:
        return None
    try:
        body = response.json()
    except ValueError:
        raise VaultInvalid(f"{context.describe()}: answer is not JSON", context=context) from None
    if not isinstance(body, dict):
        raise VaultInvalid(f"{context.describe()}: answer is not a JSON object", context=context)
    return body
