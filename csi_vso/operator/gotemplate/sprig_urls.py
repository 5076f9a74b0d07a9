"""Sprig's ``urlParse`` and ``urlJoin``: Go's net/url parsing and printing for the usual URLs.

``urlParse`` gives Sprig's dict (``scheme host hostname path query opaque fragment userinfo``)
with Go's choices: the path and fragment unescaped, the query raw, the host with its port,
``userinfo`` re-escaped. ``urlJoin`` prints a dict back with Go's ``URL.String`` escaping.
A URL Go rejects is an error, whose message leaves the URL out (it often carries a password).
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from .funcs import MAP, STRING, Func, FuncError

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def _escape(text: str, keep: str) -> str:
    """Go's url.escape: unreserved characters and ``keep`` stay, everything else is %XX."""
    out = []
    for byte in text.encode("utf-8", "surrogateescape"):
        ch = chr(byte)
        out.append(ch if byte < 0x80 and (ch in _UNRESERVED or ch in keep) else f"%{byte:02X}")
    return "".join(out)


_PATH_KEEP = "$&+,/:;=@"
_FRAGMENT_KEEP = "$&+,/:;=?@!()*"
_USER_KEEP = "$&+,;="
_HOST_KEEP = "!$&'()*+,;=:[]<>\""


def _unescape(text: str) -> str:
    if _BAD_ESCAPE.search(text):
        raise FuncError("unable to parse url: invalid URL escape")
    return urllib.parse.unquote(text, errors="surrogateescape")


def _split_userinfo(authority: str) -> tuple[str | None, str]:
    userinfo, at, host = authority.rpartition("@")
    return (userinfo, host) if at else (None, authority)


def _userinfo_string(userinfo: str) -> str:
    username, colon, password = userinfo.partition(":")
    text = _escape(_unescape(username), _USER_KEEP)
    if colon:
        text += ":" + _escape(_unescape(password), _USER_KEEP)
    return text


def _hostname(host: str) -> str:
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end > 0 else host[1:]
    return host.rsplit(":", 1)[0] if ":" in host else host


def _url_parse(url: str) -> dict[str, Any]:
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise FuncError("unable to parse url: invalid control character in URL")
    rest, _, fragment = url.partition("#")
    scheme = ""
    match = _SCHEME.match(rest)
    if match and rest[match.end() : match.end() + 1] == ":":
        scheme, rest = match.group(0).lower(), rest[match.end() + 1 :]
    elif rest.startswith(":"):
        raise FuncError("unable to parse url: missing protocol scheme")
    rest, question, query = rest.partition("?")
    opaque = ""
    authority: str | None = None
    if scheme and not rest.startswith("/"):
        opaque, path = rest, ""
    elif rest.startswith("//"):
        authority, slash, path_rest = rest[2:].partition("/")
        path = slash + path_rest
    else:
        path = rest
    userinfo, host = _split_userinfo(authority) if authority is not None else (None, "")
    if host.startswith("[") and "]" not in host:
        raise FuncError("unable to parse url: missing ']' in host")
    port = host.rsplit("]", 1)[-1].partition(":")[2] if ":" in host.rsplit("]", 1)[-1] else ""
    if port and not port.isdigit():
        raise FuncError("unable to parse url: invalid port after host")
    return {
        "scheme": scheme,
        "host": _unescape(host) if "%" in host and not host.startswith("[") else host,
        "hostname": _hostname(host),
        "path": _unescape(path),
        "query": query if question else "",
        "opaque": opaque,
        "fragment": _unescape(fragment),
        "userinfo": _userinfo_string(userinfo) if userinfo is not None else "",
    }


def _get(d: dict[str, Any] | None, key: str) -> str:
    value = (d or {}).get(key, "")
    return value if isinstance(value, str) else ""


def _url_join(d: dict[str, Any] | None) -> str:
    """Go's URL.String of Sprig's url.URL built from the dict."""
    scheme, host, path = _get(d, "scheme"), _get(d, "host"), _get(d, "path")
    query, opaque, fragment = _get(d, "query"), _get(d, "opaque"), _get(d, "fragment")
    userinfo = _get(d, "userinfo")
    user = _userinfo_string(userinfo) if userinfo else None
    out = []
    if scheme:
        out.append(scheme + ":")
    if opaque:
        out.append(opaque)
    else:
        if scheme or host or user is not None:
            if host or path or user is not None:
                out.append("//")
            if user is not None:
                out.append(user + "@")
            if host:
                out.append(_escape(host, _HOST_KEEP))
        escaped_path = _escape(path, _PATH_KEEP)
        if escaped_path and not escaped_path.startswith("/") and host:
            out.append("/")
        if not out and ":" in escaped_path.split("/", 1)[0]:
            out.append("./")
        out.append(escaped_path)
    if query:
        out.append("?" + query)
    if fragment:
        out.append("#" + _escape(fragment, _FRAGMENT_KEEP))
    return "".join(out)


URL_FUNCS: dict[str, Func] = {
    "urlParse": Func(_url_parse, (STRING,)),
    "urlJoin": Func(_url_join, (MAP,)),
}
