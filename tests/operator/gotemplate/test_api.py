"""The TemplateSet API the operator's transformations build on."""

from __future__ import annotations

import threading

import pytest

from csi_vso.operator.gotemplate import FUNCS, SPRIG_NOT_IMPLEMENTED, TemplateError, TemplateSet, parsed


def words(text: str) -> list[str]:
    return text.split()


# VSO's allow-list of Sprig functions (template/funcs.go in hashicorp/vault-secrets-operator).
VSO_SPRIG_ALLOW_LIST = words("""
abbrev abbrevboth add add1 add1f addf adler32sum ago all any append atoi b32dec
b32enc b64dec b64enc base bcrypt biggest buildCustomCert camelcase cat ceil chunk clean coalesce compact
concat contains deepCopy deepEqual default dict dig dir div divf duration durationRound empty ext fail
first float64 floor fromJson get has hasKey hasPrefix hasSuffix htpasswd indent initial initials int
int64 isAbs join kebabcase keys kindIs kindOf last list lower max maxf merge mergeOverwrite min minf mod
mul mulf mustAppend mustChunk mustCompact mustDeepCopy mustFirst mustFromJson mustHas mustInitial
mustLast mustMerge mustMergeOverwrite mustPrepend mustPush mustRegexFind mustRegexFindAll
mustRegexMatch mustRegexReplaceAll mustRegexReplaceAllLiteral mustRegexSplit mustRest mustReverse
mustSlice mustToDate mustToJson mustToPrettyJson mustToRawJson mustUniq mustWithout nindent nospace
omit osBase osClean osDir osExt osIsAbs pick pluck plural prepend push quote randInt regexFind
regexFindAll regexMatch regexQuoteMeta regexReplaceAll regexReplaceAllLiteral regexSplit repeat replace
rest reverse round semver semverCompare seq set sha1sum sha256sum sha512sum shuffle slice snakecase
sortAlpha split splitList splitn squote sub subf substr swapcase ternary title toDecimal toJson
toPrettyJson toRawJson toString toStrings trim trimAll trimPrefix trimSuffix trimall trunc tuple typeIs
typeIsLike typeOf uniq unset until untilStep untitle upper urlJoin urlParse values without wrap
wrapWith""")

GO_BUILTINS = words("and or not len index print printf println eq ne lt le gt ge html js urlquery call")


def test_function_map_is_vso_allow_list_plus_go_builtins() -> None:
    """Nothing beyond VSO's allow-list (no env, no file access); every gap is declared."""
    allowed = set(VSO_SPRIG_ALLOW_LIST) | set(GO_BUILTINS)
    assert set(FUNCS) <= allowed, sorted(set(FUNCS) - allowed)
    assert set(FUNCS) | set(SPRIG_NOT_IMPLEMENTED) == allowed
    assert not set(FUNCS) & set(SPRIG_NOT_IMPLEMENTED)


def test_parse_adds_definitions_and_names_lists_them() -> None:
    ts = TemplateSet()
    ts.parse("main", '{{define "a"}}A{{end}}{{block "b" .}}B{{end}}{{template "a"}}')
    assert ts.names() == ["a", "b", "main"]
    assert ts.execute("main", None) == "BA"
    assert ts.execute("a", None) == "A"


def test_a_later_parse_redefines_and_an_empty_one_does_not() -> None:
    """As Go's Parse: a non-empty redefinition replaces, an empty body keeps the old one."""
    ts = TemplateSet()
    ts.parse("main", '{{block "b" .}}default{{end}}')
    ts.parse("overlay", '{{define "b"}}override{{end}}')
    assert ts.execute("main", None) == "override"
    ts.parse("b", "   ")
    assert ts.execute("main", None) == "override"


def test_a_failed_parse_changes_nothing() -> None:
    ts = TemplateSet()
    ts.parse("main", "ok")
    with pytest.raises(TemplateError):
        ts.parse("main", '{{define "x"}}X{{end}}{{oops}}')
    assert ts.names() == ["main"]
    assert ts.execute("main", None) == "ok"


def test_unknown_template_name() -> None:
    ts = TemplateSet()
    ts.parse("main", "x")
    with pytest.raises(TemplateError) as caught:
        ts.execute("nope", None)
    assert str(caught.value) == 'template: no template "nope" associated with template "main"'


def test_execution_does_not_change_the_data() -> None:
    data = {"Secrets": {"a": "1"}}
    ts = TemplateSet()
    ts.parse("t", '{{$_ := set .Secrets "b" "2"}}{{len .Secrets}}')
    assert ts.execute("t", data) == "2"
    assert data == {"Secrets": {"a": "1", "b": "2"}}  # Sprig's set mutates, as in Go


def test_one_set_renders_from_many_threads() -> None:
    ts = TemplateSet()
    ts.parse("dsn", "postgres://{{.Secrets.u}}:{{.Secrets.p}}@db/app")
    results: list[str] = []
    lock = threading.Lock()

    def render(i: int) -> None:
        out = ts.execute("dsn", {"Secrets": {"u": f"u{i}", "p": f"p{i}"}})
        with lock:
            results.append(out)

    threads = [threading.Thread(target=render, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == sorted(f"postgres://u{i}:p{i}@db/app" for i in range(16))


def test_binary_secret_bytes_round_trip() -> None:
    """b64dec of binary data gives Go's bytes back through surrogate escapes."""
    ts = TemplateSet()
    ts.parse("t", "{{b64dec .}}")
    out = ts.execute("t", "/wAB")
    assert out.encode("utf-8", "surrogateescape") == b"\xff\x00\x01"
    assert ts.execute_bytes("t", "/wAB") == b"\xff\x00\x01"
    assert ts.execute_bytes("t", "aMOp") == "hé".encode()


def test_parsed_sets_are_cached_and_read_only() -> None:
    sources = (("helpers", '{{define "h"}}<{{.}}>{{end}}'), ("out", '{{template "h" .S}}'))
    first = parsed(sources)
    assert parsed(sources) is first
    assert first.execute("out", {"S": "x"}) == "<x>"
    with pytest.raises(TypeError, match="shared"):
        first.parse("more", "x")
    with pytest.raises(TemplateError, match='function "nope" not defined'):
        parsed((("bad", "{{nope}}"),))


def test_random_functions_keep_their_contract() -> None:
    ts = TemplateSet()
    ts.parse("t", '{{ shuffle "abcdef" }}|{{ randInt 5 10 }}')
    shuffled, number = ts.execute("t", None).split("|")
    assert sorted(shuffled) == list("abcdef")
    assert 5 <= int(number) < 10
