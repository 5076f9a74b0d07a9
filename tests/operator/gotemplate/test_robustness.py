"""Hostile input never crashes the engine: every template either renders or raises TemplateError.

Templates are tenant input; an unexpected Python exception (IndexError, ValueError, ...) would
escape the operator's error handling and could carry data in its message. Random token soups
and random mutations of the conformance table (fixed seed, so failures reproduce) must all end
in output or a TemplateError.
"""

from __future__ import annotations

import random

from csi_vso.operator.gotemplate import Limits, TemplateError, TemplateSet

from .cases import ALL, D

PIECES = [
    "{{",
    "}}",
    "{{-",
    "-}}",
    " ",
    "\n",
    ".",
    ".S",
    ".L",
    ".M",
    ".N",
    ".Missing",
    "$",
    "$x",
    ":=",
    "=",
    "|",
    "(",
    ")",
    ",",
    '"a"',
    "`b`",
    "'c'",
    "1",
    "-2",
    "3.5",
    "0x1f",
    "1e3",
    "true",
    "nil",
    "if",
    "else",
    "end",
    "range",
    "with",
    "define",
    "template",
    "block",
    "break",
    "continue",
    '"t"',
    "index",
    "len",
    "printf",
    '"%d %s %v %x %q %5.2f %*d"',
    "print",
    "and",
    "or",
    "not",
    "eq",
    "lt",
    "slice",
    "call",
    "html",
    "js",
    "urlquery",
    "upper",
    "default",
    "toJson",
    "fromJson",
    "b64dec",
    "get",
    "set",
    "dict",
    "list",
    "append",
    "repeat",
    "until",
    "seq",
    "regexMatch",
    '"(a"',
    "join",
    "keys",
    "first",
    "add",
    "div",
    "sub",
    "round",
    "substr",
    "trunc",
    "/*",
    "*/",
    "#",
    "{",
    "}",
    "x",
]
LIMITS = Limits(max_output=10_000, max_steps=20_000, max_depth=20, max_work=100_000, max_list=1_000)


def render(text: str) -> None:
    ts = TemplateSet(LIMITS)
    try:
        ts.parse("t", text)
        for name in ts.names():
            ts.execute(name, D)
    except TemplateError:
        pass


def test_random_token_soups() -> None:
    rng = random.Random(1234)
    for _ in range(3000):
        render("".join(rng.choice(PIECES) for _ in range(rng.randint(1, 25))))


def test_mutated_conformance_templates() -> None:
    rng = random.Random(5678)
    texts = [c.template for c in ALL]
    for _ in range(3000):
        text = rng.choice(texts)
        if not text:
            continue
        i = rng.randrange(len(text))
        j = min(len(text), i + rng.randint(0, 4))
        render(text[:i] + rng.choice(PIECES) + text[j:])
