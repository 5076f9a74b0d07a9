"""How plain Python data stands for Go values inside templates.

=================  ==========================  ==========================================
Python             Go type (``%T``)            notes
=================  ==========================  ==========================================
``dict``           ``map[string]interface {}``  ``.Key`` reads a key; keys must be str
``list``/``tuple`` ``[]interface {}``
``str``            ``string``
``bool``           ``bool``
``int``            ``int``                      :class:`Int64` is Sprig's ``int64``
``float``          ``float64``
``None``           nil                          prints ``<nil>``
``bytes``          ``[]uint8``                  ``%s`` prints the text, ``{{.}}`` the numbers
=================  ==========================  ==========================================

A key missing from a map reads as :data:`MISSING` (Go's invalid ``reflect.Value``), which
prints ``<no value>`` (Go's default ``missingkey=default``, which VSO keeps) and becomes nil
when passed to a function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final


class _Missing:
    """Go's invalid reflect.Value: what a missing map key or nil data yields."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


class Int64(int):
    """An ``int64`` (Sprig's arithmetic returns int64, ``%T`` shows it)."""

    __slots__ = ()


class StrList(list[Any]):
    """A ``[]string`` (Sprig's ``splitList``, ``keys``, ``sortAlpha`` ... return one)."""

    __slots__ = ()


class IntList(list[Any]):
    """A ``[]int`` (Sprig's ``until``/``untilStep``)."""

    __slots__ = ()


class JSONNumber(str):
    """A ``json.Number``: how Vault's API client (``UseNumber``) hands VSO numeric secret values.

    It prints as the number's JSON text (``1.0`` stays ``1.0``), is a string for ``if``/``eq``/
    ``len``, is not a ``string`` for functions that want one (Go: wrong type), converts in
    Sprig's arithmetic, and encodes back to JSON as the same number. Build data with
    :func:`vault_data`.
    """

    __slots__ = ()


def vault_data(value: Any) -> Any:
    """Decoded Vault JSON with its numbers as :class:`JSONNumber`, as VSO's templates see it.

    Pass the original JSON text's numbers where available (``json.loads(text,
    parse_int=JSONNumber, parse_float=JSONNumber)``); this converts already-decoded numbers
    (an int as its digits, a float as its shortest text).
    """
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float) and not isinstance(value, JSONNumber):
        return JSONNumber(str(value) if isinstance(value, int) else repr(value))
    if isinstance(value, dict):
        return {k: vault_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [vault_data(v) for v in value]
    return value


class StrMap(dict[str, Any]):
    """A ``map[string]string`` (Sprig's ``split``): a missing key reads as ``""``."""

    __slots__ = ()


@dataclass(frozen=True)
class StructField:
    name: str
    json_name: str
    omit_empty: bool = False


class Struct:
    """A Go struct value (or pointer to one when ``go_type`` starts with ``*``).

    Fields are read with ``.Name``; a name that is not a field is Go's error ``can't evaluate
    field X in type T`` (unlike a map, where it is ``<no value>``). VSO executes templates on a
    ``*helpers.SecretInput``: :func:`secret_input` builds the same shape.
    """

    __slots__ = ("fields", "go_type", "values")

    def __init__(self, go_type: str, fields: tuple[StructField, ...], values: dict[str, Any]) -> None:
        self.go_type = go_type
        self.fields = fields
        self.values = values

    def __repr__(self) -> str:
        return f"Struct({self.go_type})"


SECRET_INPUT_FIELDS = (
    StructField("Secrets", "secrets"),
    StructField("WrapData", "wrapData", omit_empty=True),
    StructField("Metadata", "metadata"),
    StructField("Annotations", "annotations"),
    StructField("Labels", "labels"),
)


def secret_input(
    *,
    secrets: dict[str, Any],
    metadata: dict[str, Any] | None = None,
    annotations: dict[str, Any] | None = None,
    labels: dict[str, Any] | None = None,
    wrap_data: dict[str, Any] | None = None,
) -> Struct:
    """The data VSO gives a transformation template: ``.Secrets``, ``.Metadata``,
    ``.Annotations``, ``.Labels`` (and ``.WrapData``), as its ``*helpers.SecretInput``."""
    values = {
        "Secrets": secrets,
        "WrapData": wrap_data or {},
        "Metadata": metadata or {},
        "Annotations": annotations or {},
        "Labels": labels or {},
    }
    return Struct("*helpers.SecretInput", SECRET_INPUT_FIELDS, values)


def type_name(value: object) -> str:
    """The Go type name ``%T`` prints."""
    if value is None or value is MISSING:
        return "<nil>"
    if isinstance(value, Struct):
        return value.go_type
    if isinstance(value, JSONNumber):
        return "json.Number"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Int64):
        return "int64"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bytes | bytearray):
        return "[]uint8"
    if isinstance(value, StrList):
        return "[]string"
    if isinstance(value, IntList):
        return "[]int"
    if isinstance(value, list | tuple):
        return "[]interface {}"
    if isinstance(value, StrMap):
        return "map[string]string"
    if isinstance(value, dict):
        return "map[string]interface {}"
    if callable(value):
        return "func"
    return type(value).__name__


def kind(value: object) -> str:
    """Go's reflect.Kind family: invalid, bool, int, float, string, slice, map, func."""
    if value is None or value is MISSING:
        return "invalid"
    if isinstance(value, Struct):
        return "ptr" if value.go_type.startswith("*") else "struct"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple | bytes | bytearray):
        return "slice"
    if isinstance(value, dict):
        return "map"
    return "func" if callable(value) else "struct"


def truth(value: object) -> bool:
    """Go's template truth: false, 0, nil, and empty string/slice/map are false."""
    if value is None or value is MISSING:
        return False
    if isinstance(value, bool | int | float):
        return value != 0
    if isinstance(value, str | list | tuple | dict | bytes | bytearray):
        return len(value) > 0
    return True


def zero_of_elem(container: object) -> object:
    """What indexing a map with a missing key gives: the element type's zero value."""
    return "" if isinstance(container, StrMap) else None


def is_list(value: object) -> bool:
    return isinstance(value, list | tuple)


def go_bytes(text: str) -> bytes:
    """A Go string's bytes: non-UTF-8 bytes ride in Python strings as surrogate escapes."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def from_go_bytes(data: bytes) -> str:
    """The Python string standing for Go string ``string(data)``, bytes kept exactly."""
    return data.decode("utf-8", "surrogateescape")


def _key_order(key: object) -> tuple[int, object]:
    if isinstance(key, str):
        return (1, go_bytes(key))
    if isinstance(key, bool | int | float):
        return (0, key)
    return (2, repr(key))


def sorted_keys(mapping: dict[Any, Any]) -> list[Any]:
    """A map's keys in Go's order (fmt, range, json sort keys; strings by their bytes).

    Template data from Vault has string keys; other key types are ordered without failing.
    """
    return sorted(mapping, key=_key_order)
