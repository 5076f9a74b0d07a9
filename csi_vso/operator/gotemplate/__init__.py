"""Go's text/template with VSO's Sprig functions, in pure Python, for secret transformations.

VSO renders ``destination.transformation`` templates with Go's ``text/template`` and an
allow-list of Sprig functions (no ``env``/``expandenv``, no file or network access). This
package is that engine, written from Go's and Sprig's documented behaviour::

    ts = TemplateSet()
    ts.parse("dsn", 'postgres://{{ .Secrets.username }}:{{ .Secrets.password }}@db/app')
    ts.execute("dsn", {"Secrets": {"username": "u", "password": "p"}})

Module map:

- ``lexer`` -> ``parser`` (+ ``unquote``) -> ``nodes``: source to trees, Go's parse errors
  (``template: NAME:LINE: ...``).
- ``executor``: walks a tree over data; Go's exec errors
  (``template: NAME:LINE:COL: executing "NAME" at <NODE>: ...``) and the :class:`Limits`
  (``errors``), with ``budget`` measuring values before they become text.
- ``values``: how Python data stands for Go values (see its table); ``gofmt``: Go's fmt
  (``%v``, ``printf`` verbs); ``gojson``: Go's encoding/json.
- ``funcs``: declaring a function with its Go signature; ``builtins``: Go's predefined
  functions; ``sprig_strings``, ``sprig_collections``, ``sprig_numbers``, ``sprig_misc``,
  ``sprig_durations``, ``sprig_urls``, ``sprig_regex`` (on ``goregexp``: Go's regexp semantics
  on RE2, linear time): the Sprig functions of VSO's allow-list (``SPRIG_NOT_IMPLEMENTED``
  names the ones left out).

Data: :func:`secret_input` builds what VSO passes (a ``*helpers.SecretInput``: ``.Secrets``,
``.Metadata``, ``.Annotations``, ``.Labels``, ``.WrapData``; a misspelt field is an error, as in
VSO). Inside it: ``dict`` (Go map, ``.Key`` reads a key, a missing key prints ``<no value>`` as with Go's
default ``missingkey``, which VSO keeps), ``list``, ``str``, ``int``, ``float``, ``bool``,
``None`` and ``bytes``. Strings that carry non-UTF-8 bytes (``b64dec`` of binary data) hold them
as surrogate escapes: ``result.encode("utf-8", "surrogateescape")`` gives Go's exact bytes.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

from . import nodes
from .builtins import BUILTINS
from .errors import DEFAULT_LIMITS, Limits, TemplateError
from .executor import execute
from .funcs import Func
from .lexer import go_quote
from .parser import parse
from .sprig_collections import COLLECTION_FUNCS
from .sprig_durations import DURATION_FUNCS
from .sprig_misc import MISC_FUNCS
from .sprig_numbers import NUMBER_FUNCS
from .sprig_regex import REGEX_FUNCS
from .sprig_strings import STRING_FUNCS
from .sprig_urls import URL_FUNCS
from .values import JSONNumber, Struct, StructField, go_bytes, secret_input, vault_data

# Sprig functions on VSO's allow-list that this engine does not provide (a template using one
# fails to parse with Go's ``function "NAME" not defined``): dates (``ago`` reads the clock),
# semantic versions, random passwords and certificates, and the case converters whose
# word-splitting rules are xstrings' own.
SPRIG_NOT_IMPLEMENTED = [
    "ago",
    "bcrypt",
    "buildCustomCert",
    "camelcase",
    "htpasswd",
    "kebabcase",
    "mustToDate",
    "semver",
    "semverCompare",
    "snakecase",
]


def _must_variants() -> dict[str, Func]:
    """Sprig's ``mustX`` list/dict functions: same as ``X`` here, which already report errors."""
    names = "append chunk compact deepCopy first has initial last merge mergeOverwrite prepend"
    names += " push rest reverse slice uniq without"
    return {"must" + name[0].upper() + name[1:]: COLLECTION_FUNCS[name] for name in names.split()}


FUNCS: dict[str, Func] = {
    **BUILTINS,
    **STRING_FUNCS,
    **COLLECTION_FUNCS,
    **NUMBER_FUNCS,
    **MISC_FUNCS,
    **REGEX_FUNCS,
    **DURATION_FUNCS,
    **URL_FUNCS,
    **_must_variants(),
}


class TemplateSet:
    """A set of named templates sharing definitions, like one Go ``*template.Template``.

    ``parse`` adds a template and every ``{{define}}``/``{{block}}`` in it; a later parse may
    redefine a name (as Go's ``Parse`` does), one text may not define a name twice.
    """

    def __init__(self, limits: Limits = DEFAULT_LIMITS, funcs: Mapping[str, Func] = FUNCS) -> None:
        self.limits = limits
        self.funcs = dict(funcs)
        self._trees: dict[str, nodes.Tree] = {}
        self._first = ""
        self._frozen = False

    def parse(self, name: str, text: str) -> None:
        """Add template ``name`` (and its definitions); raises TemplateError."""
        if self._frozen:
            raise TypeError("this TemplateSet is shared (from parsed()); build a new one to add templates")
        trees = parse(name, text, self.funcs, self.limits)
        for tree_name, tree in trees.items():
            old = self._trees.get(tree_name)
            if old is not None and _is_empty(tree) and not _is_empty(old):
                continue  # Go keeps a non-empty template over an empty redefinition
            self._trees[tree_name] = tree
        if not self._first:
            self._first = name

    def execute(self, name: str, data: object) -> str:
        """Render template ``name`` with ``data``; raises TemplateError."""
        tree = self._trees.get(name)
        if tree is None:
            raise TemplateError(
                f"template: no template {go_quote(name)} associated with template {go_quote(self._first)}"
            )
        return execute(self._trees, self.funcs, tree, data, self.limits)

    def execute_bytes(self, name: str, data: object) -> bytes:
        """Like :meth:`execute`, as the bytes Go would write (what a Secret's value should hold).

        ``b64dec`` of binary data yields bytes that are not UTF-8; :meth:`execute` carries them
        as surrogate escapes, which a plain ``.encode()`` rejects. This gives them back exactly.
        """
        return go_bytes(self.execute(name, data))

    def names(self) -> list[str]:
        """The defined template names, sorted."""
        return sorted(self._trees)


@functools.lru_cache(maxsize=1024)
def parsed(sources: tuple[tuple[str, str], ...], limits: Limits = DEFAULT_LIMITS) -> TemplateSet:
    """A shared, read-only TemplateSet of ``(name, text)`` sources parsed in order, cached.

    Parsing costs several times more than executing (bench/template_bench.py); an operator
    renders the same templates on every sync, so it should parse each distinct set once.
    Raises TemplateError like :meth:`TemplateSet.parse` (errors are not cached).
    """
    ts = TemplateSet(limits)
    for name, text in sources:
        ts.parse(name, text)
    ts._frozen = True
    return ts


def _is_empty(tree: nodes.Tree) -> bool:
    from .parser import is_empty

    return is_empty(tree.root)


__all__ = [
    "FUNCS",
    "SPRIG_NOT_IMPLEMENTED",
    "JSONNumber",
    "Limits",
    "Struct",
    "StructField",
    "TemplateError",
    "TemplateSet",
    "parsed",
    "secret_input",
    "vault_data",
]
