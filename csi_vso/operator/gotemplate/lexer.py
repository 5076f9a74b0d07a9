"""Tokens of Go's template language, with Go's trim markers, comments and line numbers.

The whole text is tokenized up front (Go's lexer runs lazily beside the parser; the result is
the same because a lexing error ends the token stream where Go's parser would meet it).
Positions are character offsets into the source; ``line`` is 1-based as in Go's messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

LEFT = "{{"
RIGHT = "}}"
_SPACE = " \t\r\n"


class T(Enum):
    """Token kinds (Go's itemType, our names)."""

    ERROR = "error"
    EOF = "EOF"
    TEXT = "text"
    LEFT = "left delim"
    RIGHT = "right delim"
    SPACE = "space"
    COMMENT = "comment"
    BOOL = "bool"
    CHAR = "char"  # a printable character inside an action, such as ','
    CHARCONST = "char constant"
    NUMBER = "number"
    STRING = "string"
    RAWSTRING = "raw string"
    IDENT = "identifier"
    FIELD = "field"
    VARIABLE = "variable"
    DOT = "."
    NIL = "nil"
    ASSIGN = "="
    DECLARE = ":="
    PIPE = "|"
    LPAREN = "("
    RPAREN = ")"
    # keywords
    BLOCK = "block"
    BREAK = "break"
    CONTINUE = "continue"
    DEFINE = "define"
    ELSE = "else"
    END = "end"
    IF = "if"
    RANGE = "range"
    TEMPLATE = "template"
    WITH = "with"


KEYWORDS = {
    "block": T.BLOCK,
    "break": T.BREAK,
    "continue": T.CONTINUE,
    "define": T.DEFINE,
    "else": T.ELSE,
    "end": T.END,
    "if": T.IF,
    "range": T.RANGE,
    "template": T.TEMPLATE,
    "with": T.WITH,
    "nil": T.NIL,
}
_KEYWORD_KINDS = frozenset(KEYWORDS.values()) - {T.NIL}


@dataclass(frozen=True, slots=True)
class Token:
    kind: T
    val: str
    pos: int
    line: int

    def __str__(self) -> str:
        """How Go names a token in "unexpected X" messages."""
        if self.kind is T.EOF:
            return "EOF"
        if self.kind is T.ERROR:
            return self.val
        if self.kind in _KEYWORD_KINDS:
            return f"<{self.val}>"
        if len(self.val) > 10:
            return go_quote(self.val[:10]) + "..."
        return go_quote(self.val)


def go_quote(s: str) -> str:
    """Go's strconv.Quote for the characters templates see (printable Unicode kept)."""
    out = ['"']
    for ch in s:
        out.append(_quote_char(ch, '"'))
    out.append('"')
    return "".join(out)


_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def _quote_char(ch: str, quote: str) -> str:
    if ch == quote or ch == "\\":
        return "\\" + ch
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    code = ord(ch)
    if ch.isprintable() or ch == " ":
        return ch
    if code < 0x80:
        return f"\\x{code:02x}"
    if code == 0xFFFD:
        return ch
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def go_quote_rune(code: int) -> str:
    """Go's strconv.QuoteRune."""
    return "'" + _quote_char(chr(code), "'") + "'"


def _is_alnum(ch: str) -> bool:
    return ch == "_" or ch.isalpha() or ch.isdigit()


_WORD = re.compile(r"\w*")  # letters, digits, underscore (Go's isAlphaNumeric)
_QUOTED = re.compile(r'"(?:[^"\\\n]|\\[^\n])*"')
_CHARCONST = re.compile(r"'(?:[^'\\\n]|\\[^\n])*'")


def _has_left_trim(text: str, at: int) -> bool:
    return text.startswith("-", at) and len(text) > at + 1 and text[at + 1] in _SPACE


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.tokens: list[Token] = []
        self.paren_depth = 0

    def emit(self, kind: T, start: int, end: int) -> None:
        line = self.line
        val = self.text[start:end]
        self.tokens.append(Token(kind, val, start, line))
        self.line += val.count("\n")
        self.pos = end

    def error(self, message: str) -> None:
        self.tokens.append(Token(T.ERROR, message, self.pos, self.line))

    def skip(self, end: int) -> None:
        self.line += self.text.count("\n", self.pos, end)
        self.pos = end

    def run(self) -> list[Token]:
        text = self.text
        trim_next_text = False
        while True:
            start = self.pos
            found = text.find(LEFT, start)
            end = len(text) if found < 0 else found
            body_start = start
            if trim_next_text:
                while body_start < end and text[body_start] in _SPACE:
                    body_start += 1
                self.skip(body_start)
            body_end = end
            left_trim = found >= 0 and _has_left_trim(text, found + len(LEFT))
            if left_trim:
                while body_end > body_start and text[body_end - 1] in _SPACE:
                    body_end -= 1
            if body_end > body_start:
                self.emit(T.TEXT, body_start, body_end)
            self.skip(end)
            if found < 0:
                self.tokens.append(Token(T.EOF, "", len(text), self.line))
                return self.tokens
            ok, trim_next_text = self.action(left_trim)
            if not ok:
                return self.tokens

    def action(self, left_trim: bool) -> tuple[bool, bool]:
        """Lex one action from its left delimiter; returns (ok, right trim marker seen)."""
        text = self.text
        after = self.pos + len(LEFT) + (2 if left_trim else 0)
        if text.startswith("/*", after):
            return self.comment(after)
        self.emit(T.LEFT, self.pos, self.pos + len(LEFT))
        self.skip(after)
        self.paren_depth = 0
        while True:
            at_right, trim = self.at_right_delim()
            if at_right:
                if self.paren_depth:
                    self.error("unclosed left paren")
                    return False, False
                marker = 2 if trim else 0
                self.skip(self.pos + marker)
                self.emit(T.RIGHT, self.pos, self.pos + len(RIGHT))
                return True, trim
            if not self.inside_one():
                return False, False

    def at_right_delim(self) -> tuple[bool, bool]:
        text, pos = self.text, self.pos
        if pos < len(text) and text[pos] in _SPACE and text.startswith("-" + RIGHT, pos + 1):
            return True, True
        return text.startswith(RIGHT, pos), False

    def comment(self, start: int) -> tuple[bool, bool]:
        text = self.text
        close = text.find("*/", start + 2)
        if close < 0:
            self.error("unclosed comment")
            return False, False
        self.skip(close + 2)
        at_right, trim = self.at_right_delim()
        if not at_right:
            self.error("comment ends before closing delimiter")
            return False, False
        self.skip(self.pos + (2 if trim else 0) + len(RIGHT))
        return True, trim

    def inside_one(self) -> bool:
        text, pos = self.text, self.pos
        if pos >= len(text):
            self.error("unclosed action")
            return False
        ch = text[pos]
        if ch in _SPACE:
            end = pos
            while end < len(text) and text[end] in _SPACE:
                if text.startswith("-" + RIGHT, end + 1):
                    break
                end += 1
            self.emit(T.SPACE, pos, end)
            return True
        if ch == "=":
            self.emit(T.ASSIGN, pos, pos + 1)
        elif ch == ":":
            if not text.startswith(":=", pos):
                self.pos = pos + 1
                self.error("expected :=")
                return False
            self.emit(T.DECLARE, pos, pos + 2)
        elif ch == "|":
            self.emit(T.PIPE, pos, pos + 1)
        elif ch == '"':
            return self.quote(pos)
        elif ch == "`":
            close = text.find("`", pos + 1)
            if close < 0:
                self.error("unterminated raw quoted string")
                return False
            self.emit(T.RAWSTRING, pos, close + 1)
        elif ch == "$":
            return self.field_or_variable(pos, T.VARIABLE)
        elif ch == "'":
            return self.char_constant(pos)
        elif ch == "." and not (pos + 1 < len(text) and text[pos + 1].isdigit()):
            return self.field_or_variable(pos, T.FIELD)
        elif ch in "+-." or ch.isdigit():
            return self.number(pos)
        elif _is_alnum(ch):
            return self.identifier(pos)
        elif ch == "(":
            self.paren_depth += 1
            self.emit(T.LPAREN, pos, pos + 1)
        elif ch == ")":
            self.paren_depth -= 1
            if self.paren_depth < 0:
                self.pos = pos + 1
                self.error("unexpected right paren")
                return False
            self.emit(T.RPAREN, pos, pos + 1)
        elif ord(ch) < 0x80 and ch.isprintable():
            self.emit(T.CHAR, pos, pos + 1)
        else:
            self.pos = pos + 1
            self.error(f"unrecognized character in action: {go_rune_u(ord(ch))}")
            return False
        return True

    def at_terminator(self, pos: int) -> bool:
        text = self.text
        if pos >= len(text):
            return True
        ch = text[pos]
        # Go takes the first character of the right delimiter as a terminator.
        return ch in _SPACE or ch in ".,|:()" or ch == RIGHT[0]

    def scan_alnum(self, pos: int) -> int:
        match = _WORD.match(self.text, pos)
        return match.end() if match else pos

    def field_or_variable(self, pos: int, kind: T) -> bool:
        end = self.scan_alnum(pos + 1)
        if end == pos + 1 and self.at_terminator(end):
            self.emit(T.DOT if kind is T.FIELD else T.VARIABLE, pos, end)
            return True
        if not self.at_terminator(end):
            self.pos = end + 1
            self.error(f"bad character {go_rune_u(ord(self.text[end]))}")
            return False
        self.emit(kind, pos, end)
        return True

    def identifier(self, pos: int) -> bool:
        end = self.scan_alnum(pos)
        if not self.at_terminator(end):
            self.pos = end + 1
            self.error(f"bad character {go_rune_u(ord(self.text[end]))}")
            return False
        word = self.text[pos:end]
        if word in KEYWORDS:
            self.emit(KEYWORDS[word], pos, end)
        elif word in ("true", "false"):
            self.emit(T.BOOL, pos, end)
        else:
            self.emit(T.IDENT, pos, end)
        return True

    def quote(self, pos: int) -> bool:
        match = _QUOTED.match(self.text, pos)
        if match is None:
            self.error("unterminated quoted string")
            return False
        self.emit(T.STRING, pos, match.end())
        return True

    def char_constant(self, pos: int) -> bool:
        match = _CHARCONST.match(self.text, pos)
        if match is None:
            self.error("unterminated character constant")
            return False
        self.emit(T.CHARCONST, pos, match.end())
        return True

    def number(self, pos: int) -> bool:
        text = self.text
        i = pos
        if i < len(text) and text[i] in "+-":
            i += 1
        digits = "0123456789_"
        if text.startswith(("0x", "0X"), i):
            i += 2
            digits = "0123456789abcdefABCDEF_"
        elif text.startswith(("0o", "0O"), i):
            i += 2
            digits = "01234567_"
        elif text.startswith(("0b", "0B"), i):
            i += 2
            digits = "01_"
        while i < len(text) and text[i] in digits:
            i += 1
        if i < len(text) and text[i] == ".":
            i += 1
            while i < len(text) and text[i] in digits:
                i += 1
        exp = "pP" if len(digits) > 12 else "eE"
        if i < len(text) and text[i] in exp:
            i += 1
            if i < len(text) and text[i] in "+-":
                i += 1
            while i < len(text) and text[i] in "0123456789_":
                i += 1
        if i < len(text) and text[i] == "i":
            i += 1
        if i < len(text) and _is_alnum(text[i]):
            self.pos = i + 1
            self.error(f"bad number syntax: {go_quote(text[pos : i + 1])}")
            return False
        self.emit(T.NUMBER, pos, i)
        return True


def go_rune_u(code: int) -> str:
    """Go's %#U: ``U+0023 '#'``."""
    ch = chr(code)
    if ch.isprintable():
        return f"U+{code:04X} '{ch}'"
    return f"U+{code:04X}"


def tokenize(text: str) -> list[Token]:
    """All tokens of ``text``; the last one is EOF or an ERROR token."""
    return _Lexer(text).run()
