"""Sprig's encodings, JSON, defaults, type tests, hashes, paths and ``fail``.

Error messages of ``mustFromJson``/``mustToJson`` deliberately leave out the offending input:
Go's JSON errors quote a character of it, and the input is usually a secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import posixpath
import zlib

from .funcs import ANY, BOOL, STRING, Func, FuncError, func
from .gojson import JSONError, decode, encode
from .sprig_collections import _kind_name
from .values import MISSING, from_go_bytes, go_bytes, truth, type_name

_B64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_B32 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")


def _illegal_at(data: bytes, alphabet: frozenset[int], block: int) -> int:
    """Where Go's decoder reports ``illegal base64 data at input byte N``."""
    for i, b in enumerate(data):
        if b == ord("=") or b not in alphabet:
            return i
    return len(data) - (len(data) % block)


@func(STRING)
def _b64enc(text: str) -> str:
    return base64.b64encode(go_bytes(text)).decode()


@func(STRING)
def _b64dec(text: str) -> str:
    data = go_bytes(text).replace(b"\r", b"").replace(b"\n", b"")
    try:
        return from_go_bytes(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        return f"illegal base64 data at input byte {_illegal_at(data, _B64, 4)}"


@func(STRING)
def _b32enc(text: str) -> str:
    return base64.b32encode(go_bytes(text)).decode()


@func(STRING)
def _b32dec(text: str) -> str:
    data = go_bytes(text)
    try:
        return from_go_bytes(base64.b32decode(data))
    except (binascii.Error, ValueError):
        return f"illegal base32 data at input byte {_illegal_at(data, _B32, 8)}"


def _to_json(value: object, *, escape_html: bool, indent: str | None = None) -> str:
    return encode(value, escape_html=escape_html, indent=indent)


def _must(fn_name: str, value: object, escape_html: bool, indent: str | None) -> str:
    try:
        return _to_json(value, escape_html=escape_html, indent=indent)
    except JSONError as err:
        raise FuncError(str(err)) from None


def _lenient(value: object, escape_html: bool, indent: str | None) -> str:
    try:
        return _to_json(value, escape_html=escape_html, indent=indent)
    except JSONError:
        return ""


@func(STRING)
def _from_json(text: str) -> object:
    try:
        return decode(text)
    except ValueError:
        return None


@func(STRING)
def _must_from_json(text: str) -> object:
    try:
        return decode(text)
    except ValueError:
        raise FuncError("input is not valid JSON") from None


@func(ANY, variadic=ANY)
def _default(default: object, *given: object) -> object:
    if not given or not truth(given[0]):
        return default
    return given[0]


@func(variadic=ANY)
def _coalesce(*values: object) -> object:
    for value in values:
        if truth(value):
            return value
    return None


@func(variadic=ANY)
def _all(*values: object) -> bool:
    return all(truth(v) for v in values)


@func(variadic=ANY)
def _any(*values: object) -> bool:
    return any(truth(v) for v in values)


@func(ANY, ANY, BOOL)
def _ternary(if_true: object, if_false: object, condition: bool) -> object:
    return if_true if condition else if_false


@func(STRING)
def _fail(message: str) -> str:
    raise FuncError(message)


def _type_of(value: object) -> str:
    return type_name(None if value is MISSING else value)


def _kind_of(value: object) -> str:
    if value is None or value is MISSING:
        return "invalid"
    return _kind_name(value)


def _hash(algorithm: str) -> Func:
    return Func(lambda text: hashlib.new(algorithm, go_bytes(text)).hexdigest(), (STRING,))


def _path_base(path: str) -> str:
    if path == "":
        return "."
    path = path.rstrip("/")
    return path.rsplit("/", 1)[-1] if path else "/"


def _path_dir(path: str) -> str:
    head = path[: path.rfind("/") + 1]
    return posixpath.normpath(head) if head else "."


def _path_clean(path: str) -> str:
    if path == "":
        return "."
    cleaned = posixpath.normpath(path)
    return cleaned[1:] if cleaned.startswith("//") else cleaned


def _path_ext(path: str) -> str:
    base = path[path.rfind("/") + 1 :]
    dot = base.rfind(".")
    return base[dot:] if dot >= 0 else ""


MISC_FUNCS: dict[str, Func] = {
    "b64enc": _b64enc,
    "b64dec": _b64dec,
    "b32enc": _b32enc,
    "b32dec": _b32dec,
    "toJson": Func(lambda v: _lenient(v, True, None), (ANY,)),
    "toPrettyJson": Func(lambda v: _lenient(v, True, "  "), (ANY,)),
    "toRawJson": Func(lambda v: _lenient(v, False, None), (ANY,)),
    "mustToJson": Func(lambda v: _must("mustToJson", v, True, None), (ANY,)),
    "mustToPrettyJson": Func(lambda v: _must("mustToPrettyJson", v, True, "  "), (ANY,)),
    "mustToRawJson": Func(lambda v: _must("mustToRawJson", v, False, None), (ANY,)),
    "fromJson": _from_json,
    "mustFromJson": _must_from_json,
    "default": _default,
    "empty": Func(lambda v: not truth(v), (ANY,)),
    "coalesce": _coalesce,
    "all": _all,
    "any": _any,
    "ternary": _ternary,
    "fail": _fail,
    "typeOf": Func(_type_of, (ANY,)),
    "typeIs": Func(lambda target, v: target == _type_of(v), (STRING, ANY)),
    "typeIsLike": Func(lambda target, v: _type_of(v) in (target, "*" + target), (STRING, ANY)),
    "kindOf": Func(_kind_of, (ANY,)),
    "kindIs": Func(lambda target, v: target == _kind_of(v), (STRING, ANY)),
    "sha1sum": _hash("sha1"),
    "sha256sum": _hash("sha256"),
    "sha512sum": _hash("sha512"),
    "adler32sum": Func(lambda text: str(zlib.adler32(go_bytes(text))), (STRING,)),
    "base": Func(_path_base, (STRING,)),
    "dir": Func(_path_dir, (STRING,)),
    "clean": Func(_path_clean, (STRING,)),
    "ext": Func(_path_ext, (STRING,)),
    "isAbs": Func(lambda p: p.startswith("/"), (STRING,)),
    "osBase": Func(_path_base, (STRING,)),
    "osDir": Func(_path_dir, (STRING,)),
    "osClean": Func(_path_clean, (STRING,)),
    "osExt": Func(_path_ext, (STRING,)),
    "osIsAbs": Func(lambda p: p.startswith("/"), (STRING,)),
}
