"""Tokens -> trees, following the grammar and the error messages of Go's text/template/parse.

One call parses one source text into its top-level tree plus one tree per ``{{define}}`` and
``{{block}}`` inside it. Variables are checked at parse time (``undefined variable "$x"``), and
so are function names (``function "foo" not defined``), as in Go.
"""

from __future__ import annotations

from collections.abc import Collection

from . import nodes as n
from .errors import Limits, TemplateError
from .lexer import T, Token, go_quote, tokenize
from .unquote import unquote, unquote_char

_OPERAND_START = frozenset(
    {
        T.BOOL,
        T.CHARCONST,
        T.DOT,
        T.FIELD,
        T.IDENT,
        T.NUMBER,
        T.NIL,
        T.RAWSTRING,
        T.STRING,
        T.VARIABLE,
        T.LPAREN,
    }
)
_MAX_PIPELINE_CMDS = 1000


class _Parser:
    def __init__(self, name: str, source: str, funcs: Collection[str], limits: Limits) -> None:
        self.name = name
        self.source = source
        self.tokens = tokenize(source)
        self.i = 0
        self.funcs = funcs
        self.limits = limits
        self.trees: dict[str, n.Tree] = {}
        self.vars: list[str] = ["$"]
        self.range_depth = 0
        self.action_line = 0
        self.last_line = 1
        self.depth = 0

    # --- token stream -------------------------------------------------------------------
    def next(self) -> Token:
        tok = self.tokens[min(self.i, len(self.tokens) - 1)]
        self.i += 1
        self.last_line = tok.line
        return tok

    def backup(self) -> None:
        self.i -= 1

    def peek(self) -> Token:
        tok = self.next()
        self.backup()
        return tok

    def next_non_space(self) -> Token:
        while True:
            tok = self.next()
            if tok.kind is not T.SPACE:
                return tok

    def peek_non_space(self) -> Token:
        tok = self.next_non_space()
        self.backup()
        return tok

    def errorf(self, message: str) -> TemplateError:
        return TemplateError(f"template: {self.name}:{self.last_line}: {message}")

    def expect(self, kind: T, context: str) -> Token:
        tok = self.next_non_space()
        if tok.kind is not kind:
            raise self.unexpected(tok, context)
        return tok

    def unexpected(self, tok: Token, context: str) -> TemplateError:
        if tok.kind is T.ERROR:
            extra = ""
            if self.action_line and self.action_line != tok.line:
                extra = f" in action started at {self.name}:{self.action_line}"
                if tok.val.endswith(" action"):
                    extra = extra[len(" in action") :]
            return self.errorf(f"{tok.val}{extra}")
        return self.errorf(f"unexpected {tok} in {context}")

    # --- structure ----------------------------------------------------------------------
    def parse(self) -> dict[str, n.Tree]:
        root = n.ListNode(self.peek().pos)
        while self.peek().kind is not T.EOF:
            if self.peek().kind is T.LEFT:
                mark = self.i
                self.next()
                if self.next_non_space().kind is T.DEFINE:
                    self.definition()
                    continue
                self.i = mark
            node = self.text_or_action()
            if isinstance(node, n.EndNode | n.ElseNode):
                raise self.errorf(f"unexpected {node}")
            root.nodes.append(node)
        self.add(n.Tree(self.name, self.name, self.source, root))
        return self.trees

    def add(self, tree: n.Tree) -> None:
        old = self.trees.get(tree.name)
        if old is None or is_empty(old.root):
            self.trees[tree.name] = tree
        elif not is_empty(tree.root):
            raise self.errorf(f"template: multiple definition of template {go_quote(tree.name)}")

    def sub_tree(self, name: str, context: str) -> None:
        """Parse the body of a define/block into its own tree (fresh variables, as in Go)."""
        saved_vars, saved_range = self.vars, self.range_depth
        self.vars, self.range_depth = ["$"], 0
        body, end = self.item_list()
        if not isinstance(end, n.EndNode):
            raise self.errorf(f"unexpected {end} in {context}")
        self.add(n.Tree(name, self.name, self.source, body))
        self.vars, self.range_depth = saved_vars, saved_range

    def definition(self) -> None:
        context = "define clause"
        tok = self.next_non_space()
        if tok.kind not in (T.STRING, T.RAWSTRING):
            raise self.unexpected(tok, context)
        name = self.unquote(tok)
        self.expect(T.RIGHT, context)
        self.sub_tree(name, context)

    def item_list(self) -> tuple[n.ListNode, n.Node]:
        body = n.ListNode(self.peek_non_space().pos)
        while self.peek_non_space().kind is not T.EOF:
            node = self.text_or_action()
            if isinstance(node, n.EndNode | n.ElseNode):
                return body, node
            body.nodes.append(node)
        raise self.errorf("unexpected EOF")

    def text_or_action(self) -> n.Node:
        tok = self.next_non_space()
        if tok.kind is T.TEXT:
            return n.TextNode(tok.pos, tok.val)
        if tok.kind is T.LEFT:
            self.action_line = tok.line
            try:
                return self.action()
            finally:
                self.action_line = 0
        raise self.unexpected(tok, "input")

    def action(self) -> n.Node:
        tok = self.next_non_space()
        kind = tok.kind
        if kind is T.BLOCK:
            return self.block_control()
        if kind in (T.BREAK, T.CONTINUE):
            return self.loop_control(tok)
        if kind is T.ELSE:
            return self.else_control()
        if kind is T.END:
            return n.EndNode(self.expect(T.RIGHT, "end").pos)
        if kind in (T.IF, T.RANGE, T.WITH):
            return self.control(tok.val)
        if kind is T.TEMPLATE:
            return self.template_control()
        self.backup()
        tok = self.peek()
        return n.ActionNode(tok.pos, tok.line, self.pipeline("command", T.RIGHT))

    def loop_control(self, keyword: Token) -> n.Node:
        label = "{{" + keyword.val + "}}"
        tok = self.next_non_space()
        if tok.kind is not T.RIGHT:
            raise self.unexpected(tok, label)
        if self.range_depth == 0:
            raise self.errorf(label + " outside {{range}}")
        if keyword.kind is T.BREAK:
            return n.BreakNode(keyword.pos, keyword.line)
        return n.ContinueNode(keyword.pos, keyword.line)

    def else_control(self) -> n.Node:
        peek = self.peek_non_space()
        if peek.kind in (T.IF, T.WITH):
            return n.ElseNode(peek.pos, peek.line)
        tok = self.expect(T.RIGHT, "else")
        return n.ElseNode(tok.pos, tok.line)

    def control(self, context: str) -> n.Node:
        self.depth += 1
        if self.depth > self.limits.max_nesting:
            raise self.errorf(f"nesting deeper than {self.limits.max_nesting} levels")
        saved = len(self.vars)
        pipe = self.pipeline(context, T.RIGHT)
        if context == "range":
            self.range_depth += 1
        body, nxt = self.item_list()
        if context == "range":
            self.range_depth -= 1
        else_body: n.ListNode | None = None
        if isinstance(nxt, n.ElseNode):
            follow = self.peek().kind
            if (context, follow) in (("if", T.IF), ("with", T.WITH)):
                self.next()
                else_body = n.ListNode(nxt.pos, [self.control(context)])
            else:
                else_body, nxt = self.item_list()
                if not isinstance(nxt, n.EndNode):
                    raise self.errorf(f"expected end; found {nxt}")
        del self.vars[saved:]
        self.depth -= 1
        cls = {"if": n.IfNode, "range": n.RangeNode, "with": n.WithNode}[context]
        return cls(pipe.pos, pipe.line, pipe, body, else_body, context)

    def block_control(self) -> n.Node:
        context = "block clause"
        tok = self.next_non_space()
        name = self.template_name(tok, context)
        pipe = self.pipeline(context, T.RIGHT)
        self.sub_tree(name, context)
        return n.TemplateNode(tok.pos, tok.line, name, pipe)

    def template_control(self) -> n.Node:
        context = "template clause"
        tok = self.next_non_space()
        name = self.template_name(tok, context)
        pipe = None
        if self.next_non_space().kind is not T.RIGHT:
            self.backup()
            pipe = self.pipeline(context, T.RIGHT)
        return n.TemplateNode(tok.pos, tok.line, name, pipe)

    def template_name(self, tok: Token, context: str) -> str:
        if tok.kind not in (T.STRING, T.RAWSTRING):
            raise self.unexpected(tok, context)
        return self.unquote(tok)

    # --- pipelines ----------------------------------------------------------------------
    def pipeline(self, context: str, end: T) -> n.PipeNode:
        tok = self.peek_non_space()
        pipe = n.PipeNode(tok.pos, tok.line)
        self.declarations(pipe, context)
        while True:
            tok = self.next_non_space()
            if tok.kind is end:
                self.check_pipeline(pipe, context)
                return pipe
            if tok.kind in _OPERAND_START:
                self.backup()
                pipe.cmds.append(self.command())
                if len(pipe.cmds) > _MAX_PIPELINE_CMDS:
                    raise self.errorf("pipeline too long")
            else:
                raise self.unexpected(tok, context)

    def declarations(self, pipe: n.PipeNode, context: str) -> None:
        while True:
            v = self.peek_non_space()
            if v.kind is not T.VARIABLE:
                return
            self.next_non_space()
            mark = self.i - 1
            nxt = self.peek_non_space()
            if nxt.kind in (T.ASSIGN, T.DECLARE):
                pipe.is_assign = nxt.kind is T.ASSIGN
                self.next_non_space()
                pipe.decl.append(n.VariableNode(v.pos, [v.val]))
                self.vars.append(v.val)
                return
            if nxt.kind is T.CHAR and nxt.val == ",":
                self.next_non_space()
                pipe.decl.append(n.VariableNode(v.pos, [v.val]))
                self.vars.append(v.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().kind in (T.VARIABLE, T.RIGHT, T.RPAREN):
                        continue
                    raise self.errorf("range can only initialize variables")
                raise self.errorf(f"too many declarations in {context}")
            self.i = mark
            return

    def check_pipeline(self, pipe: n.PipeNode, context: str) -> None:
        if not pipe.cmds:
            raise self.errorf(f"missing value for {context}")
        for i, cmd in enumerate(pipe.cmds[1:]):
            if isinstance(cmd.args[0], n.BoolNode | n.DotNode | n.NilNode | n.NumberNode | n.StringNode):
                raise self.errorf(f"non executable command in pipeline stage {i + 2}")

    def command(self) -> n.CommandNode:
        cmd = n.CommandNode(self.peek_non_space().pos)
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            tok = self.next()
            if tok.kind is T.SPACE:
                continue
            if tok.kind in (T.RIGHT, T.RPAREN):
                self.backup()
            elif tok.kind is not T.PIPE:
                raise self.unexpected(tok, "operand")
            break
        if not cmd.args:
            raise self.errorf("empty command")
        return cmd

    def operand(self) -> n.Node | None:
        node = self.term()
        if node is None or self.peek().kind is not T.FIELD:
            return node
        chain = n.ChainNode(self.peek().pos, node, [])
        while self.peek().kind is T.FIELD:
            chain.fields.append(self.next().val[1:])
        if isinstance(node, n.FieldNode):
            return n.FieldNode(chain.pos, node.ident + chain.fields)
        if isinstance(node, n.VariableNode):
            return n.VariableNode(chain.pos, node.ident + chain.fields)
        if isinstance(node, n.BoolNode | n.StringNode | n.NumberNode | n.NilNode | n.DotNode):
            raise self.errorf(f"unexpected . after term {go_quote(str(node))}")
        return chain

    def term(self) -> n.Node | None:
        tok = self.next_non_space()
        kind = tok.kind
        if kind is T.IDENT:
            if tok.val not in self.funcs:
                raise self.errorf(f"function {go_quote(tok.val)} not defined")
            return n.IdentifierNode(tok.pos, tok.val)
        if kind is T.DOT:
            return n.DotNode(tok.pos)
        if kind is T.NIL:
            return n.NilNode(tok.pos)
        if kind is T.VARIABLE:
            return self.use_var(tok)
        if kind is T.FIELD:
            return n.FieldNode(tok.pos, [tok.val[1:]])
        if kind is T.BOOL:
            return n.BoolNode(tok.pos, tok.val == "true")
        if kind in (T.NUMBER, T.CHARCONST):
            return self.number(tok)
        if kind is T.LPAREN:
            self.depth += 1
            if self.depth > self.limits.max_nesting:
                raise self.errorf("max expression depth exceeded")
            pipe = self.pipeline("parenthesized pipeline", T.RPAREN)
            self.depth -= 1
            return pipe
        if kind in (T.STRING, T.RAWSTRING):
            return n.StringNode(tok.pos, tok.val, self.unquote(tok))
        self.backup()
        return None

    def use_var(self, tok: Token) -> n.Node:
        if tok.val not in self.vars:
            raise self.errorf(f"undefined variable {go_quote(tok.val)}")
        return n.VariableNode(tok.pos, [tok.val])

    def unquote(self, tok: Token) -> str:
        try:
            return unquote(tok.val)
        except ValueError as err:
            raise self.errorf(str(err)) from None

    def number(self, tok: Token) -> n.NumberNode:
        text = tok.val
        if tok.kind is T.CHARCONST:
            try:
                code = unquote_char(text)
            except ValueError as err:
                raise self.errorf(str(err)) from None
            return n.NumberNode(tok.pos, text, code, float(code), is_char=True)
        int_value = parse_go_int(text)
        float_value: float | None = None
        if int_value is not None:
            float_value = float(int_value)
        else:
            try:
                if any(c in text for c in "xXpPi") or text.startswith(("+_", "-_", "_")):
                    raise ValueError(text)
                float_value = float(text)
            except ValueError:
                raise self.errorf(f"illegal number syntax: {go_quote(text)}") from None
            if float_value.is_integer() and abs(float_value) < 2**63:
                int_value = int(float_value)
        return n.NumberNode(tok.pos, text, int_value, float_value)


def parse_go_int(text: str) -> int | None:
    """Go's strconv.ParseInt(text, 0, 64): prefixes 0x/0o/0b, a bare leading 0 is octal."""
    sign = 1
    body = text
    if body[:1] in ("+", "-"):
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    if not body:
        return None
    try:
        if len(body) > 1 and body[0] == "0" and body[1] in "0123456789_":
            value = int(body[1:].lstrip("_") if body[1] == "_" else body[1:], 8)
        else:
            value = int(body, 0)
    except ValueError:
        return None
    value *= sign
    if not -(2**63) <= value < 2**64:
        return None
    return value


def is_empty(node: n.Node) -> bool:
    """Go's IsEmptyTree: nothing but whitespace text and comments."""
    if isinstance(node, n.ListNode):
        return all(is_empty(child) for child in node.nodes)
    if isinstance(node, n.TextNode):
        return not node.text.strip(" \t\r\n\v\f")
    return isinstance(node, n.CommentNode)


def parse(name: str, source: str, funcs: Collection[str], limits: Limits) -> dict[str, n.Tree]:
    """Every tree defined by ``source``: ``name`` itself and each define/block inside it."""
    if len(source) > limits.max_source:
        raise TemplateError(f"template: {name}: source longer than {limits.max_source} characters")
    return _Parser(name, source, funcs, limits).parse()
