"""Runs a parsed tree over plain Python data, as Go's text/template/exec.go does.

Every step is counted and every output byte and every value a function builds is measured
against :class:`~.errors.Limits`, because the template is tenant input: a runaway loop,
recursion or string doubling ends with a TemplateError, not an operator out of memory.
"""

from __future__ import annotations

from collections.abc import Mapping

from . import nodes as n
from .budget import SIZED_BY_ARGUMENTS, payload
from .errors import CURRENT_LIMITS, Limits, TemplateError
from .funcs import ANY, BOOL, FLOAT, INT, MAP, STRING, VALUE, Func, FuncError
from .gofmt import go_sprint_value
from .lexer import go_quote
from .values import (
    MISSING,
    Int64,
    IntList,
    JSONNumber,
    StrList,
    StrMap,
    Struct,
    go_bytes,
    sorted_keys,
    truth,
    type_name,
)


class _NoFinal:
    """No value piped in (Go's missingVal), distinct from a missing map key."""


NO_FINAL = _NoFinal()
_MAX_CONTEXT = 200
_TAKES_STRING_LITERAL = frozenset({STRING, ANY, VALUE, None})


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class State:
    """One execution: current tree, variables, output and the budget spent so far."""

    def __init__(
        self, trees: Mapping[str, n.Tree], funcs: Mapping[str, Func], tree: n.Tree, limits: Limits
    ) -> None:
        self.trees = trees
        self.funcs = funcs
        self.tree = tree
        self.limits = limits
        # (name, value, boxed): boxed values came out of a []interface{} or map[string]interface{}
        # unconverted (range elements), so Go names their type "interface {}" in errors.
        self.vars: list[tuple[str, object, bool]] = []
        self.node: n.Node | None = None
        self.out: list[str] = []
        self.out_size = 0
        self.steps = 0
        self.work = 0
        self.depth = 0
        self.dot_boxed = False

    # --- errors and budget ----------------------------------------------------------------
    def at(self, node: n.Node) -> None:
        self.node = node

    def errorf(self, message: str) -> TemplateError:
        name = self.tree.name
        if self.node is None:
            return TemplateError(f"template: {name}: {message}")
        location = self.tree.location(self.node)
        context = str(self.node)
        if len(context) > _MAX_CONTEXT:  # only our own limits can name a long text node
            context = context[:_MAX_CONTEXT] + "..."
        return TemplateError(f"template: {location}: executing {go_quote(name)} at <{context}>: {message}")

    def step(self) -> None:
        self.steps += 1
        if self.steps > self.limits.max_steps:
            raise self.errorf(f"execution exceeded the limit of {self.limits.max_steps} steps")

    def spend(self, value: object) -> None:
        """Charge what a function built (characters or elements) to the work budget."""
        if isinstance(value, str | bytes | bytearray | list | tuple | dict):
            size = len(value)
            if isinstance(value, str | bytes | bytearray) and size > self.limits.max_output:
                raise self.errorf(f"a value grew beyond the output limit of {self.limits.max_output} bytes")
            self.work += size
            if self.work > self.limits.max_work:
                raise self.errorf(f"execution built more than the limit of {self.limits.max_work} bytes")

    def write(self, text: str) -> None:
        self.out_size += len(text) if text.isascii() else len(go_bytes(text))
        if self.out_size > self.limits.max_output:
            raise self.errorf(f"output exceeds the limit of {self.limits.max_output} bytes")
        self.out.append(text)

    # --- variables --------------------------------------------------------------------------
    def push(self, name: str, value: object) -> None:
        self.vars.append((name, value, False))

    def mark(self) -> int:
        return len(self.vars)

    def pop(self, mark: int) -> None:
        del self.vars[mark:]

    def set_var(self, name: str, value: object, boxed: bool = False) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, value, boxed)
                return
        raise self.errorf(f"undefined variable: {name}")

    def set_top_var(self, n_from_top: int, value: object, boxed: bool = False) -> None:
        i = len(self.vars) - n_from_top
        self.vars[i] = (self.vars[i][0], value, boxed)

    def var_entry(self, name: str) -> tuple[str, object, bool]:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                return self.vars[i]
        raise self.errorf(f"undefined variable: {name}")

    # --- walking ------------------------------------------------------------------------------
    def walk(self, dot: object, node: n.Node) -> None:
        self.step()
        self.node = node
        if isinstance(node, n.ActionNode):
            value = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.print_value(node, value)
        elif isinstance(node, n.TextNode):
            self.write(node.text)
        elif isinstance(node, n.ListNode):
            for child in node.nodes:
                self.walk(dot, child)
        elif isinstance(node, n.IfNode | n.WithNode):
            self.walk_if_or_with(dot, node)
        elif isinstance(node, n.RangeNode):
            self.walk_range(dot, node)
        elif isinstance(node, n.TemplateNode):
            self.walk_template(dot, node)
        elif isinstance(node, n.BreakNode):
            raise _Break
        elif isinstance(node, n.ContinueNode):
            raise _Continue
        elif isinstance(node, n.CommentNode):
            pass
        else:
            raise self.errorf(f"unknown node: {node}")

    def print_value(self, node: n.Node, value: object) -> None:
        self.at(node)
        room = self.limits.max_output - self.out_size
        if not isinstance(value, str) and payload(value, room) > room:  # measure before formatting
            raise self.errorf(f"output exceeds the limit of {self.limits.max_output} bytes")
        self.write("<no value>" if value is MISSING else go_sprint_value(value))

    def walk_if_or_with(self, dot: object, node: n.IfNode | n.WithNode) -> None:
        mark = self.mark()
        try:
            value = self.eval_pipeline(dot, node.pipe)
            if truth(value):
                if isinstance(node, n.WithNode):
                    boxed, self.dot_boxed = self.dot_boxed, False
                    try:
                        self.walk(value, node.body)
                    finally:
                        self.dot_boxed = boxed
                else:
                    self.walk(dot, node.body)
            elif node.else_body is not None:
                self.walk(dot, node.else_body)
        finally:
            self.pop(mark)

    def walk_range(self, dot: object, node: n.RangeNode) -> None:
        self.at(node)
        outer = self.mark()
        try:
            value = self.eval_pipeline(dot, node.pipe)
            pairs = self.range_pairs(node, value)
            if pairs is None:
                if node.else_body is not None:
                    self.walk(dot, node.else_body)
                return
            mark = self.mark()
            decl = node.pipe.decl
            elems_boxed = isinstance(value, list | tuple | dict) and not isinstance(
                value, StrList | IntList | StrMap
            )
            boxed, self.dot_boxed = self.dot_boxed, elems_boxed
            try:
                for index, elem in pairs:
                    self.step()
                    if decl:
                        if node.pipe.is_assign:
                            if len(decl) > 1:
                                self.set_var(decl[0].ident[0], index)
                                self.set_var(decl[1].ident[0], elem, elems_boxed)
                            else:
                                self.set_var(decl[0].ident[0], elem, elems_boxed)
                        else:
                            self.set_top_var(1, elem, elems_boxed)
                            if len(decl) > 1:
                                self.set_top_var(2, index)
                    try:
                        self.walk(elem, node.body)
                    except _Continue:
                        pass
                    finally:
                        self.pop(mark)
            except _Break:
                pass
            finally:
                self.dot_boxed = boxed
        finally:
            self.pop(outer)

    def range_pairs(self, node: n.RangeNode, value: object) -> list[tuple[object, object]] | None:
        """(index, element) pairs, or None when the else branch runs (empty, nil)."""
        if value is MISSING or value is None:
            return None
        if isinstance(value, dict):
            pairs: list[tuple[object, object]] = [(k, value[k]) for k in sorted_keys(value)]
        elif isinstance(value, list | tuple | bytes | bytearray):
            pairs = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            if len(node.pipe.decl) > 1:
                raise self.errorf(f"can't use {value} to iterate over more than one variable")
            if value > self.limits.max_steps:
                raise self.errorf(f"range over {value} exceeds the limit of {self.limits.max_steps} steps")
            pairs = [(i, i) for i in range(value)]
        else:
            raise self.errorf("range can't iterate over <redacted>")
        return pairs or None

    def walk_template(self, dot: object, node: n.TemplateNode) -> None:
        self.at(node)
        tree = self.trees.get(node.name)
        if tree is None:
            raise self.errorf(f"template {go_quote(node.name)} not defined")
        if self.depth >= self.limits.max_depth:
            raise self.errorf(f"exceeded maximum template depth ({self.limits.max_depth})")
        new_dot = self.eval_pipeline(dot, node.pipe) if node.pipe is not None else MISSING
        saved = (self.tree, self.vars, self.dot_boxed)
        self.tree, self.vars, self.dot_boxed = tree, [("$", new_dot, False)], False
        self.depth += 1
        try:
            self.walk(new_dot, tree.root)
        finally:
            self.depth -= 1
            self.tree, self.vars, self.dot_boxed = saved

    # --- evaluation ---------------------------------------------------------------------------
    def eval_pipeline(self, dot: object, pipe: n.PipeNode) -> object:
        self.at(pipe)
        value: object = NO_FINAL
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
            if value is None:  # Go unwraps interface{} results: a nil one becomes "no value"
                value = MISSING
        for var in pipe.decl:
            if pipe.is_assign:
                self.set_var(var.ident[0], value)
            else:
                self.push(var.ident[0], value)
        return value

    def not_a_function(self, args: list[n.Node], final: object) -> None:
        if len(args) > 1 or final is not NO_FINAL:
            raise self.errorf(f"can't give argument to non-function {args[0]}")

    def eval_command(self, dot: object, cmd: n.CommandNode, final: object) -> object:
        self.step()
        first = cmd.args[0]
        if isinstance(first, n.FieldNode):
            return self.eval_field_node(dot, first, cmd.args, final)
        if isinstance(first, n.ChainNode):
            return self.eval_chain_node(dot, first, cmd.args, final)
        if isinstance(first, n.IdentifierNode):
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if isinstance(first, n.PipeNode):
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        if isinstance(first, n.VariableNode):
            return self.eval_variable_node(dot, first, cmd.args, final)
        self.at(first)
        self.not_a_function(cmd.args, final)
        if isinstance(first, n.BoolNode):
            return first.value
        if isinstance(first, n.DotNode):
            return dot
        if isinstance(first, n.NilNode):
            raise self.errorf("nil is not a command")
        if isinstance(first, n.NumberNode):
            return self.ideal_constant(first)
        if isinstance(first, n.StringNode):
            return first.text
        raise self.errorf(f"can't evaluate command {go_quote(str(first))}")

    def ideal_constant(self, num: n.NumberNode) -> object:
        self.at(num)
        text = num.text
        is_hex = text.lstrip("+-")[:2] in ("0x", "0X")
        if num.float_value is not None and not num.is_char and not is_hex and any(c in text for c in ".eEpP"):
            return num.float_value
        if num.int_value is not None:
            if not -(2**63) <= num.int_value < 2**63:
                raise self.errorf(f"{text} overflows int")
            return num.int_value
        raise self.errorf(f"{text} overflows int")

    def eval_field_node(self, dot: object, field: n.FieldNode, args: list[n.Node], final: object) -> object:
        self.at(field)
        return self.eval_field_chain(dot, field, field.ident, args, final, self.dot_boxed)

    def eval_chain_node(self, dot: object, chain: n.ChainNode, args: list[n.Node], final: object) -> object:
        self.at(chain)
        if isinstance(chain.node, n.NilNode):
            raise self.errorf(f"indirection through explicit nil in {chain}")
        receiver = self.eval_arg(dot, None, chain.node)
        return self.eval_field_chain(receiver, chain, chain.fields, args, final, False)

    def eval_variable_node(
        self, dot: object, var: n.VariableNode, args: list[n.Node] | None, final: object
    ) -> object:
        self.at(var)
        _, value, boxed = self.var_entry(var.ident[0])
        if len(var.ident) == 1:
            if args is not None:
                self.not_a_function(args, final)
            return value
        return self.eval_field_chain(value, var, var.ident[1:], args, final, boxed)

    def eval_field_chain(
        self,
        receiver: object,
        node: n.Node,
        idents: list[str],
        args: list[n.Node] | None,
        final: object,
        boxed: bool,
    ) -> object:
        for ident in idents[:-1]:
            receiver = self.eval_field(ident, None, NO_FINAL, receiver, boxed)
            boxed = True
        return self.eval_field(idents[-1], args, final, receiver, boxed)

    def eval_field(
        self, name: str, args: list[n.Node] | None, final: object, receiver: object, boxed: bool
    ) -> object:
        if receiver is MISSING:
            return MISSING
        has_args = (args is not None and len(args) > 1) or final is not NO_FINAL
        if receiver is None:
            raise self.errorf(f"nil pointer evaluating interface {{}}.{name}")
        if isinstance(receiver, dict):
            if has_args:
                raise self.errorf(f"{name} is not a method but has arguments")
            return receiver.get(name, MISSING)
        if isinstance(receiver, Struct) and name in receiver.values:
            if has_args:
                raise self.errorf(f"{name} has arguments but cannot be invoked as function")
            return receiver.values[name]
        typ = "interface {}" if boxed else type_name(receiver)
        raise self.errorf(f"can't evaluate field {name} in type {typ}")

    def eval_function(
        self, dot: object, ident: n.IdentifierNode, cmd: n.Node, args: list[n.Node] | None, final: object
    ) -> object:
        self.at(ident)
        fn = self.funcs.get(ident.ident)
        if fn is None:
            raise self.errorf(f"{go_quote(ident.ident)} is not a defined function")
        return self.eval_call(dot, fn, cmd, ident.ident, args, final)

    def eval_call(
        self, dot: object, fn: Func, node: n.Node, name: str, args: list[n.Node] | None, final: object
    ) -> object:
        arg_nodes = args[1:] if args else []
        num_in = len(arg_nodes) + (0 if final is NO_FINAL else 1)
        num_fixed = len(fn.params)
        if fn.variadic is not None:
            if num_in < num_fixed:
                raise self.errorf(
                    f"wrong number of args for {name}: want at least {num_fixed} got {len(arg_nodes)}"
                )
        elif num_in != num_fixed:
            raise self.errorf(f"wrong number of args for {name}: want {num_fixed} got {num_in}")
        if name in ("and", "or") and fn.params == (VALUE,):
            want = name == "or"
            value: object = MISSING
            for arg in arg_nodes:
                value = self.eval_arg(dot, VALUE, arg)
                if truth(value) == want:
                    return value
            if final is not NO_FINAL:
                value = self.validate_type(final, VALUE)
            return value
        argv: list[object] = []
        for i, arg in enumerate(arg_nodes):
            typ = fn.params[i] if i < num_fixed else fn.variadic
            argv.append(self.eval_arg(dot, typ, arg))
        if final is not NO_FINAL:
            typ = fn.params[num_in - 1] if num_in - 1 < num_fixed else fn.variadic
            argv.append(self.validate_type(final, typ))
        self.step()
        if name in SIZED_BY_ARGUMENTS and payload(argv, self.limits.max_output) > self.limits.max_output:
            self.at(node)
            raise self.errorf(
                f"error calling {name}: arguments larger than the output limit of "
                f"{self.limits.max_output} bytes"
            )
        try:
            if name == "call" and arg_nodes:
                return _call_named(str(arg_nodes[0]), argv)
            result = fn.fn(*argv)
        except FuncError as err:
            self.at(node)
            raise self.errorf(f"error calling {name}: {err}") from None
        except (RecursionError, MemoryError, OverflowError):
            self.at(node)
            raise self.errorf(f"error calling {name}: value too large") from None
        self.spend(result)
        return result

    def eval_arg(self, dot: object, typ: str | None, node: n.Node) -> object:
        self.at(node)
        if isinstance(node, n.DotNode):
            return self.validate_type(dot, typ)
        if isinstance(node, n.NilNode):
            if typ in (None, ANY, MAP):
                return None
            if typ == VALUE:  # Go passes builtins a zero reflect.Value
                return MISSING
            raise self.errorf(f"cannot assign nil to {typ}")
        if isinstance(node, n.FieldNode):
            return self.validate_type(self.eval_field_node(dot, node, [node], NO_FINAL), typ)
        if isinstance(node, n.VariableNode):
            return self.validate_type(self.eval_variable_node(dot, node, None, NO_FINAL), typ)
        if isinstance(node, n.PipeNode):
            return self.validate_type(self.eval_pipeline(dot, node), typ)
        if isinstance(node, n.IdentifierNode):
            return self.validate_type(self.eval_function(dot, node, node, None, NO_FINAL), typ)
        if isinstance(node, n.ChainNode):
            return self.validate_type(self.eval_chain_node(dot, node, [], NO_FINAL), typ)
        if typ == BOOL:
            if isinstance(node, n.BoolNode):
                return node.value
            raise self.errorf(f"expected bool; found {node}")
        if typ == STRING:
            if isinstance(node, n.StringNode):
                return node.text
            raise self.errorf(f"expected string; found {node}")
        if typ == INT:
            if isinstance(node, n.NumberNode) and node.int_value is not None:
                return node.int_value
            raise self.errorf(f"expected integer; found {node}")
        if typ == FLOAT:
            if isinstance(node, n.NumberNode) and node.float_value is not None:
                return node.float_value
            raise self.errorf(f"expected float; found {node}")
        if typ in (None, ANY, VALUE):
            if isinstance(node, n.BoolNode):
                return node.value
            if isinstance(node, n.NumberNode):
                return self.ideal_constant(node)
            if isinstance(node, n.StringNode):
                return node.text
        raise self.errorf(f"can't handle {node} for arg of type {typ}")

    def validate_type(self, value: object, typ: str | None) -> object:
        if typ is None or typ == VALUE:
            return value
        if value is MISSING:
            if typ in (ANY, MAP):
                return None
            raise self.errorf(f"invalid value; expected {typ}")
        if typ == ANY:
            return value
        if value is None:
            if typ == MAP:
                return value
            raise self.errorf(f"invalid value; expected {typ}")
        ok = {
            STRING: isinstance(value, str) and not isinstance(value, JSONNumber),
            INT: isinstance(value, int) and not isinstance(value, bool | Int64),
            FLOAT: isinstance(value, float),
            BOOL: isinstance(value, bool),
            MAP: isinstance(value, dict) and not isinstance(value, StrMap),
        }.get(typ, True)
        if not ok:
            raise self.errorf(f"wrong type for value; expected {typ}; got {type_name(value)}")
        return value


def _call_named(name: str, argv: list[object]) -> object:
    fn = argv[0]
    if fn is None or fn is MISSING:
        raise FuncError("call of nil")
    raise FuncError(f"non-function {name} of type {type_name(fn)}")


def execute(
    trees: Mapping[str, n.Tree], funcs: Mapping[str, Func], tree: n.Tree, data: object, limits: Limits
) -> str:
    """Render ``tree`` with ``data`` as dot and ``$``."""
    state = State(trees, funcs, tree, limits)
    dot = MISSING if data is None else data
    state.push("$", dot)
    token = CURRENT_LIMITS.set(limits)
    try:
        state.walk(dot, tree.root)
    except (_Break, _Continue):  # the parser only allows these inside range
        raise state.errorf("break or continue outside range") from None
    except RecursionError:
        raise TemplateError(f"template: {tree.name}: execution nested too deeply") from None
    finally:
        CURRENT_LIMITS.reset(token)
    return "".join(state.out)
