"""``--allowed-vault-addresses``: where a VaultConnection may send logins and requests.

Pure. A tenant who may create a VaultConnection chooses the address the operator logs in to, and
a kubernetes login hands that server a fresh service-account token (issue 10, finding 3). A
platform team pins the Vault servers with a list of patterns; an address matching none is
refused before any connection is made. An empty list (the default) allows every address, as VSO
does.

Two spellings, told apart by ``://``:

- **URL prefix** ``https://vault.example.com:8200`` (or ``.../v1/``): the address must equal it or
  continue it at a path boundary, so ``https://vault.example.com`` does not admit
  ``https://vault.example.com.evil.net`` nor another port of the same host. Scheme and host are
  compared case-insensitively.
- **Host pattern** ``vault.example.com``, ``vault.example.com:8200`` or ``*.vault.svc``: the
  address's host (any scheme) must equal it, or for ``*.`` end with the rest after one or more
  labels; with a port, the address's port (its scheme's default when absent) must equal it.

Addresses are split with :func:`urllib.parse.urlsplit`, so user info (``https://x@evil.net``)
cannot pass for a host.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]{1,5})?$|^\[[0-9a-f:.]+\](:[0-9]{1,5})?$")


@dataclass(frozen=True)
class AddressPattern:
    """One entry of ``--allowed-vault-addresses``, parsed."""

    text: str
    prefix: str | None = None  # URL prefix, normalised (lower-case scheme and host, no trailing /)
    host: str | None = None  # host pattern without port; "*.x" for a suffix
    port: int | None = None

    def matches(self, address: str) -> bool:
        parts = _split(address)
        if parts is None:
            return False
        if self.prefix is not None:
            normal = _normalise(parts)
            return normal == self.prefix or normal.startswith(self.prefix + "/")
        host = (parts.hostname or "").lower()
        assert self.host is not None
        if self.host.startswith("*."):
            suffix = self.host[1:]  # ".vault.svc"
            if not (host.endswith(suffix) and len(host) > len(suffix)):
                return False
        elif host != self.host:
            return False
        return self.port is None or _port(parts) == self.port


def _split(address: str) -> SplitResult | None:
    try:
        parts = urlsplit(address.strip())
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return None
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return parts


def _port(parts: SplitResult) -> int:
    return parts.port or _DEFAULT_PORTS[parts.scheme.lower()]


def _normalise(parts: SplitResult) -> str:
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return f"{parts.scheme.lower()}://{netloc}{parts.path}".rstrip("/")


def parse_pattern(text: str) -> AddressPattern:
    """One pattern; ValueError saying what is wrong (the CLI reports it at start)."""
    value = text.strip()
    if "://" in value:
        parts = _split(value)
        if parts is None or parts.username is not None or parts.query or parts.fragment:
            raise ValueError(f"{text!r} is not an http:// or https:// URL prefix")
        return AddressPattern(text=value, prefix=_normalise(parts))
    lowered = value.lower()
    if not _HOST.match(lowered):
        raise ValueError(f"{text!r} is not a host, host:port or *.domain pattern")
    if lowered.startswith("["):  # [IPv6] or [IPv6]:port
        host, _, rest = lowered[1:].partition("]")
        port_text = rest[1:]
    else:
        host, _, port_text = lowered.partition(":")
    port = int(port_text) if port_text else None
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"{text!r} has a port outside 1-65535")
    return AddressPattern(text=value, host=host, port=port)


def parse_patterns(texts: Iterable[str]) -> tuple[AddressPattern, ...]:
    """Every pattern of the flag (comma-separated entries allowed); ValueError naming each bad one."""
    entries = [entry for text in texts for entry in text.split(",") if entry.strip()]
    problems: list[str] = []
    patterns: list[AddressPattern] = []
    for entry in entries:
        try:
            patterns.append(parse_pattern(entry))
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise ValueError("; ".join(problems))
    return tuple(patterns)


def address_allowed(address: str, patterns: tuple[AddressPattern, ...]) -> bool:
    """True when ``patterns`` is empty (any address) or one of them matches ``address``."""
    return not patterns or any(pattern.matches(address) for pattern in patterns)


def without_userinfo(address: str) -> str:
    """``address`` fit for a message: user info (``user:password@``) is dropped."""
    try:
        parts = urlsplit(address)
    except ValueError:
        return "<unparsable address>"
    if "@" not in parts.netloc:
        return address
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
