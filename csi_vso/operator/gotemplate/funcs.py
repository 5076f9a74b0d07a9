"""How a template function is declared: its Go parameter types decide arity and conversions.

Go checks a call against the function's signature: the argument count (``wrong number of args
for NAME: want 2 got 1``), and each argument's type (``wrong type for value; expected string;
got int``). Declaring the same signature here gives the same errors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# Go parameter types, spelled as Go prints them in error messages.
ANY = "interface {}"
VALUE = "reflect.Value"  # Go's builtins take reflect.Value: a missing value reaches them as is
STRING = "string"
INT = "int"
FLOAT = "float64"
BOOL = "bool"
MAP = "map[string]interface {}"


class FuncError(Exception):
    """A function failed; the engine reports ``error calling NAME: <message>``.

    The message must not contain secret data.
    """


@dataclass(frozen=True, slots=True)
class Func:
    fn: Callable[..., object]
    params: tuple[str, ...] = ()
    variadic: str | None = None


def func(*params: str, variadic: str | None = None) -> Callable[[Callable[..., object]], Func]:
    """Decorator: declare a Python function with its Go signature."""

    def wrap(fn: Callable[..., object]) -> Func:
        return Func(fn, params, variadic)

    return wrap
