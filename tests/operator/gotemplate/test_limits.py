"""Every bound a tenant's template can push ends in a TemplateError that names the limit.

Templates come from CR authors; the operator renders them for every sync. Each test pushes one
limit (with small limits so the tests stay fast, plus one run at the defaults where that is
cheap) and checks the message, and that no secret value from the data appears in it.
"""

from __future__ import annotations

import pytest

from csi_vso.operator.gotemplate import Limits, TemplateError, TemplateSet

SECRET = "hunter2-do-not-leak"
DATA = {"Secrets": {"password": SECRET}}


def run(text: str, limits: Limits | None = None, data: object = DATA) -> str:
    ts = TemplateSet(limits) if limits else TemplateSet()
    ts.parse("t", text)
    return ts.execute("t", data)


def fails(text: str, limits: Limits | None = None, data: object = DATA) -> str:
    with pytest.raises(TemplateError) as caught:
        run(text, limits, data)
    message = str(caught.value)
    assert SECRET not in message
    return message


def test_output_size_is_capped() -> None:
    message = fails("{{range until 100}}0123456789{{end}}", Limits(max_output=500))
    assert message.endswith("output exceeds the limit of 500 bytes")
    assert message.startswith('template: t:1:19: executing "t" at <0123456789>')


def test_output_at_the_limit_is_fine() -> None:
    assert run("{{range until 50}}0123456789{{end}}", Limits(max_output=500)) == "0123456789" * 50


def test_default_output_limit_is_one_mib() -> None:
    message = fails('{{range until 2000}}{{repeat 1000 "x"}}{{end}}')
    assert message.endswith("output exceeds the limit of 1048576 bytes")


def test_steps_are_capped() -> None:
    message = fails("{{range until 1000}}{{range until 1000}}.{{end}}{{end}}", Limits(max_steps=10_000))
    assert "execution exceeded the limit of 10000 steps" in message


def test_template_recursion_is_capped() -> None:
    text = '{{define "r"}}{{template "r" .}}{{end}}{{template "r" .}}'
    message = fails(text)
    assert message == (
        'template: t:1:25: executing "r" at <{{template "r" .}}>: exceeded maximum template depth (100)'
    )


def test_template_recursion_limit_is_configurable() -> None:
    text = '{{define "r"}}{{if gt . 0}}{{template "r" (sub . 1 | int)}}{{end}}{{end}}{{template "r" .}}'
    assert run(text, Limits(max_depth=10), 5) == ""
    assert "exceeded maximum template depth (10)" in fails(text, Limits(max_depth=10), 50)


def test_until_is_capped() -> None:
    message = fails("{{range until 100000000}}x{{end}}")
    assert message == (
        'template: t:1:8: executing "t" at <until 100000000>: '
        "error calling until: more than the limit of 100000 items"
    )
    assert "limit of 10 items" in fails("{{untilStep 0 100 1}}", Limits(max_list=10))
    assert "limit of 10 items" in fails("{{seq 11}}", Limits(max_list=10))


def test_range_over_a_huge_integer_is_capped() -> None:
    assert "exceeds the limit of 1000 steps" in fails("{{range 100000000}}{{end}}", Limits(max_steps=1000))


def test_repeat_and_indent_check_size_before_building() -> None:
    assert "result longer than the limit of 1048576 bytes" in fails('{{repeat 1000000000 "xx"}}')
    assert "result longer than the limit of 1048576 bytes" in fails('{{indent 1000000000 "x"}}')


def test_string_doubling_is_stopped() -> None:
    text = '{{$s := "ab"}}{{range until 64}}{{$s = printf "%s%s" $s $s}}{{end}}{{len $s}}'
    assert "arguments larger than the output limit of 1048576 bytes" in fails(text)
    text = '{{$s := "ab"}}{{range until 64}}{{$s = repeat 2 $s}}{{end}}{{len $s}}'
    assert "result longer than the limit of 1048576 bytes" in fails(text)


def test_building_values_is_capped() -> None:
    text = "{{$l := list}}{{range until 5000}}{{$l = append $l .}}{{end}}{{len $l}}"
    assert "execution built more than the limit of 100000 bytes" in fails(text, Limits(max_work=100_000))
    assert run(text) == "5000"


def test_printf_width_is_capped() -> None:
    assert "width or precision larger than 65536" in fails('{{printf "%999999999d" 1}}')


def test_source_size_is_capped() -> None:
    with pytest.raises(TemplateError, match="source longer than 100 characters"):
        TemplateSet(Limits(max_source=100)).parse("t", "x" * 101)


def test_nesting_is_capped() -> None:
    deep_if = "{{if true}}" * 101 + "{{end}}" * 101
    with pytest.raises(TemplateError, match="nesting deeper than 100 levels"):
        TemplateSet().parse("t", deep_if)
    deep_parens = "{{" + "(" * 101 + "1" + ")" * 101 + "}}"
    with pytest.raises(TemplateError, match="max expression depth exceeded"):
        TemplateSet().parse("t", deep_parens)
    assert run("{{if true}}" * 100 + "x" + "{{end}}" * 100) == "x"


def test_deeply_nested_data_is_an_error_not_a_crash() -> None:
    data: object = "leaf"
    for _ in range(5000):
        data = [data]
    message = fails("{{toJson .}}", data=data)
    assert "value too large" in message or "nested too deeply" in message


@pytest.mark.parametrize(
    "name", ["env", "expandenv", "readFile", "include", "getHostByName", "now", "osEnv", "exec", "lookup"]
)
def test_no_environment_filesystem_or_network(name: str) -> None:
    with pytest.raises(TemplateError, match=f'function "{name}" not defined'):
        TemplateSet().parse("t", "{{" + name + ' "x"}}')


def test_secret_values_stay_out_of_errors() -> None:
    """Go would print the value in these messages; ours redact or never include it."""
    assert fails("{{range .Secrets.password}}{{end}}").endswith("range can't iterate over <redacted>")
    message = fails("{{mustFromJson .Secrets.password}}")
    assert message.endswith("error calling mustFromJson: input is not valid JSON")
    assert fails("{{index .Secrets.password 99}}").endswith("index out of range: 99")
    assert fails("{{lt .Secrets.password 1}}").endswith("incompatible types for comparison")
    assert fails("{{.Secrets.password.x}}").endswith("can't evaluate field x in type interface {}")


def test_amplifying_functions_measure_their_arguments_first() -> None:
    """A list of references to one big string is cheap to build but huge to join or print."""
    build = '{{$s := repeat 100000 "x"}}{{$l := list}}{{range until 100}}{{$l = append $l $s}}{{end}}'
    calls = ("{{$l}}", '{{join "" $l}}', "{{toJson $l}}", "{{print $l}}", '{{printf "%v" $l}}', "{{cat $l}}")
    for call in calls:
        message = fails(build + call)
        assert "larger than the output limit of 1048576 bytes" in message or message.endswith(
            "output exceeds the limit of 1048576 bytes"
        ), call


def test_replace_checks_the_result_size_before_building_it() -> None:
    assert "result longer than the limit of 1048576 bytes" in fails(
        '{{$s := repeat 100000 "x"}}{{replace "" $s $s}}'
    )
    assert "result longer than the limit of 1048576 bytes" in fails(
        '{{$s := repeat 100000 "x"}}{{regexReplaceAll "" $s $s}}'
    )


def test_every_function_result_is_measured() -> None:
    message = fails("{{$x := upper .S}}", Limits(max_output=100), {"S": "x" * 200})
    assert message.endswith("a value grew beyond the output limit of 100 bytes")
