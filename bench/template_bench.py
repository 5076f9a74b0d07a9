"""Rendering cost per Secret of a typical VSO transformation, with our Go-template engine.

A "typical" transformation here is what VSO's documentation and issues show: three templates
on one secret —

- ``dsn``: ``postgres://{{ .Secrets.username }}:{{ .Secrets.password }}@...`` via ``printf``,
- ``config.json``: a ``dict`` of several values piped to ``toJson``,
- ``.dockerconfigjson``: VSO's documented example (range over auths, ``set``, ``b64enc``,
  ``mustToJson``).

Each run renders ``--secrets`` distinct secrets (different values, so nothing is cached by
accident) in three ways, side by side:

1. **baseline**: the same three outputs written directly in Python (f-string, ``json.dumps``,
   ``base64``) — what the work costs without any template engine;
2. **parse once**: templates parsed once into a TemplateSet, executed per secret (what the
   operator does while a transformation is unchanged);
3. **parsed() cache**: the shared, cached set the operator should use (a lookup by the
   template sources, then execute);
4. **parse each time**: a new TemplateSet parsed for every secret (a cold cache, or an operator
   that does not keep parsed templates).

It prints p50/p99 µs per secret (all three templates) for each way, the medians over
``--runs`` runs, and the ratio to the baseline.

Usage: python bench/template_bench.py [--secrets 2000] [--runs 5]
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from csi_vso.operator.gotemplate import TemplateSet, parsed  # noqa: E402

TEMPLATES = {
    "dsn": '{{- printf "postgres://%s:%s@db.prod.svc:5432/app?sslmode=require" '
    ".Secrets.username .Secrets.password -}}",
    "config.json": '{{- dict "user" .Secrets.username "password" .Secrets.password "host" "db.prod.svc" '
    '"port" 5432 "pool" (dict "min" 2 "max" 20) "labels" .Labels | toJson -}}',
    ".dockerconfigjson": """{{- $config := dict -}}
{{- range $k, $v := (get .Secrets "auths") -}}
{{- $username := get $v "username" -}}
{{- $password := get $v "password" -}}
{{- $_ := set $config $k (dict "username" $username "password" $password
    "auth" (list $username ":" $password | join "" | b64enc)) -}}
{{- end -}}
{{- dict "auths" $config | mustToJson -}}""",
}


SOURCES = tuple(TEMPLATES.items())


def make_data(i: int) -> dict[str, object]:
    return {
        "Secrets": {
            "username": f"app-user-{i}",
            "password": f"p4ss-{i:08d}-xyzzy",
            "auths": {
                "registry.example.com": {"username": f"bot{i}", "password": f"tok-{i}"},
                "ghcr.io": {"username": f"gh{i}", "password": f"ghp-{i}"},
            },
        },
        "Labels": {"app": "web", "team": "payments"},
        "Annotations": {},
    }


def baseline(data: dict[str, object]) -> dict[str, str]:
    secrets = data["Secrets"]
    assert isinstance(secrets, dict)
    dsn = f"postgres://{secrets['username']}:{secrets['password']}@db.prod.svc:5432/app?sslmode=require"
    config = {
        "user": secrets["username"],
        "password": secrets["password"],
        "host": "db.prod.svc",
        "port": 5432,
        "pool": {"min": 2, "max": 20},
        "labels": data["Labels"],
    }
    auths = {}
    for host, cred in sorted(secrets["auths"].items()):
        raw = f"{cred['username']}:{cred['password']}".encode()
        auths[host] = {"auth": base64.b64encode(raw).decode(), **cred}
    return {
        "dsn": dsn,
        "config.json": json.dumps(config, sort_keys=True, separators=(",", ":")),
        ".dockerconfigjson": json.dumps({"auths": auths}, sort_keys=True, separators=(",", ":")),
    }


def parsed_set() -> TemplateSet:
    ts = TemplateSet()
    for name, text in TEMPLATES.items():
        ts.parse(name, text)
    return ts


def render_with(ts: TemplateSet, data: dict[str, object]) -> dict[str, str]:
    return {name: ts.execute(name, data) for name in TEMPLATES}


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


Way = Callable[[dict[str, object]], dict[str, str]]


def one_run(way: Way, inputs: list[dict[str, object]]) -> list[float]:
    samples = []
    for data in inputs:
        start = time.perf_counter()
        way(data)
        samples.append((time.perf_counter() - start) * 1e6)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--secrets", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    inputs = [make_data(i) for i in range(args.secrets)]
    cached = parsed_set()
    # The engine must give the baseline's bytes, or the comparison means nothing.
    for data in inputs[:50]:
        assert render_with(cached, data) == baseline(data), "engine output differs from the baseline"

    ways: dict[str, Way] = {
        "baseline (plain Python)": baseline,
        "parse once, execute": lambda data: render_with(cached, data),
        "parsed() cache, execute": lambda data: render_with(parsed(SOURCES), data),
        "parse each time": lambda data: render_with(parsed_set(), data),
    }
    results: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in ways}
    for _ in range(args.runs):
        for name, way in ways.items():  # interleaved, so drift hits every way alike
            samples = one_run(way, inputs)
            results[name][0].append(percentile(samples, 50))
            results[name][1].append(percentile(samples, 99))

    base_p50 = statistics.median(results["baseline (plain Python)"][0])
    print(f"Rendering {len(TEMPLATES)} templates per Secret ({', '.join(TEMPLATES)}),")
    print(f"{args.secrets} secrets x {args.runs} runs; medians over runs of each run's percentile.\n")
    print(f"| {'way':<26} | {'p50 µs/Secret':>13} | {'p99 µs/Secret':>13} | {'p50 vs baseline':>15} |")
    print(f"|{'-' * 28}|{'-' * 15}|{'-' * 15}|{'-' * 17}|")
    for name, (p50s, p99s) in results.items():
        p50, p99 = statistics.median(p50s), statistics.median(p99s)
        print(f"| {name:<26} | {p50:>13.1f} | {p99:>13.1f} | {p50 / base_p50:>14.1f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
