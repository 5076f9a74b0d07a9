# ruff: noqa: E501 - a table: one case per line reads better than wrapped strings
"""The conformance table: template, data, and what Go's text/template (+ Sprig, VSO's function
map) outputs, or the exact error text.

Expected values come from, and are named after, their sources: Go's package documentation
(``Go doc:``), Go's own test tables (``Go:``, ``Go parse:``/``Go exec:`` from exec_test.go and
parse_test.go, the latter stating only a part of each message: ``part=True``), Go's regexp and
fmt documentation, Sprig's documentation (``Sprig doc:``) and VSO's helpers/template_test.go
(``VSO:``). The rest were worked out by hand from Go's and Sprig's documented behaviour — never
by running this engine. A case whose Go output we could not establish for certain carries
``unclear`` with the reason; those only check that the engine answers (output or TemplateError).
The error cases show the shape of Go's messages: ``template: NAME:LINE: ...`` when parsing,
``template: NAME:LINE:COL: executing "NAME" at <NODE>: ...`` when executing.

Deliberate differences from Go (documented in the README): values Go would print inside an
error are ``<redacted>`` (as VSO's own redaction does for ``range``), ``keys``/``values`` return
sorted order (Go: random map order), and execution is bounded (tests/operator/gotemplate/
test_limits.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from csi_vso.operator.gotemplate import secret_input, vault_data


@dataclass(frozen=True)
class Case:
    id: str
    template: str
    want: str
    data: Any = None
    error: bool = False  # want is the whole str() of the TemplateError
    unclear: str = ""  # why Go's exact answer is not established
    name: str = "t"
    part: bool = False  # Go's test states only this part of the message
    extra: dict[str, str] = field(default_factory=dict)  # more templates parsed first


def _data() -> dict[str, Any]:
    return {
        "Secrets": {"username": "admin", "password": "s3cr3t"},
        "S": "hello",
        "I": 17,
        "F": 1.5,
        "B": True,
        "L": [3, 4, 5],
        "E": [],
        "M": {"one": 1, "two": 2, "three": 3},
        "EM": {},
        "N": None,
        "Z": 0,
        "ES": "",
        "U": [{"n": "a"}, {"n": "b"}],
    }


D = _data()


def ok(id: str, template: str, want: str, data: Any = D, **kw: Any) -> Case:
    return Case(id, template, want, data, **kw)


def err(id: str, template: str, want: str, data: Any = D, **kw: Any) -> Case:
    return Case(id, template, want, data, error=True, **kw)


TEXT_AND_TRIM = [
    ok("text", "hello", "hello"),
    ok("empty template", "", ""),
    ok("trim both sides", "a  {{- 1 -}}  b", "a1b"),
    ok("trim across newline", "{{1}} \n {{- 2}}", "12"),
    ok("minus number is not a trim marker", "{{-3}}", "-3"),
    ok("right trim eats newline and tab", "{{ 3 -}}\n\t x", "3x"),
    ok("comment", "{{/* comment */}}x", "x"),
    ok("trimmed comment", "a {{- /* c */ -}} b", "ab"),
    ok("multi-line comment", "{{/* multi\nline */}}x", "x"),
    ok("delimiter in a string", 'x{{"{{"}}y', "x{{y"),
    ok("raw string keeps backslashes", "{{`a\\nb`}}", "a\\nb"),
    ok("string escapes", '{{"a\\tb\\u00e9"}}', "a\tbé"),
    ok("char constant is a number", "{{'a'}}", "97"),
    ok("integer literals", "{{0x1F}} {{0o17}} {{0b101}} {{017}} {{1_000}}", "31 15 5 15 1000"),
    ok("float literals", "{{1e3}} {{1.0}} {{-2.5}} {{.5}}", "1000 1 -2.5 0.5"),
    ok("bool literals", "{{true}} {{false}}", "true false"),
    ok("nil data prints no value", "{{.}}", "<no value>", None),
    ok("newlines inside an action", "{{\n.S\n}}", "hello"),
    err("trim markers around nothing are a number", "{{- -}}", 'template: t:1: illegal number syntax: "-"'),
    err("empty action with a right trim", "{{ -}}", "template: t:1: missing value for command"),
    ok("left trim only", "x \n\t{{- 1}} y", "x1 y"),
    ok("trim marker needs a space", "{{1}} {{-1}}", "1 -1"),
    ok("trim only spaces of adjacent text", "a \n{{- .S -}}\n b", "ahellob"),
]

# The examples of text/template's package documentation: each prints "output" quoted.
GO_DOC = [
    ok("Go doc: trim example", "{{23 -}} < {{- 45}}", "23<45"),
    ok("Go doc: string constant", '{{"\\"output\\""}}', '"output"'),
    ok("Go doc: raw string constant", '{{`"output"`}}', '"output"'),
    ok("Go doc: function call", '{{printf "%q" "output"}}', '"output"'),
    ok("Go doc: piped argument", '{{"output" | printf "%q"}}', '"output"'),
    ok("Go doc: parenthesized argument", '{{printf "%q" (print "out" "put")}}', '"output"'),
    ok("Go doc: elaborate call", '{{"put" | printf "%s%s" "out" | printf "%q"}}', '"output"'),
    ok("Go doc: longer chain", '{{"output" | printf "%s" | printf "%q"}}', '"output"'),
    ok("Go doc: with and dot", '{{with "output"}}{{printf "%q" .}}{{end}}', '"output"'),
    ok(
        "Go doc: with that creates a variable",
        '{{with $x := "output" | printf "%q"}}{{$x}}{{end}}',
        '"output"',
    ),
    ok("Go doc: variable in another action", '{{with $x := "output"}}{{printf "%q" $x}}{{end}}', '"output"'),
    ok("Go doc: variable piped", '{{with $x := "output"}}{{$x | printf "%q"}}{{end}}', '"output"'),
    ok(
        "Go doc: comments",
        "a{{/* a comment */}}b {{- /* a comment with white space trimmed from preceding and following text */ -}} c",
        "abc",
    ),
]

PRINTING = [
    ok("slice prints", "{{.L}}", "[3 4 5]"),
    ok("map sorted by key", "{{.M}}", "map[one:1 three:3 two:2]"),
    ok("Go: nil in a map prints no value (interface unwrapped)", "{{.N}}", "<no value>"),
    ok("nil in a map given to print", "{{print .N}} {{.N | print}}", "<nil> <nil>"),
    ok("nil inside a slice", "{{.X}} {{range .X}}{{.}}{{end}}", "[<nil>] <no value>", {"X": [None]}),
    ok("missing key", "{{.Missing}}", "<no value>"),
    ok("float", "{{.F}}", "1.5"),
    ok("empty map and slice", "{{.EM}} {{.E}}", "map[] []"),
    ok("nested", "{{.X}}", "map[a:[1 map[b:<nil>]]]", {"X": {"a": [1, {"b": None}]}}),
    ok("large float uses exponent", "{{.X}}", "1e+21", {"X": 1e21}),
    ok("float 1e6 prints as 1e+06", "{{.X}}", "1e+06", {"X": 1e6}),
    ok("float 123456", "{{.X}}", "123456", {"X": 123456.0}),
    ok("float 1234567", "{{.X}}", "1.234567e+06", {"X": 1234567.0}),
    ok("small floats", "{{.A}} {{.B}}", "0.000123 1.23e-05", {"A": 0.000123, "B": 0.0000123}),
    ok("bool and string", "{{.B}} {{.S}}", "true hello"),
    ok("bytes print as numbers", "{{.X}}", "[104 105]", {"X": b"hi"}),
    ok("dot is the whole map", "{{.}}", "map[a:1]", {"a": 1}),
]

FIELDS = [
    ok("nested map field", "{{.Secrets.username}}", "admin"),
    ok("missing nested key", "{{.Secrets.missing}}", "<no value>"),
    ok("field of a missing key", "{{.Missing.deeper}}", "<no value>"),
    err(
        "field of nil",
        "{{.N.x}}",
        'template: t:1:4: executing "t" at <.N.x>: nil pointer evaluating interface {}.x',
    ),
    err(
        "field of a string in a map",
        "{{.S.x}}",
        'template: t:1:4: executing "t" at <.S.x>: can\'t evaluate field x in type interface {}',
    ),
    err(
        "field of a top-level string",
        "{{.x}}",
        'template: t:1:2: executing "t" at <.x>: can\'t evaluate field x in type string',
        "str",
    ),
    err(
        "field of a string under with",
        "{{with .S}}{{.x}}{{end}}",
        'template: t:1:13: executing "t" at <.x>: can\'t evaluate field x in type string',
    ),
    err(
        "field of a slice element",
        "{{range .L}}{{.x}}{{end}}",
        'template: t:1:14: executing "t" at <.x>: can\'t evaluate field x in type interface {}',
    ),
    err(
        "field of a range variable",
        "{{range $v := .L}}{{$v.x}}{{end}}",
        'template: t:1:22: executing "t" at <$v.x>: can\'t evaluate field x in type interface {}',
    ),
    err(
        "field of a []string element",
        '{{range splitList "," "a,b"}}{{.x}}{{end}}',
        'template: t:1:31: executing "t" at <.x>: can\'t evaluate field x in type string',
    ),
    err(
        "field of a range index",
        "{{range $i, $v := .L}}{{$i.x}}{{end}}",
        'template: t:1:26: executing "t" at <$i.x>: can\'t evaluate field x in type int',
    ),
    err(
        "field chain position is the second field",
        "{{ .M.one.x }}",
        'template: t:1:5: executing "t" at <.M.one.x>: can\'t evaluate field x in type interface {}',
    ),
    err(
        "map key given arguments",
        "{{.M.one 1}}",
        'template: t:1:4: executing "t" at <.M.one>: one is not a method but has arguments',
    ),
    ok("dollar field", "{{$.S}}", "hello"),
    ok("parenthesized chain", "{{(.M).one}}", "1"),
    ok("chain on a function result", '{{(dict "a" (dict "b" 7)).a.b}}', "7"),
    err(
        "field of an int variable",
        "{{$x := 1}}{{$x.y}}",
        'template: t:1:15: executing "t" at <$x.y>: can\'t evaluate field y in type int',
    ),
]

VARIABLES = [
    ok("declare", "{{$x := 1}}{{$x}}", "1"),
    ok("assign", "{{$x := 1}}{{$x = 2}}{{$x}}", "2"),
    ok("outer variable inside with", "{{$x := .S}}{{with .I}}{{$x}}{{.}}{{end}}", "hello17"),
    ok("declare in if", "{{if $x := .S}}{{$x}}{{end}}", "hello"),
    ok("assign inside if changes outer", "{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}", "2"),
    ok("dollar inside range", "{{range .L}}{{$}}{{end}}", "map[L:[1]]", {"L": [1]}),
    ok("declaration prints nothing", "{{$x := 5}}", ""),
    err("undefined variable", "{{$x}}", 'template: t:1: undefined variable "$x"'),
    err(
        "with variable out of scope",
        "{{with $x := 5}}{{end}}{{$x}}",
        'template: t:1: undefined variable "$x"',
    ),
    err(
        "range variable out of scope",
        "{{range $x := .L}}{{end}}{{$x}}",
        'template: t:1: undefined variable "$x"',
    ),
    err("two variables in a command", "{{$x, $y := 1}}", "template: t:1: too many declarations in command"),
    ok("Go: if $x with $x", "{{if $x := true}}{{with $x := .I}}{{$x}},{{end}}{{$x}}{{end}}", "17,true"),
]

IF_WITH = [
    ok("if true", "{{if .B}}y{{else}}n{{end}}", "y"),
    ok(
        "false values",
        "{{if .Z}}t{{else}}f{{end}}{{if .ES}}t{{else}}f{{end}}{{if .E}}t{{else}}f{{end}}"
        "{{if .EM}}t{{else}}f{{end}}{{if .N}}t{{else}}f{{end}}{{if .Missing}}t{{else}}f{{end}}"
        "{{if 0.0}}t{{else}}f{{end}}{{if false}}t{{else}}f{{end}}",
        "ffffffff",
    ),
    ok(
        "true values",
        '{{if .I}}t{{end}}{{if .S}}t{{end}}{{if .L}}t{{end}}{{if .M}}t{{end}}{{if .F}}t{{end}}{{if "0"}}t{{end}}',
        "tttttt",
    ),
    ok("else if chain", "{{if eq .I 1}}a{{else if eq .I 17}}b{{else}}c{{end}}", "b"),
    ok("Go: if else chain", "{{if eq 1 3}}1{{else if eq 2 3}}2{{else if eq 3 3}}3{{end}}", "3"),
    ok("with sets dot", "{{with .Secrets}}{{.username}}{{end}}", "admin"),
    ok("with else", "{{with .ES}}x{{else}}empty{{end}}", "empty"),
    ok("dollar inside with", "{{with .Secrets}}{{$.S}}{{end}}", "hello"),
    ok("else with", "{{with .A}}a{{else with .B}}b{{.}}{{else}}none{{end}}", "b3", {"B": 3}),
    ok("with slice prints it", "{{with .L}}{{.}}{{else}}EMPTY{{end}}", "[3 4 5]"),
    err("if nil", "{{if nil}}x{{end}}", 'template: t:1:5: executing "t" at <nil>: nil is not a command'),
    err("if without pipeline", "{{if}}x{{end}}", "template: t:1: missing value for if"),
    err("with without pipeline", "{{with}}x{{end}}", "template: t:1: missing value for with"),
    err("if without end", "{{if true}}x", "template: t:1: unexpected EOF"),
    err("stray end", "{{end}}", "template: t:1: unexpected {{end}}"),
    err("stray else", "{{else}}", "template: t:1: unexpected {{else}}"),
    err("two elses", "{{if true}}\n{{else}}\n{{else}}{{end}}", "template: t:3: expected end; found {{else}}"),
    err("else if inside with", "{{with .X}}{{else if .Y}}{{end}}", "template: t:1: unexpected <if> in input"),
]

RANGE = [
    ok("slice", "{{range .L}}-{{.}}-{{end}}", "-3--4--5-"),
    ok("empty slice else", "{{range .E}}x{{else}}empty{{end}}", "empty"),
    ok("index and element", "{{range $i, $v := .L}}{{$i}}={{$v}} {{end}}", "0=3 1=4 2=5 "),
    ok("map in key order", "{{range $k, $v := .M}}{{$k}}:{{$v}},{{end}}", "one:1,three:3,two:2,"),
    ok("map values in key order", "{{range .M}}{{.}}{{end}}", "132"),
    ok("one variable is the element", "{{range $v := .L}}{{$v}}{{end}}", "345"),
    ok("break", "{{range .L}}{{if eq . 4}}{{break}}{{end}}{{.}}{{end}}", "3"),
    ok("continue", "{{range .L}}{{if eq . 4}}{{continue}}{{end}}{{.}}{{end}}", "35"),
    ok("range over an integer (Go 1.22)", "{{range 3}}{{.}}{{end}}", "012"),
    ok("nil ranges as empty", "{{range .N}}x{{else}}e{{end}}", "e"),
    ok("missing ranges as empty", "{{range .Missing}}x{{else}}e{{end}}", "e"),
    ok("slice of maps", "{{range .U}}{{.n}},{{end}}", "a,b,"),
    ok("separator idiom", "{{range $i, $e := .L}}{{if $i}}, {{end}}{{$e}}{{end}}", "3, 4, 5"),
    ok("map keys only", "{{range $k, $_ := .M}}{{$k}} {{end}}", "one three two "),
    ok("Go: declare in range", "{{range $x := .L}}<{{$foo:=$x}}{{$x}}>{{end}}", "<3><4><5>"),
    ok("empty map no else", "{{range .EM}}-{{.}}-{{end}}", ""),
    err("break outside range", "{{break}}", "template: t:1: {{break}} outside {{range}}"),
    err("continue outside range", "{{continue}}", "template: t:1: {{continue}} outside {{range}}"),
    err(
        "break with argument", "{{range .L}}{{break 1}}{{end}}", 'template: t:1: unexpected "1" in {{break}}'
    ),
    err(
        "range over a string (value redacted)",
        "{{range .S}}{{end}}",
        'template: t:1:8: executing "t" at <.S>: range can\'t iterate over <redacted>',
    ),
    err(
        "range with a constant in the declaration",
        "{{range $i, 3 := .L}}{{end}}",
        "template: t:1: range can only initialize variables",
    ),
    err(
        "range over int with two variables",
        "{{range $i, $c := 3}}{{end}}",
        'template: t:1:18: executing "t" at <3>: can\'t use 3 to iterate over more than one variable',
        unclear="which node Go reports for the range-over-int variable error",
    ),
]

TEMPLATES = [
    ok(
        "define and template",
        '{{define "T1"}}ONE{{end}}{{define "T2"}}TWO {{template "T1"}}{{end}}{{template "T2"}}',
        "TWO ONE",
    ),
    ok("template with data", '{{define "x"}}[{{.}}]{{end}}{{template "x" .S}}', "[hello]"),
    ok("template without data", '{{define "x"}}[{{.}}]{{end}}{{template "x"}}', "[<no value>]"),
    ok("block", '{{block "b" .S}}<{{.}}>{{end}}', "<hello>"),
    ok("Go: block", 'a({{block "inner" .}}bar({{.}})baz{{end}})b', "a(bar(hello)baz)b", "hello"),
    ok("define trims", '{{define "x" -}}  X  {{- end}}{{template "x"}}', "X"),
    ok("only definitions render nothing", '{{define "x"}}a{{end}}', ""),
    ok("template inside range", '{{define "x"}}{{.}}{{end}}{{range .L}}{{template "x" .}}{{end}}', "345"),
    ok("dollar is the template's data", '{{define "x"}}{{$}}{{end}}{{template "x" 5}}', "5"),
    ok(
        "template from an earlier parse",
        '{{template "helper" .S}}',
        "<hello>",
        extra={"helpers": '{{define "helper"}}<{{.}}>{{end}}'},
    ),
    err(
        "undefined template",
        '{{template "nope"}}',
        'template: t:1:11: executing "t" at <{{template "nope"}}>: template "nope" not defined',
    ),
    err(
        "multiple definition",
        '{{define "a"}}1{{end}}{{define "a"}}2{{end}}',
        'template: t:1: template: multiple definition of template "a"',
    ),
    err(
        "Go: error in a nested template",
        'line 1\nline 2\nline 3\n{{template "one" .}}\n{{define "one"}}{{template "two" .}}{{end}}\n'
        '{{define "two"}}{{template "three" .}}{{end}}\n{{define "three"}}{{index "hi" $}}{{end}}',
        'template: top:7:20: executing "three" at <index "hi" $>: error calling index: index out of range: 5',
        5,
        name="top",
    ),
    err("define without end", '{{define "x"}}', "template: t:1: unexpected EOF"),
    err("define with a bare name", "{{define x}}{{end}}", 'template: t:1: unexpected "x" in define clause'),
    err(
        "template with a bare name",
        "{{template foo}}",
        'template: t:1: unexpected "foo" in template clause',
    ),
]

BUILTINS = [
    ok("Go: and", "{{and false 0}} {{and 1 0}} {{and 0 true}} {{and 1 1}}", "false 0 0 1"),
    ok("Go: or", "{{or 0 0}} {{or 1 0}} {{or 0 true}} {{or 1 1}}", "0 1 true 1"),
    ok("and/or short-circuit", '{{and 0 (fail "x")}}{{or 1 (fail "x")}}', "01"),
    ok("Go: or as default", '{{or .E "slice is empty"}}', "slice is empty"),
    ok("Go: not", "{{not true}} {{not false}}", "false true"),
    ok("Go: boolean if not", "{{if and true 1 `hi` | not}}TRUE{{else}}FALSE{{end}}", "FALSE"),
    ok("len", '{{len .L}} {{len .M}} {{len .S}} {{len "héllo"}}', "3 3 5 6"),
    ok("index", '{{index .L 1}} {{index .M "two"}}', "4 2"),
    ok("index missing map key is a nil interface", '{{index .M "x"}}', "<no value>"),
    ok("index of a string is a byte", '{{index "hi" 0}}', "104"),
    ok("index nested", '{{index .X 1 "b"}}', "7", {"X": [0, {"b": 7}]}),
    ok("Go: print", "{{print 1 2 3}}", "1 2 3"),
    ok("print spaces only between non-strings", '{{print 1 2 "a" 3 "b" "c"}}', "1 2a3bc"),
    ok("Go: print nil", "{{print nil}}", "<nil>"),
    ok("Go: println", '{{println 1 "a"}}', "1 a\n"),
    ok(
        "Go: html",
        '{{html "<script>alert(\\"XSS\\");</script>"}}',
        "&lt;script&gt;alert(&#34;XSS&#34;);&lt;/script&gt;",
    ),
    ok("Go: js", "{{js .}}", "It\\'d be nice.", "It'd be nice."),
    ok("js quotes and backslash", "{{js .}}", 'Go \\"jump\\" \\\\', 'Go "jump" \\'),
    ok("Go: urlquery", '{{"http://www.example.org/"|urlquery}}', "http%3A%2F%2Fwww.example.org%2F"),
    ok("urlquery space", '{{urlquery "a b&c=d"}}', "a+b%26c%3Dd"),
    ok("eq", '{{eq 1 1}} {{eq 3 4 5 6 3}} {{eq "xy" "xy"}} {{ne 1 2}}', "true true true true"),
    ok("eq of a map value and a literal", "{{eq .I 17}}", "true"),
    ok("eq int64 with int", "{{eq (add 1 2) 3}}", "true"),
    ok("Go: comparisons", '{{lt 1 2}} {{le 2 2}} {{gt "b" "a"}} {{ge 1.5 2.5}}', "true true true false"),
    ok("lt strings", "{{lt `xy` `xyz`}}", "true"),
    ok(
        "eq of missing and a string",
        '{{eq .Missing "x"}} {{eq .N "x"}}',
        "false false",
    ),
    err(
        "Go: eq of int and float",
        "{{eq 2 2.0}}",
        'template: t:1:2: executing "t" at <eq 2 2.0>: error calling eq: incompatible types for comparison',
    ),
    err(
        "Go: lt of bools",
        "{{lt true true}}",
        'template: t:1:2: executing "t" at <lt true true>: error calling lt: invalid type for comparison',
    ),
    err(
        "lt of string and int",
        "{{lt .S 1}}",
        'template: t:1:2: executing "t" at <lt .S 1>: error calling lt: incompatible types for comparison',
    ),
    err(
        "eq with one argument",
        "{{eq 1}}",
        'template: t:1:2: executing "t" at <eq 1>: error calling eq: missing argument for comparison',
    ),
    err(
        "len of int",
        "{{len 3}}",
        'template: t:1:2: executing "t" at <len 3>: error calling len: len of type int',
    ),
    err(
        "index out of range",
        "{{index .L 10}}",
        'template: t:1:2: executing "t" at <index .L 10>: error calling index: index out of range: 10',
    ),
    err(
        "index equal to length",
        "{{index .L 3}}",
        'template: t:1:2: executing "t" at <index .L 3>: error calling index: index out of range: 3',
        unclear="older Go releases report reflect's panic for index == len",
    ),
    err(
        "index slice with a string",
        '{{index .L "a"}}',
        'template: t:1:2: executing "t" at <index .L "a">: error calling index: '
        "cannot index slice/array with type string",
    ),
    err(
        "index map with an int",
        "{{index .M 1}}",
        'template: t:1:2: executing "t" at <index .M 1>: error calling index: value has type int; should be string',
    ),
    err(
        "Go: index of nil literal",
        "{{index nil 1}}",
        'template: t:1:2: executing "t" at <index nil 1>: error calling index: index of untyped nil',
    ),
    err(
        "index of nil from a map",
        "{{index .N 1}}",
        'template: t:1:2: executing "t" at <index .N 1>: error calling index: index of untyped nil',
    ),
    err(
        "len of nil from a map",
        "{{len .N}}",
        'template: t:1:2: executing "t" at <len .N>: error calling len: len of nil pointer',
    ),
    ok("not of missing", "{{not .Missing}} {{and .N 1}} {{or .N 1}}", "true <no value> 1"),
    err(
        "and without arguments",
        "{{and}}",
        'template: t:1:2: executing "t" at <and>: wrong number of args for and: want at least 1 got 0',
    ),
    err(
        "printf without arguments",
        "{{printf}}",
        'template: t:1:2: executing "t" at <printf>: wrong number of args for printf: want at least 1 got 0',
    ),
    err(
        "not with two arguments",
        "{{not 1 2}}",
        'template: t:1:2: executing "t" at <not>: wrong number of args for not: want 1 got 2',
    ),
    err(
        "len without arguments",
        "{{len}}",
        'template: t:1:2: executing "t" at <len>: wrong number of args for len: want 1 got 0',
    ),
    err(
        "Go: piped int into printf's format",
        "{{1|printf}}",
        'template: t:1:4: executing "t" at <printf>: wrong type for value; expected string; got int',
    ),
    ok("Go: piped string is printf's format", '{{"aaa"|printf}}', "aaa"),
    err(
        "Go: argument to a non-function",
        "{{3 2}}",
        'template: t:1:2: executing "t" at <3>: can\'t give argument to non-function 3',
    ),
    err(
        "call of a string",
        "{{call .S}}",
        'template: t:1:2: executing "t" at <call .S>: error calling call: non-function .S of type string',
    ),
    err(
        "Go: call nil",
        "{{call nil}}",
        'template: t:1:2: executing "t" at <call nil>: error calling call: call of nil',
    ),
]

PRINTF = [
    ok("Go: %04x", '{{printf "%04x" 127}}', "007f"),
    ok("Go: %g", '{{printf "%g" 3.5}}', "3.5"),
    ok(
        "widths and flags on ints",
        '{{printf "%d|%5d|%-5d|%05d|%+d" 42 42 42 42 42}}',
        "42|   42|42   |00042|+42",
    ),
    ok(
        "strings",
        '{{printf "%s|%10s|%-10s|%.2s" "hello" "hello" "hello" "hello"}}',
        "hello|     hello|hello     |he",
    ),
    ok("%q string", '{{printf "%q" "a\\"b"}}', '"a\\"b"'),
    ok("%v of basics", '{{printf "%v %v %v" 1 "a" true}}', "1 a true"),
    ok("%x of a string and %X of an int", '{{printf "%x %X" "hi" 255}}', "6869 FF"),
    ok("%t", '{{printf "%t" true}}', "true"),
    ok(
        "float verbs",
        '{{printf "%f %.2f %8.3f %e %g" 3.14159 3.14159 3.14159 1234.5678 0.000012}}',
        "3.141590 3.14    3.142 1.234568e+03 1.2e-05",
    ),
    ok(
        "%T",
        '{{printf "%T %T %T %T %T %T %T" 1 1.5 "s" true .L .M nil}}',
        "int float64 string bool []interface {} map[string]interface {} <nil>",
    ),
    ok("bad verb for a string", '{{printf "%d" "x"}}', "%!d(string=x)"),
    ok("missing argument", '{{printf "%d %d" 1}}', "1 %!d(MISSING)"),
    ok("extra argument", '{{printf "%d" 1 2}}', "1%!(EXTRA int=2)"),
    ok("%s of nil", '{{printf "%s" nil}}', "%!s(<nil>)"),
    ok("%v of a slice", '{{printf "%v" .L}}', "[3 4 5]"),
    ok("%+v of a map", '{{printf "%+v" .M}}', "map[one:1 three:3 two:2]"),
    ok("percent sign", '{{printf "%5.1f%%" 99.44}}', " 99.4%"),
    ok("int verbs", '{{printf "%c %U %b %o %#x %#o" 65 65 5 8 255 8}}', "A U+0041 101 10 0xff 010"),
    ok("%s of a slice of ints", '{{printf "%s" .L}}', "[%!s(int=3) %!s(int=4) %!s(int=5)]"),
    ok("%x of UTF-8", '{{printf "%x" "é"}}', "c3a9"),
    ok("star width", '{{printf "%*d" 5 3}}', "    3"),
    ok("no verb", '{{printf "%"}}', "%!(NOVERB)"),
    ok("unknown verb", '{{printf "%z" 1}}', "%!z(int=1)"),
    ok(
        "mixed widths",
        '{{printf "%6.2f|%-8.3s|%08.3f" 3.14159 "abcdef" -3.14159}}',
        "  3.14|abc     |-003.142",
    ),
    ok("%v of large floats", '{{printf "%v %v" 1e21 100000000.0}}', "1e+21 1e+08"),
    ok("%g precision and %G", '{{printf "%.3g %g %G" 1234.5678 100000.0 1e-7}}', "1.23e+03 100000 1E-07"),
    ok("negative hex", '{{printf "%x" -255}}', "-ff"),
    ok("space flag", '{{printf "% d" 5}}', " 5"),
    ok("%v of nil from a map", '{{printf "%v" .N}}', "<nil>"),
    ok("missing key is nil for printf", '{{printf "%s" .Missing}}', "%!s(<nil>)"),
    ok("%#v of a map", '{{printf "%#v" .M}}', 'map[string]interface {}{"one":1, "three":3, "two":2}'),
    ok("%#v of a string", '{{printf "%#v" "x"}}', '"x"'),
    ok("%q of an int", '{{printf "%q" 65}}', "'A'"),
    ok("zero-padded float", '{{printf "%08.3f" 3.14159}}', "0003.142"),
    ok("%d of a float", '{{printf "%d" 1.5}}', "%!d(float64=1.5)"),
    ok("%s of a bool", '{{printf "%s" true}}', "%!s(bool=true)"),
    ok("%T of Sprig arithmetic", '{{printf "%T" (add 1 2)}}', "int64"),
    ok(
        "DSN",
        '{{printf "postgres://%s:%s@db:5432/app" .Secrets.username .Secrets.password}}',
        "postgres://admin:s3cr3t@db:5432/app",
    ),
]

PARSE_ERRORS = [
    err("function not defined", "{{foo}}", 'template: t:1: function "foo" not defined'),
    err("env is disabled", '{{env "HOME"}}', 'template: t:1: function "env" not defined'),
    err("expandenv is disabled", '{{expandenv "$HOME"}}', 'template: t:1: function "expandenv" not defined'),
    err("no clock", "{{now}}", 'template: t:1: function "now" not defined'),
    err("line of a later error", "a\nb\n{{foo}}", 'template: t:3: function "foo" not defined'),
    err("unclosed action", "{{.X", "template: t:1: unclosed action"),
    err("unclosed action over lines", "{{.X\n\n", "template: t:3: unclosed action started at t:1"),
    err(
        "Go: unclosed3",
        'line1\n{{"x"\n"y"\n',
        "template: unclosed3:4: unclosed action started at unclosed3:2",
        name="unclosed3",
    ),
    err(
        "Go: unclosed4",
        "{{\n\n\n\n\n",
        "template: unclosed4:6: unclosed action started at unclosed4:1",
        name="unclosed4",
    ),
    err("Go: unclosed1", "line1\n{{", "template: unclosed1:2: unclosed action", name="unclosed1"),
    err("Go: var1", "line1\n{{\nx\n}}", 'template: var1:3: function "x" not defined', name="var1"),
    err("Go: comment2", "{{/*\nhello\n}}", "template: comment2:1: unclosed comment", name="comment2"),
    err("Go: lparen", "{{.X (1 2 3}}", "template: t:1: unclosed left paren"),
    err("Go: rparen", "{{.X 1 2 3 ) }}", "template: t:1: unexpected right paren"),
    err("stray brace", "{{.X}", 'template: t:1: unexpected "}" in operand'),
    err("unterminated string", '{{"abc}}', "template: t:1: unterminated quoted string"),
    err(
        "Go: unterminated raw string",
        "hello\n\n{{`unterminated\n\n\n\n}}\n some more\n\n",
        "template: X:3: unterminated raw quoted string",
        name="X",
    ),
    err("unclosed comment", "{{/* unclosed", "template: t:1: unclosed comment"),
    err("comment not alone", "{{/* c */ x}}", "template: t:1: comment ends before closing delimiter"),
    err("unclosed paren", "{{(1}}", "template: t:1: unclosed left paren"),
    err("unexpected right paren", "{{1)}}", "template: t:1: unexpected right paren"),
    err("bad character", "{{#}}", 'template: t:1: unexpected "#" in command'),
    err(
        "constant in a later pipeline stage",
        "{{.X | 1}}",
        "template: t:1: non executable command in pipeline stage 2",
    ),
    err("bad number", "{{3.x}}", 'template: t:1: bad number syntax: "3.x"'),
    err("field on a literal", '{{"a".x}}', 'template: t:1: unexpected . after term "\\"a\\""'),
    err("field on nil", "{{nil.x}}", 'template: t:1: unexpected . after term "nil"'),
    err("empty action", "{{}}", "template: t:1: missing value for command"),
    err("empty range", "{{range}}{{end}}", "template: t:1: missing value for range"),
    err(
        "too many declarations in with",
        "{{with $x, $y := 1}}{{end}}",
        "template: t:1: too many declarations in with",
    ),
    err("declare without variable", "{{ := 1}}", 'template: t:1: unexpected ":=" in command'),
    err("bad escape", '{{"a\\qb"}}', "template: t:1: invalid syntax"),
    err("bad char constant", "{{'ab'}}", "template: t:1: malformed character constant: 'ab'"),
]

# Go's parse_test.go errorTests state a part of each message.
GO_PARSE_ERROR_PARTS = [
    err("Go parse: rparen2", "{{(.X 1 2 3", "unclosed action", part=True),
    err("Go parse: space", "{{`x`3}}", "in operand", part=True),
    err("Go parse: idchar", "{{a#}}", "'#'", part=True),
    err("Go parse: charconst", "{{'a}}", "unterminated character constant", part=True),
    err("Go parse: stringconst", '{{"a}}', "unterminated quoted string", part=True),
    err("Go parse: rawstringconst", "{{`a}}", "unterminated raw quoted string", part=True),
    err("Go parse: number", "{{0xi}}", "number syntax", part=True),
    err(
        "Go parse: multidefine",
        "{{define `a`}}a{{end}}{{define `a`}}b{{end}}",
        "multiple definition of template",
        part=True,
    ),
    err("Go parse: eof", "{{range .X}}", "unexpected EOF", part=True),
    err("Go parse: variable", "{{$x := 23}}{{with $x.y := 3}}{{$x 23}}{{end}}", 'unexpected ":="', part=True),
    err("Go parse: multidecl", "{{$a,$b,$c := 23}}", "too many declarations", part=True),
    err("Go parse: undefvar", "{{$a}}", "undefined variable", part=True),
    err("Go parse: wrongdot", "{{true.any}}", "unexpected . after term", part=True),
    err("Go parse: wrongpipeline", "{{12|false}}", "non executable command in pipeline", part=True),
    err("Go parse: emptypipeline", "{{ ( ) }}", "missing value for parenthesized pipeline", part=True),
    err(
        "Go parse: multilinerawstring",
        "{{ $v := `\n` }} {{",
        "multilinerawstring:2: unclosed action",
        name="multilinerawstring",
        part=True,
    ),
    err("Go parse: rangeundefvar", "{{range $k}}{{end}}", "undefined variable", part=True),
    err("Go parse: rangeundefvars", "{{range $k, $v}}{{end}}", "undefined variable", part=True),
    err("Go parse: rangemissingvalue1", "{{range $k,}}{{end}}", "missing value for range", part=True),
    err("Go parse: rangemissingvalue2", "{{range $k, $v := }}{{end}}", "missing value for range", part=True),
    err(
        "Go parse: rangenotvariable1",
        "{{range $k, .}}{{end}}",
        "range can only initialize variables",
        part=True,
    ),
    err(
        "Go parse: rangenotvariable2",
        "{{range $k, 123 := .}}{{end}}",
        "range can only initialize variables",
        part=True,
    ),
    err(
        "Go parse: unclosed2",
        "line1\n{{define `x`}}line2\n{{",
        "unclosed2:3: unclosed action",
        name="unclosed2",
        part=True,
    ),
    err("Go exec: ideal too big", "{{typeOf 0x8000000000000000}}", "overflows int", part=True),
    err("Go exec: nil action", "{{nil}}", "nil is not a command", part=True),
    err("Go exec: map key with args", "{{.M.one 1}}", "is not a method but has arguments", part=True),
    err("Go exec: bug7b", "{{$x := 1}}{{$x 2}}", "can't give argument to non-function $x", part=True),
    err("Go exec: bug7c", "{{$x := 1}}{{3 | $x}}", "can't give argument to non-function $x", part=True),
    err("Go exec: bug16a", "{{true|printf}}", "wrong type for value; expected string; got bool", part=True),
    err("Go exec: bug16c", "{{1.1|printf}}", "wrong type for value; expected string; got float64", part=True),
    err(
        "Go exec: slice[WRONG]",
        "{{index .L `hello`}}",
        "cannot index slice/array with type string",
        part=True,
    ),
    err("Go exec: slice[nil]", "{{index .L nil}}", "cannot index slice/array with nil", part=True),
    err("Go exec: map[nil]", "{{index .M nil}}", "value is nil; should be of type string", part=True),
    err(
        "Go exec: bug14b",
        "{{$x := 1.5}}{{$x.anything}}",
        "can't evaluate field anything in type float64",
        part=True,
    ),
]

GO_EXEC_MORE = [
    ok(
        "Go: ideal int type",
        "{{typeOf 3}} {{typeOf 1.0}} {{typeOf 1e1}} {{typeOf 0xef}}",
        "int float64 float64 int",
    ),
    ok("Go: dot int", "<{{.}}>", "<13>", 13),
    ok("Go: dot float", "<{{.}}>", "<15.1>", 15.1),
    ok("Go: dot bool", "<{{.}}>", "<true>", True),
    ok("Go: dot slice", "<{{.}}>", "<[-1 -2 -3]>", [-1, -2, -3]),
    ok("Go: dot map", "<{{.}}>", "<map[two:22]>", {"two": 22}),
    ok("Go: $ int", "{{$}}", "123", 123),
    ok("Go: declare in action", "{{$x := $.Secrets.username}}{{$x}}", "admin"),
    ok("Go: parens in pipeline", "{{printf `%d %d %d` (1) (2 | add 3) (add 4 (add 5 6))}}", "1 5 15"),
    ok("Go: parens $ in paren", "{{($).S}}", "hello"),
    ok("Go: with $x int", "{{with $x := .I}}{{$x}}{{end}}", "17"),
    ok("Go: with variable and action", "{{with $x := $}}{{$y := $.S}}{{$y}}{{end}}", "hello"),
    ok("Go: range []bool", "{{range .X}}-{{.}}-{{end}}", "-true--false-", {"X": [True, False]}),
    ok("Go: printf dot", '{{with .I}}{{printf "%d" .}}{{end}}', "17"),
    ok("Go: printf var", '{{with $x := .I}}{{printf "%d" $x}}{{end}}', "17"),
    ok(
        "Go: html pipeline",
        '{{printf "<script>alert(\\"XSS\\");</script>" | html}}',
        "&lt;script&gt;alert(&#34;XSS&#34;);&lt;/script&gt;",
    ),
    ok("Go: bug16g", '{{"aaa" | printf "%s%s" "bbb"}}', "bbbaaa"),
    ok("Go: map lower-case key", "{{.cause}}", "neglect", {"cause": "neglect"}),
    ok(
        "js escapes angle brackets",
        '{{js "<a>"}}',
        "\\u003Ca\\u003E",
        unclear="Go releases before 1.x wrote \\x3C",
    ),
    ok("Go: or as if true", '{{or .L "slice is empty"}}', "[3 4 5]"),
    ok("Go: if map unset", "{{if .M.none}}NON-ZERO{{else}}ZERO{{end}}", "ZERO"),
    ok("Go: if map not unset", "{{if not .M.none}}ZERO{{else}}NON-ZERO{{end}}", "ZERO"),
]

EXEC_ERRORS = [
    err(
        "line and column",
        "line1\n  {{index .L 5}}",
        'template: t:2:4: executing "t" at <index .L 5>: error calling index: index out of range: 5',
    ),
    err(
        "fail", '{{fail "boom"}}', 'template: t:1:2: executing "t" at <fail "boom">: error calling fail: boom'
    ),
    err(
        "piped value of the wrong type",
        "{{ .I | upper }}",
        'template: t:1:8: executing "t" at <upper>: wrong type for value; expected string; got int',
    ),
    err(
        "argument of the wrong type",
        "{{ upper .I }}",
        'template: t:1:9: executing "t" at <.I>: wrong type for value; expected string; got int',
    ),
    err(
        "constant of the wrong type",
        "{{ upper 1 }}",
        'template: t:1:9: executing "t" at <1>: expected string; found 1',
    ),
    err(
        "string where an int is wanted",
        '{{ repeat "2" "x" }}',
        'template: t:1:10: executing "t" at <"2">: expected integer; found "2"',
    ),
    err(
        "float where an int is wanted",
        '{{ repeat 1.5 "x" }}',
        'template: t:1:10: executing "t" at <1.5>: expected integer; found 1.5',
    ),
    err(
        "int64 where an int is wanted",
        '{{ repeat (add 1 1) "x" }}',
        # Go names the last node it evaluated: add's second argument.
        'template: t:1:17: executing "t" at <1>: wrong type for value; expected int; got int64',
    ),
    err("nil command", "{{ nil }}", 'template: t:1:3: executing "t" at <nil>: nil is not a command'),
    err(
        "wrong arg count for a Sprig function",
        '{{ trimPrefix "a" }}',
        'template: t:1:3: executing "t" at <trimPrefix>: wrong number of args for trimPrefix: want 2 got 1',
    ),
    err(
        "division by zero",
        "{{ div 1 0 }}",
        'template: t:1:3: executing "t" at <div 1 0>: error calling div: runtime error: integer divide by zero',
    ),
    err(
        "no such template at the top",
        "x",
        'template: no template "other" associated with template "t"',
    ),
]

_DOCKER = {
    "Secrets": {
        "auths": {
            "host1": {"password": "pass1", "username": "bob"},
            "host2": {"password": "pass2", "username": "alice"},
        }
    }
}
_DOCKER_TEMPLATE = """{{- $config := dict -}}
{{- range $k, $v := (get .Secrets "auths") -}}
{{- $username := get $v "username" -}}
{{- $password := get $v "password" -}}
{{- $_ := set $config $k (
dict
"username" $username
"password" $password
"auth" (list $username ":" $password | join "" | b64enc)
)
-}}
{{- end -}}
{{- dict "auths" $config | mustToJson -}}"""

SPRIG = [
    ok("VSO doc: printf get", '{{- printf "password=%s" (get .Secrets "password") -}}', "password=s3cr3t"),
    ok(
        "VSO example: dockerconfigjson",
        _DOCKER_TEMPLATE,
        '{"auths":{"host1":{"auth":"Ym9iOnBhc3Mx","password":"pass1","username":"bob"},'
        '"host2":{"auth":"YWxpY2U6cGFzczI=","password":"pass2","username":"alice"}}}',
        _DOCKER,
    ),
    ok(
        "VSO style: every secret as KEY=value",
        "{{- range $k, $v := .Secrets }}{{ $k | upper }}={{ $v }}\n{{ end -}}",
        "PASSWORD=s3cr3t\nUSERNAME=admin\n",
    ),
    ok(
        "case",
        '{{ "Hello" | upper }} {{ "Hello" | lower }} {{ title "hello world-foo" }}',
        "HELLO hello Hello World-Foo",
    ),
    ok("b64enc", '{{ b64enc "admin:s3cr3t" }}', "YWRtaW46czNjcjN0"),
    ok("b64dec", '{{ b64dec "YWRtaW46czNjcjN0" }}', "admin:s3cr3t"),
    ok(
        "b64dec of bad input returns Go's error text",
        '{{ b64dec "!!" }}',
        "illegal base64 data at input byte 0",
    ),
    ok("b32enc", '{{ b32enc "hi" }}', "NBUQ===="),
    ok(
        "trims",
        '{{ trim "  x  " }}|{{ trimPrefix "ab" "abc" }}|{{ trimSuffix "c" "abc" }}|{{ trimAll "$" "$5.00$" }}',
        "x|c|ab|5.00",
    ),
    ok("quote and squote skip nil", '{{ quote "a" 1 nil }} {{ squote "a" 1 }}', "\"a\" \"1\" 'a' '1'"),
    ok(
        "default",
        '{{ default "x" .ES }} {{ default "x" .S }} {{ .Missing | default "d" }} {{ default 5 0 }}',
        "x hello d 5",
    ),
    ok(
        "empty",
        '{{ empty .E }} {{ empty .L }} {{ empty 0 }} {{ empty "a" }} {{ empty .Missing }}',
        "true false true false true",
    ),
    ok("coalesce", '{{ coalesce .ES .Z "c" }} {{ coalesce .ES }}', "c <no value>"),
    ok("toJson of a map", "{{ toJson .M }}", '{"one":1,"three":3,"two":2}'),
    ok("toJson of a slice and nil", "{{ toJson .L }} {{ toJson .N }}", "[3,4,5] null"),
    ok("toJson escapes HTML", '{{ toJson "<a&b>" }}', '"\\u003ca\\u0026b\\u003e"'),
    ok("toRawJson does not", '{{ toRawJson "<a&b>" }}', '"<a&b>"'),
    ok(
        "toPrettyJson",
        '{{ toPrettyJson (dict "a" 1 "b" (list 1 2)) }}',
        '{\n  "a": 1,\n  "b": [\n    1,\n    2\n  ]\n}',
    ),
    ok("toJson floats", "{{ toJson (list 1.0 0.1 1e-7 1e21 .F) }}", "[1,0.1,1e-7,1e+21,1.5]"),
    ok("fromJson", '{{ (fromJson "{\\"a\\":{\\"b\\":[1,2]}}").a.b }}', "[1 2]"),
    ok("fromJson numbers are float64", '{{ fromJson "1" | printf "%T" }}', "float64"),
    ok(
        "fromJson of bad input is nil",
        '{{ fromJson "x" }} {{ fromJson "x" | printf "%v" }}',
        "<no value> <nil>",
    ),
    ok("get", '{{ get .Secrets "password" }}|{{ get .Secrets "nope" }}', "s3cr3t|"),
    ok("hasKey", '{{ hasKey .Secrets "username" }} {{ hasKey .Secrets "x" }}', "true false"),
    ok("keys sorted", '{{ keys .M | sortAlpha | join "," }}', "one,three,two"),
    ok("values", '{{ values (dict "a" 1) }}', "[1]"),
    ok("join", '{{ join "," .L }} {{ list "a" "b" | join "-" }}', "3,4,5 a-b"),
    ok("split", '{{ $p := split "." "a.b.c" }}{{ $p._1 }}', "b"),
    ok("splitList", '{{ splitList "," "a,b" }} {{ splitList "," "a,b" | printf "%T" }}', "[a b] []string"),
    ok("replace", '{{ replace " " "-" "a b c" }}', "a-b-c"),
    ok(
        "contains/hasPrefix/hasSuffix",
        '{{ contains "ell" "hello" }} {{ hasPrefix "he" "hello" }} {{ hasSuffix "lo" "hello" }}',
        "true true true",
    ),
    ok("indent", '{{ indent 2 "a\\nb" }}', "  a\n  b"),
    ok("nindent", '{{ nindent 2 "a\\nb" }}', "\n  a\n  b"),
    ok("list", '{{ list 1 "a" nil }}', "[1 a <nil>]"),
    ok("dict with odd arguments", '{{ dict "a" 1 "b" }}', "map[a:1 b:]"),
    ok("set", '{{ $d := dict "a" 1 }}{{ $_ := set $d "b" 2 }}{{ $d }}', "map[a:1 b:2]"),
    ok("unset", '{{ $d := dict "a" 1 "b" 2 }}{{ $_ := unset $d "a" }}{{ $d }}', "map[b:2]"),
    ok("pluck", '{{ pluck "a" (dict "a" 1) (dict "b" 2) (dict "a" 3) }}', "[1 3]"),
    ok("merge keeps the destination", '{{ merge (dict "a" 1) (dict "a" 2 "b" 3) }}', "map[a:1 b:3]"),
    ok("mergeOverwrite", '{{ mergeOverwrite (dict "a" 1) (dict "a" 2 "b" 3) }}', "map[a:2 b:3]"),
    ok("first and last", "{{ first .L }} {{ last .L }} {{ first .E }}", "3 5 <no value>"),
    ok("uniq", "{{ uniq (list 1 2 1 3 2) }}", "[1 2 3]"),
    ok("append and prepend", "{{ append .L 6 }} {{ prepend .L 2 }}", "[3 4 5 6] [2 3 4 5]"),
    ok("repeat", '{{ repeat 3 "ab" }}', "ababab"),
    ok("substr", '{{ substr 1 3 "hello" }}', "el"),
    ok("trunc", '{{ trunc 3 "hello" }} {{ trunc -2 "hello" }}', "hel lo"),
    ok("nospace", '{{ nospace "a b\\tc" }}', "abc"),
    ok("cat", '{{ cat "a" 1 nil "b" }}', "a 1 b"),
    ok("toString", '{{ toString 5 | printf "%T" }}', "string"),
    ok(
        "conversions",
        '{{ atoi "42" | add 1 }} {{ int "12" }} {{ float64 "1.5" }} {{ atoi "x" }}',
        "43 12 1.5 0",
    ),
    ok(
        "integer arithmetic",
        "{{ add 1 2 3 }} {{ sub 5 7 }} {{ mul 2 3 4 }} {{ div 7 2 }} {{ mod 7 3 }} {{ max 1 5 3 }} {{ min 4 2 8 }}",
        "6 -2 24 3 1 5 2",
    ),
    ok("division truncates toward zero", "{{ div -7 2 }} {{ mod -7 3 }}", "-3 -1"),
    ok("add truncates floats", "{{ add 1.9 1.9 }} {{ add1 5 }}", "2 6"),
    ok("ternary", '{{ ternary "y" "n" true }} {{ false | ternary "y" "n" }}', "y n"),
    ok(
        "sha256sum",
        '{{ sha256sum "hello" }}',
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
    ),
    ok("adler32sum", '{{ adler32sum "hello" }}', "103547413"),
    ok("until", "{{ until 3 }} {{ range $i := until 3 }}{{ $i }}{{ end }}", "[0 1 2] 012"),
    ok("untilStep", "{{ untilStep 0 10 3 }}", "[0 3 6 9]"),
    ok("seq", "{{ seq 3 }} {{ seq 2 5 }} {{ seq 5 2 }}", "1 2 3 2 3 4 5 5 4 3 2"),
    ok(
        "types",
        '{{ typeOf .M }} {{ kindOf .L }} {{ kindIs "string" .S }}',
        "map[string]interface {} slice true",
    ),
    ok(
        "list helpers",
        '{{ has 4 .L }} {{ without .L 4 }} {{ compact (list 0 1 "" "a") }} {{ reverse .L }} {{ rest .L }} {{ initial .L }}',
        "true [3 5] [1 a] [5 4 3] [4 5] [3 4]",
    ),
    ok("Sprig slice replaces Go's", "{{ slice .L 1 }} {{ slice .L 1 2 }}", "[4 5] [4]"),
    ok("dig", '{{ dig "a" "b" "def" (dict "a" (dict "b" 1)) }} {{ dig "x" "def" (dict) }}', "1 def"),
    ok("sortAlpha", '{{ sortAlpha (list "b" "a" "C") }}', "[C a b]"),
    ok(
        "paths",
        '{{ base "/a/b.txt" }} {{ dir "/a/b.txt" }} {{ ext "/a/b.txt" }} {{ clean "/a/../b" }}',
        "b.txt /a .txt /b",
    ),
    ok("toDecimal", '{{ toDecimal "0777" }}', "511"),
    ok("round", "{{ round 3.14159 2 }}", "3.14"),
    ok("int64 from add", '{{ $x := add 1 2 }}{{ printf "%T" $x }}', "int64"),
    ok("first of a piped list", '{{ "a,b" | splitList "," | first }}', "a"),
    ok("plural", '{{ plural "one" "many" 1 }} {{ plural "one" "many" 2 }}', "one many"),
    ok("mustToJson", "{{ mustToJson .L }}", "[3,4,5]"),
    ok("toJson of bytes is base64", "{{ toJson .X }}", '"aGk="', {"X": b"hi"}),
    ok(
        "JSON config",
        '{{ dict "user" .Secrets.username "port" 5432 | toJson }}',
        '{"port":5432,"user":"admin"}',
    ),
    err(
        "first of a string",
        '{{ first "abc" }}',
        'template: t:1:3: executing "t" at <first "abc">: error calling first: Cannot find first on type string',
    ),
]

# Examples from Sprig's documentation (masterminds.github.io/sprig).
SPRIG_DOCS = [
    ok("Sprig doc: trim", '{{ trim "   hello    " }}', "hello"),
    ok("Sprig doc: trimAll", '{{ trimAll "$" "$5.00" }}', "5.00"),
    ok("Sprig doc: trimSuffix", '{{ trimSuffix "-" "hello-" }}', "hello"),
    ok("Sprig doc: trimPrefix", '{{ trimPrefix "-" "-hello" }}', "hello"),
    ok("Sprig doc: upper lower", '{{ upper "hello" }} {{ lower "HELLO" }}', "HELLO hello"),
    ok(
        "Sprig doc: title untitle",
        '{{ title "hello world" }}|{{ untitle "Hello World" }}',
        "Hello World|hello world",
    ),
    ok("Sprig doc: repeat", '{{ repeat 3 "hello" }}', "hellohellohello"),
    ok("Sprig doc: substr", '{{ substr 0 5 "hello world" }}', "hello"),
    ok("Sprig doc: nospace", '{{ nospace "hello w o r l d" }}', "helloworld"),
    ok("Sprig doc: trunc", '{{ trunc 5 "hello world" }}|{{ trunc -5 "hello world" }}', "hello|world"),
    ok("Sprig doc: abbrev", '{{ abbrev 5 "hello world" }}', "he..."),
    ok("Sprig doc: wrapWith", '{{ wrapWith 5 "\\t" "Hello World" }}', "Hello\tWorld"),
    ok(
        "wrap",
        '{{ wrap 10 "The quick brown fox jumps over the lazy dog" }}',
        "The quick\nbrown fox\njumps over\nthe lazy\ndog",
    ),
    ok("wrap keeps long words", '{{ wrap 3 "abcdef gh" }}', "abcdef\ngh"),
    ok("wrapWith splits long words", '{{ wrapWith 3 "|" "abcdef gh" }}', "abc|def|gh"),
    ok("Sprig doc: abbrevboth", '{{ abbrevboth 5 10 "1234 5678 9123" }}', "...5678..."),
    ok("Sprig doc: initials", '{{ initials "First Try" }}', "FT"),
    ok("Sprig doc: swapcase", '{{ swapcase "This Is A.Test" }}', "tHIS iS a.tEST"),
    ok(
        "Sprig doc: contains",
        '{{ contains "cat" "catch" }} {{ hasPrefix "cat" "catch" }} {{ hasSuffix "cat" "catch" }}',
        "true true false",
    ),
    ok("Sprig doc: quote squote", '{{ quote "hi" }} {{ squote "hi" }}', "\"hi\" 'hi'"),
    ok("Sprig doc: cat", '{{ cat "hello" "beautiful" "world" }}', "hello beautiful world"),
    ok("Sprig doc: replace", '{{ "I Am Henry VIII" | replace " " "-" }}', "I-Am-Henry-VIII"),
    ok("Sprig doc: plural", '{{ len .L | plural "one anchovy" "many anchovies" }}', "many anchovies"),
    ok("Sprig doc: splitList", '{{ splitList "$" "foo$bar$baz" }}', "[foo bar baz]"),
    ok(
        "Sprig doc: split",
        '{{ $a := split "$" "foo$bar$baz" }}{{ $a._0 }} {{ $a._1 }} {{ $a._2 }}',
        "foo bar baz",
    ),
    ok("Sprig doc: splitn", '{{ $a := splitn "$" 2 "foo$bar$baz" }}{{ $a._0 }} {{ $a._1 }}', "foo bar$baz"),
    ok("Sprig doc: join", '{{ list "hello" "world" | join "_" }}', "hello_world"),
    ok("Sprig doc: join mixed", '{{ list 1 2 3 | join "+" }}', "1+2+3"),
    ok("Sprig doc: sortAlpha", '{{ list "c" "a" "b" | sortAlpha }}', "[a b c]"),
    ok("Sprig doc: until", "{{ until 5 }}", "[0 1 2 3 4]"),
    ok("Sprig doc: untilStep", "{{ untilStep 3 6 2 }}", "[3 5]"),
    ok(
        "Sprig doc: seq",
        "{{ seq 5 }}|{{ seq -3 }}|{{ seq 0 2 }}|{{ seq 2 -2 }}|{{ seq 0 2 10 }}|{{ seq 0 -2 -5 }}",
        "1 2 3 4 5|1 0 -1 -2 -3|0 1 2|2 1 0 -1 -2|0 2 4 6 8 10|0 -2 -4",
    ),
    ok(
        "Sprig doc: first rest last initial",
        "{{ first (list 1 2 3 4 5) }} {{ rest (list 1 2 3 4 5) }} {{ last (list 1 2 3 4 5) }} {{ initial (list 1 2 3 4 5) }}",
        "1 [2 3 4 5] 5 [1 2 3 4]",
    ),
    ok(
        "Sprig doc: append prepend concat",
        "{{ append (list 1 2 3) 6 }} {{ prepend (list 1 2 3) 0 }} {{ concat (list 1 2 3) (list 4 5) (list 6) }}",
        "[1 2 3 6] [0 1 2 3] [1 2 3 4 5 6]",
    ),
    ok(
        "Sprig doc: reverse uniq without has compact",
        '{{ reverse (list 1 2 3) }} {{ list 1 1 1 2 | uniq }} {{ without (list 1 2 3 4) 1 3 }} {{ has 4 (list 1 2 3 4) }} {{ compact (list 1 "" "foo" true) }}',
        "[3 2 1] [1 2] [2 4] true [1 foo true]",
    ),
    ok(
        "Sprig doc: slice",
        "{{ slice (list 1 2 3 4 5) 1 3 }} {{ slice (list 1 2 3 4 5) 3 }} {{ slice (list 1 2 3 4 5) 1 }} {{ slice (list 1 2 3 4 5) }}",
        "[2 3] [4 5] [2 3 4 5] [1 2 3 4 5]",
    ),
    ok("Sprig doc: chunk", "{{ chunk 3 (list 1 2 3 4 5 6 7 8) }}", "[[1 2 3] [4 5 6] [7 8]]"),
    ok(
        "Sprig doc: dict get set unset hasKey",
        '{{ $d := dict "name1" "value1" "name2" "value2" }}{{ get $d "name1" }} {{ $_ := set $d "name3" "value3" }}{{ $_ := unset $d "name1" }}{{ $d }} {{ hasKey $d "name2" }}',
        "value1 map[name2:value2 name3:value3] true",
    ),
    ok(
        "Sprig doc: pluck",
        '{{ $n1 := dict "name1" "value1" }}{{ $n2 := dict "name1" "value2" }}{{ pluck "name1" $n1 $n2 }}',
        "[value1 value2]",
    ),
    ok(
        "Sprig doc: dig",
        '{{ $d := dict "user" (dict "role" (dict "humanName" "curator")) }}{{ dig "user" "role" "humanName" "guest" $d }} {{ dig "user" "missing" "guest" $d }}',
        "curator guest",
    ),
    ok(
        "Sprig doc: pick omit",
        '{{ $d := dict "name1" "value1" "name2" "value2" "name3" "value3" }}{{ pick $d "name1" "name2" }} {{ omit $d "name1" "name3" }}',
        "map[name1:value1 name2:value2] map[name2:value2]",
    ),
    ok(
        "Sprig doc: merge",
        '{{ $dst := dict "default" "default" "overwrite" "me" "key" "true" }}{{ $src := dict "overwrite" "overwritten" "key" "false" }}{{ merge $dst $src }}',
        "map[default:default key:true overwrite:me]",
    ),
    ok(
        "Sprig doc: mergeOverwrite",
        '{{ $dst := dict "default" "default" "overwrite" "me" "key" "true" }}{{ $src := dict "overwrite" "overwritten" "key" "false" }}{{ mergeOverwrite $dst $src }}',
        "map[default:default key:false overwrite:overwritten]",
    ),
    ok("Sprig doc: ternary", '{{ true | ternary "foo" "bar" }} {{ false | ternary "foo" "bar" }}', "foo bar"),
    ok("Sprig doc: default", '{{ "" | default "foo" }} {{ "bar" | default "foo" }}', "foo bar"),
    ok("Sprig doc: coalesce", '{{ coalesce 0 1 2 }} {{ coalesce .Missing .N "fallback" }}', "1 fallback"),
    ok(
        "Sprig doc: all any",
        '{{ all 0 1 2 }} {{ any 0 1 2 }} {{ all 1 "a" }} {{ any 0 "" }}',
        "false true true false",
    ),
    ok(
        "Sprig doc: b64 b32",
        '{{ b64enc "hello" }} {{ b64dec "aGVsbG8=" }} {{ b32enc "hello" }} {{ b32dec "NBSWY3DP" }}',
        "aGVsbG8= hello NBSWY3DP hello",
    ),
    ok("Sprig doc: sha1sum", '{{ sha1sum "Hello world!" }}', "d3486ae9136e7856bc42212385ea797094475802"),
    ok(
        "Sprig doc: sha256sum",
        '{{ sha256sum "Hello world!" }}',
        "c0535e4be2b79ffd93291305436bf889314e4a3faec05ecffcbb7df31ad9e51a",
    ),
    ok(
        "Sprig doc: math",
        "{{ add 1 2 }} {{ add1 3 }} {{ sub 5 3 }} {{ div 6 3 }} {{ mod 7 3 }} {{ mul 2 3 }} {{ max 1 2 3 }} {{ min 1 2 3 }}",
        "3 4 2 2 1 6 3 1",
    ),
    ok(
        "Sprig doc: float math",
        '{{ addf 1.5 2 }} {{ subf 7.5 2 3 | printf "%v" }} {{ mulf 1.5 2 }} {{ divf 10 4 }} {{ maxf 1 2.5 3 }} {{ minf 1.5 2 3 }}',
        "3.5 2.5 3 2.5 3 1.5",
    ),
    ok(
        "decimal float math",
        "{{ addf 0.1 0.2 }} {{ subf 0.3 0.1 }} {{ divf 10 4 2 }} {{ round -123.5 0 }} {{ round 2.5 0 }}",
        "0.3 0.2 1.25 -124 3",
    ),
    err(
        "divf by zero",
        "{{ divf 1 0 }}",
        'template: t:1:3: executing "t" at <divf 1 0>: error calling divf: decimal division by 0',
    ),
    ok(
        "Sprig doc: floor ceil round",
        "{{ floor 123.9999 }} {{ ceil 123.001 }} {{ round 123.555555 3 }} {{ round 123.5555 3 0.0005 }}",
        "123 124 123.556 123.556",
    ),
    ok("Sprig doc: toDecimal", '{{ toDecimal "0777" }}', "511"),
    ok("Sprig doc: duration", '{{ duration "95" }}', "1m35s"),
    ok(
        "Sprig doc: urlParse",
        '{{ urlParse "http://admin:secret@server.com:8080/api?list=false#anchor" }}',
        "map[fragment:anchor host:server.com:8080 hostname:server.com opaque: path:/api query:list=false scheme:http userinfo:admin:secret]",
    ),
    ok(
        "Sprig doc: urlJoin",
        '{{ urlJoin (dict "fragment" "fragment" "host" "host:80" "path" "/path" "query" "query" "scheme" "http") }}',
        "http://host:80/path?query#fragment",
    ),
    ok(
        "urlJoin escapes the path",
        '{{ urlJoin (dict "scheme" "https" "host" "h" "path" "/a b") }}',
        "https://h/a%20b",
    ),
    ok("urlParse of an opaque URL", '{{ (urlParse "mailto:joe@example.com").opaque }}', "joe@example.com"),
    ok(
        "urlParse unescapes the path and re-escapes userinfo",
        '{{ $u := urlParse "postgres://u:p%40ss@db:5432/a%20b?sslmode=require" }}{{ $u.userinfo }} {{ $u.path }} {{ $u.hostname }} {{ $u.query }}',
        "u:p%40ss /a b db sslmode=require",
    ),
    err(
        "urlParse error leaves the URL out",
        '{{ urlParse "http://u:secret@h/%zz" }}',
        'template: t:1:3: executing "t" at <urlParse "http://u:secret@h/%zz">: error calling urlParse: unable to parse url: invalid URL escape',
    ),
    ok(
        "Sprig doc: durationRound", '{{ durationRound "2h10m5s" }} {{ durationRound "2400h10m5s" }}', "2h 3mo"
    ),
    ok(
        "durations as Go prints them",
        '{{ duration "0" }} {{ duration "3600" }} {{ duration "90061" }} {{ duration (int64 45) }} {{ duration "-5" }}',
        "0s 1h0m0s 25h1m1s 45s -5s",
    ),
    ok(
        "durationRound units",
        '{{ durationRound "1.5h" }} {{ durationRound "90s" }} {{ durationRound "1s" }} {{ durationRound "bad" }}',
        "1h 1m 0s 0s",
    ),
    ok(
        "duration of an int literal",
        "{{ duration 95 }}",
        "0s",
        unclear="Sprig's type switch takes int64 and string; a template int reads as 0",
    ),
    ok(
        "Sprig doc: kindOf kindIs typeOf typeIs",
        '{{ kindOf "hello" }} {{ kindIs "int" 123 }} {{ typeOf 1.5 }} {{ typeIs "string" "x" }} {{ typeIsLike "string" "x" }}',
        "string true float64 true true",
    ),
    ok(
        "Sprig doc: deepEqual",
        "{{ deepEqual (list 1 2 3) (list 1 2 3) }} {{ deepEqual (list 1 2) (list 1 3) }}",
        "true false",
    ),
    ok(
        "Sprig doc: paths",
        '{{ base "foo/bar/baz" }} {{ dir "foo/bar/baz" }} {{ clean "foo/bar/../baz" }} {{ ext "foo.bar" }} {{ isAbs "/foo" }}',
        "baz foo/bar foo/baz .bar true",
    ),
]

# Sprig's regex functions, with Go's regexp documentation examples.
REGEX = [
    ok("regexMatch", '{{ regexMatch "^[a-z]+@[a-z]+\\\\.com$" "bob@example.com" }}', "true"),
    ok("regexFind", '{{ regexFind "[0-9]+" "abc123def456" }}', "123"),
    ok(
        "Go doc: FindAllString",
        '{{ regexFindAll "a." "paranormal" -1 }} {{ regexFindAll "a." "paranormal" 2 }} {{ regexFindAll "a." "graal" -1 }} {{ regexFindAll "a." "none" -1 }}',
        "[ar an al] [ar an] [aa] []",
    ),
    ok(
        "Go doc: ReplaceAllString",
        '{{ regexReplaceAll "a(x*)b" "-ab-axxb-" "T" }} {{ regexReplaceAll "a(x*)b" "-ab-axxb-" "$1" }} {{ regexReplaceAll "a(x*)b" "-ab-axxb-" "$1W" }} {{ regexReplaceAll "a(x*)b" "-ab-axxb-" "${1}W" }}',
        "-T-T- --xx- --- -W-xxW-",
    ),
    ok(
        "Go doc: ReplaceAllLiteralString",
        '{{ regexReplaceAllLiteral "a(x*)b" "-ab-axxb-" "${1}" }}',
        "-${1}-${1}-",
    ),
    ok(
        "named group in a replacement",
        '{{ regexReplaceAll "(?P<user>[a-z]+)@(?P<host>[a-z.]+)" "bob@example.com" "${host}/${user}" }}',
        "example.com/bob",
    ),
    ok("Go doc: Split", '{{ regexSplit "a*" "abaabaccadaaae" 5 }}', "[ b b c cadaaae]"),
    ok(
        "Go doc: Split pizza",
        '{{ regexSplit "z+" "pizza" -1 }} {{ regexSplit "z+" "pizza" 0 }} {{ regexSplit "z+" "pizza" 1 }} {{ regexSplit "z+" "pizza" 2 }}',
        "[pi a] [] [pizza] [pi a]",
    ),
    ok(
        "Go doc: Split banana",
        '{{ regexSplit "a" "banana" -1 }} {{ regexSplit "a" "banana" 2 }}',
        "[b n n ] [b nana]",
    ),
    ok("empty matches after a match are skipped", '{{ regexReplaceAll "a*" "baaac" "x" }}', "xbxcx"),
    ok("regexQuoteMeta", '{{ regexQuoteMeta "1.5-2.0?" }}', "1\\.5-2\\.0\\?"),
    ok(
        "catastrophic pattern runs in linear time",
        '{{ regexMatch "(a+)+$" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab" }}',
        "false",
    ),
    err(
        "regexMatch of a bad pattern",
        '{{ regexMatch "(" "x" }}',
        'template: t:1:3: executing "t" at <regexMatch "(" "x">: error calling regexMatch: '
        "regexp: Compile(`(`): error parsing regexp: missing closing ): `(`",
    ),
    err(
        "mustRegexMatch of a bad pattern",
        '{{ mustRegexMatch "a**" "x" }}',
        'template: t:1:3: executing "t" at <mustRegexMatch "a**" "x">: error calling mustRegexMatch: '
        "error parsing regexp: invalid nested repetition operator: `**`",
    ),
]

# VSO's own template tests (helpers/template_test.go in hashicorp/vault-secrets-operator): their
# inputs and the outputs VSO asserts, run on the same *helpers.SecretInput shape.
_VSO_SECRETS = {"baz": "Zm9v", "bar": "YnV6", "foo": 1}
_VSO_INPUT = secret_input(
    secrets=_VSO_SECRETS,
    metadata={"custom": {"super": "duper"}},
    wrap_data={"token": "c29tZS10b2tlbg==", "ttl": "1h", "accessor": "some-accessor"},
    annotations={"anno1": "foo"},
    labels={"label1": "baz"},
)
_VSO_HELPER = {"helper": '{{define "helper"}}{{- . | b64dec -}}{{end}}'}
_VSO_REAL_WORLD_HELPER = r"""
{{/*
compose a Postgres URL from SecretInput for this app
*/}}
{{- define "getPgUrl" -}}
{{- $host := get .Annotations "myapp.config/postgres-host" -}}
{{- printf "postgresql://%s:%s@%s/postgres?sslmode=disable" (get .Secrets "username") (get .Secrets "password") $host -}}
{{- end -}}
{{/*
create a Java props from SecretInput for this app
*/}}
{{- define "getAppProps" -}}
{{- $host := get .Annotations "myapp.config/postgres-host" -}}
{{- printf "db.host=%s\n" $host -}}
{{- range $k, $v := .Secrets -}}
{{- printf "db.%s=%s\n" $k $v -}}
{{- end -}}
{{- end -}}
{{/*
create a JSON config from SecretInput for this app
*/}}
{{- define "getAppJson" -}}
{{- $host := get .Annotations "myapp.config/postgres-host" -}}
{{- $copy := .Secrets | mustDeepCopy -}}
{{- $_ := set $copy "host" $host -}}
{{- mustToPrettyJson $copy -}}
{{- end -}}
"""
_VSO_APP_INPUT = secret_input(
    secrets={"username": "alice", "password": "secret"},
    annotations={"myapp.config/postgres-host": "postgres-postgresql.postgres.svc.cluster.local:5432"},
    labels={"myapp/name": "db"},
)
_HOST = "postgres-postgresql.postgres.svc.cluster.local:5432"

# Vault's API client decodes numbers as json.Number (a Go string type), so VSO's templates see
# numeric secret values that way: printed as their JSON text, strings for if/eq, not "string"
# for functions that want one, numbers for Sprig's arithmetic and JSON.
_NUMBERS = vault_data({"n": 1, "f": 1.5, "z": 0, "big": 12345678901234567890})
JSON_NUMBERS = [
    ok(
        "json.Number prints its text",
        '{{ .n }} {{ .f }} {{ .big }} {{ printf "%T" .n }}',
        "1 1.5 12345678901234567890 json.Number",
        _NUMBERS,
    ),
    ok("json.Number in arithmetic", "{{ add .n 1 }} {{ mul .n 3 }} {{ add .f 1 }}", "2 3 1", _NUMBERS),
    ok(
        "json.Number zero is a non-empty string",
        "{{ if .z }}t{{ else }}f{{ end }} {{ empty .z }}",
        "t false",
        _NUMBERS,
    ),
    ok("json.Number to JSON", "{{ toJson . }}", '{"big":12345678901234567890,"f":1.5,"n":1,"z":0}', _NUMBERS),
    ok("json.Number equals a string", '{{ eq .n "1" }} {{ len .big }}', "true 20", _NUMBERS),
    ok(
        "json.Number through toString",
        '{{ toString .n | upper }} {{ printf "%s|%d" .n .n }}',
        "1 1|%!d(json.Number=1)",
        _NUMBERS,
    ),
    err(
        "json.Number compared with an int",
        "{{ eq .n 1 }}",
        'template: t:1:3: executing "t" at <eq .n 1>: error calling eq: incompatible types for comparison',
        _NUMBERS,
    ),
    err(
        "json.Number is not a string parameter",
        "{{ upper .n }}",
        'template: t:1:9: executing "t" at <.n>: wrong type for value; expected string; got json.Number',
        _NUMBERS,
    ),
]

VSO = [
    ok(
        "VSO: helper b64dec baz",
        '{{- template "helper" get .Secrets "baz" -}}',
        "foo",
        _VSO_INPUT,
        extra=_VSO_HELPER,
    ),
    ok(
        "VSO: helper b64dec bar",
        '{{- template "helper" get .Secrets "bar" -}}',
        "buz",
        _VSO_INPUT,
        extra=_VSO_HELPER,
    ),
    ok("VSO: number value", '{{- get .Secrets "foo" -}}', "1", _VSO_INPUT),
    ok(
        "VSO: two helpers",
        '{{template "helper1" . }}_{{template "helper2" . }}',
        "foo_1",
        _VSO_INPUT,
        extra={
            "t1s": '{{define "helper1"}}{{- get .Secrets "baz" | b64dec -}}{{end}}',
            "t2s": '{{define "helper2"}}{{- get .Secrets "foo" -}}{{end}}',
        },
    ),
    ok(
        "VSO: real-world url",
        '{{- template "getPgUrl" . -}}',
        f"postgresql://alice:secret@{_HOST}/postgres?sslmode=disable",
        _VSO_APP_INPUT,
        extra={"helper": _VSO_REAL_WORLD_HELPER},
    ),
    ok(
        "VSO: real-world app.props",
        '{{- template "getAppProps" . -}}',
        f"db.host={_HOST}\ndb.password=secret\ndb.username=alice\n",
        _VSO_APP_INPUT,
        extra={"helper": _VSO_REAL_WORLD_HELPER},
    ),
    ok(
        "VSO: real-world app.json",
        '{{- template "getAppJson" . -}}',
        '{\n  "host": "' + _HOST + '",\n  "password": "secret",\n  "username": "alice"\n}',
        _VSO_APP_INPUT,
        extra={"helper": _VSO_REAL_WORLD_HELPER},
    ),
    ok("VSO: real-world app.name", '{{- get .Labels "myapp/name" -}}', "db", _VSO_APP_INPUT),
    ok(
        "VSO: metadata only",
        '{{- $custom := get .Metadata "custom" -}}\n\t\t\t{{- get $custom "super" -}}',
        "duper",
        _VSO_INPUT,
    ),
    ok(
        "VSO: secret, wrapData and metadata",
        '{{- $custom := get .Metadata "custom" -}}\n\t\t\t{{- printf "%s_%s_%s_%s" (get $custom "super") '
        '(get .Secrets "bar" | b64dec) (get .WrapData "accessor") (get .WrapData "token" | b64dec) -}}\n\t\t\t',
        "duper_buz_some-accessor_some-token",
        _VSO_INPUT,
    ),
    ok(
        "VSO: annotations and labels",
        '{{- printf "%s_%s_%s" (get .Secrets "bar" | b64dec) (get .Annotations "anno1") (get .Labels "label1") -}}',
        "buz_foo_baz",
        _VSO_INPUT,
    ),
    err(
        "misspelt top-level field",
        "{{ .Secret.foo }}",
        'template: t:1:10: executing "t" at <.Secret.foo>: can\'t evaluate field Secret in type *helpers.SecretInput',
        _VSO_INPUT,
    ),
    ok("type of the input", '{{ printf "%T" . }}', "*helpers.SecretInput", _VSO_INPUT),
    err(
        "len of the input",
        "{{ len . }}",
        'template: t:1:3: executing "t" at <len .>: error calling len: len of type helpers.SecretInput',
        _VSO_INPUT,
    ),
    ok(
        "the input printed",
        '{{ . }}|{{ printf "%+v" . }}',
        "&{map[a:1] map[] map[] map[] map[x:y]}|&{Secrets:map[a:1] WrapData:map[] Metadata:map[] Annotations:map[] Labels:map[x:y]}",
        secret_input(secrets={"a": 1}, labels={"x": "y"}),
    ),
    ok(
        "the input as JSON",
        "{{ toJson . }}",
        '{"secrets":{"a":1},"metadata":{},"annotations":{},"labels":{"x":"y"}}',
        secret_input(secrets={"a": 1}, labels={"x": "y"}),
        unclear="VSO passes nil maps for absent annotations/labels, which Go encodes as null",
    ),
    err(
        "get on the input struct",
        '{{ get . "Secrets" }}',
        'template: t:1:7: executing "t" at <.>: wrong type for value; expected map[string]interface {}; '
        "got *helpers.SecretInput",
        _VSO_INPUT,
    ),
]

ALL: list[Case] = (
    TEXT_AND_TRIM
    + GO_DOC
    + PRINTING
    + FIELDS
    + VARIABLES
    + IF_WITH
    + RANGE
    + TEMPLATES
    + BUILTINS
    + PRINTF
    + PARSE_ERRORS
    + GO_PARSE_ERROR_PARTS
    + GO_EXEC_MORE
    + EXEC_ERRORS
    + SPRIG
    + SPRIG_DOCS
    + REGEX
    + JSON_NUMBERS
    + VSO
)
