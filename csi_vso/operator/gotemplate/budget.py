"""Measuring values before a function or an action turns them into text.

Building a list of references to one big string is cheap; joining, printing or serializing it
is not. The executor asks :func:`payload` first, so the output bound holds before allocation.
"""

from __future__ import annotations

from .values import Struct

# Functions whose result grows with all the text reachable from their arguments: a list
# holding the same 1 MiB string a thousand times is small to build (references) but joins,
# prints or serializes to 1 GiB, so the text they would read is measured first.
SIZED_BY_ARGUMENTS = frozenset(
    [
        "print",
        "printf",
        "println",
        "html",
        "js",
        "urlquery",
        "join",
        "cat",
        "quote",
        "squote",
        "toJson",
        "toPrettyJson",
        "toRawJson",
        "mustToJson",
        "mustToPrettyJson",
        "mustToRawJson",
        "toString",
        "toStrings",
        "b64enc",
        "b32enc",
    ]
)


def payload(value: object, limit: int) -> int:
    """Characters of text reachable from ``value`` (each reference counted), stopping past limit."""
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str | bytes | bytearray):
            total += len(item)
        elif isinstance(item, dict):
            total += len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            total += len(item)
            stack.extend(item)
        elif isinstance(item, Struct):
            stack.extend(item.values.values())
        else:
            total += 1
        if total > limit:
            return total
    return total
