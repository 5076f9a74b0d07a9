"""The one exception the engine raises, and the limits that bound a tenant's template.

Messages follow Go's ``text/template`` shapes so that what a CR author reads matches VSO:

- parse: ``template: NAME:LINE: PROBLEM``
- exec:  ``template: NAME:LINE:COL: executing "NAME" at <NODE>: PROBLEM``

Nothing from the *data* (secret values) is put in a message: where Go would print a value
(``range can't iterate over VALUE``) we print ``<redacted>``, as VSO's own redaction does.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


class TemplateError(Exception):
    """A template failed to parse or execute; ``str()`` is shaped like Go's error."""


@dataclass(frozen=True)
class Limits:
    """Bounds on one execution. Templates are written by CR authors: every resource is capped.

    ``max_output``: bytes of rendered text, and the largest string any function may build;
    ``max_steps``: nodes evaluated plus function calls (a range iteration is a step);
    ``max_depth``: nested ``template``/``block`` calls (Go allows 100,000; recursion in a tenant's
    template has no business going deep); ``max_work``: total size (characters or elements) of
    the values functions build, which bounds memory and CPU of string/list building in loops;
    ``max_list``: the longest list ``until``/``untilStep``/``seq`` may make; ``max_source``:
    characters of one template text; ``max_nesting``: depth of nested blocks and parentheses
    (bounds the parser's recursion).
    """

    max_output: int = 1 << 20
    max_steps: int = 1_000_000
    max_depth: int = 100
    max_work: int = 32 << 20
    max_list: int = 100_000
    max_source: int = 1 << 20
    max_nesting: int = 100


DEFAULT_LIMITS = Limits()

# The limits of the execution running in this thread/context, for functions that must check a
# size before building a value (``repeat``, ``until``): building it first would already be the
# damage.
CURRENT_LIMITS: ContextVar[Limits] = ContextVar("gotemplate_limits", default=DEFAULT_LIMITS)
