"""The parse tree. ``str(node)`` re-prints the source the way Go does in ``at <...>`` contexts."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True, eq=False)
class Node:
    pos: int


@dataclass(slots=True, eq=False)
class TextNode(Node):
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(slots=True, eq=False)
class DotNode(Node):
    def __str__(self) -> str:
        return "."


@dataclass(slots=True, eq=False)
class NilNode(Node):
    def __str__(self) -> str:
        return "nil"


@dataclass(slots=True, eq=False)
class BoolNode(Node):
    value: bool

    def __str__(self) -> str:
        return "true" if self.value else "false"


@dataclass(slots=True, eq=False)
class NumberNode(Node):
    """A numeric constant: Go keeps every reading of it (int, float) and picks by context."""

    text: str
    int_value: int | None
    float_value: float | None
    is_char: bool = False

    def __str__(self) -> str:
        return self.text


@dataclass(slots=True, eq=False)
class StringNode(Node):
    quoted: str
    text: str

    def __str__(self) -> str:
        return self.quoted


@dataclass(slots=True, eq=False)
class IdentifierNode(Node):
    ident: str

    def __str__(self) -> str:
        return self.ident


@dataclass(slots=True, eq=False)
class FieldNode(Node):
    ident: list[str]

    def __str__(self) -> str:
        return "".join("." + i for i in self.ident)


@dataclass(slots=True, eq=False)
class VariableNode(Node):
    ident: list[str]  # ["$x", "Field", ...]

    def __str__(self) -> str:
        return ".".join(self.ident)


@dataclass(slots=True, eq=False)
class ChainNode(Node):
    node: Node
    fields: list[str]

    def __str__(self) -> str:
        base = f"({self.node})" if isinstance(self.node, PipeNode) else str(self.node)
        return base + "".join("." + f for f in self.fields)


@dataclass(slots=True, eq=False)
class CommandNode(Node):
    args: list[Node] = field(default_factory=list)

    def __str__(self) -> str:
        return " ".join(f"({a})" if isinstance(a, PipeNode) else str(a) for a in self.args)


@dataclass(slots=True, eq=False)
class PipeNode(Node):
    line: int
    decl: list[VariableNode] = field(default_factory=list)
    cmds: list[CommandNode] = field(default_factory=list)
    is_assign: bool = False

    def __str__(self) -> str:
        head = ""
        if self.decl:
            head = ", ".join(str(v) for v in self.decl) + (" = " if self.is_assign else " := ")
        return head + " | ".join(str(c) for c in self.cmds)


@dataclass(slots=True, eq=False)
class ListNode(Node):
    nodes: list[Node] = field(default_factory=list)

    def __str__(self) -> str:
        return "".join(str(n) for n in self.nodes)


@dataclass(slots=True, eq=False)
class ActionNode(Node):
    line: int
    pipe: PipeNode

    def __str__(self) -> str:
        return "{{" + str(self.pipe) + "}}"


@dataclass(slots=True, eq=False)
class CommentNode(Node):
    def __str__(self) -> str:
        return "{{/* */}}"


@dataclass(slots=True, eq=False)
class BranchNode(Node):
    """``if``, ``range`` and ``with``: a pipeline, a body and an optional ``else`` body."""

    line: int
    pipe: PipeNode
    body: ListNode
    else_body: ListNode | None
    keyword: str = ""

    def __str__(self) -> str:
        text = "{{" + self.keyword + " " + str(self.pipe) + "}}" + str(self.body)
        if self.else_body is not None:
            text += "{{else}}" + str(self.else_body)
        return text + "{{end}}"


@dataclass(slots=True, eq=False)
class IfNode(BranchNode):
    pass


@dataclass(slots=True, eq=False)
class RangeNode(BranchNode):
    pass


@dataclass(slots=True, eq=False)
class WithNode(BranchNode):
    pass


@dataclass(slots=True, eq=False)
class TemplateNode(Node):
    line: int
    name: str
    pipe: PipeNode | None

    def __str__(self) -> str:
        from .lexer import go_quote

        if self.pipe is None:
            return "{{template " + go_quote(self.name) + "}}"
        return "{{template " + go_quote(self.name) + " " + str(self.pipe) + "}}"


@dataclass(slots=True, eq=False)
class BreakNode(Node):
    line: int

    def __str__(self) -> str:
        return "{{break}}"


@dataclass(slots=True, eq=False)
class ContinueNode(Node):
    line: int

    def __str__(self) -> str:
        return "{{continue}}"


@dataclass(slots=True, eq=False)
class EndNode(Node):
    """Parser-internal: ``{{end}}``."""

    def __str__(self) -> str:
        return "{{end}}"


@dataclass(slots=True, eq=False)
class ElseNode(Node):
    """Parser-internal: ``{{else}}``."""

    line: int

    def __str__(self) -> str:
        return "{{else}}"


@dataclass(slots=True, eq=False)
class Tree:
    """One named template: its body and the source it was parsed from (for line:col)."""

    name: str
    parse_name: str
    source: str
    root: ListNode

    def location(self, node: Node) -> str:
        """Go's ``NAME:LINE:COL`` (COL counts bytes from the start of the line, from 0)."""
        before = self.source[: node.pos]
        line_start = before.rfind("\n") + 1
        col = len(before[line_start:].encode("utf-8", "surrogatepass"))
        return f"{self.parse_name}:{before.count(chr(10)) + 1}:{col}"
