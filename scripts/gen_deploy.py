"""Generate deploy/ (the kustomize install) from the Helm chart, so the two cannot drift.

The chart under ``deploy/charts/csi-vso`` is the one source of truth. ``helm template`` with
its default values renders every object; each lands in ``deploy/<path>`` where ``<path>`` is
the template's path under ``templates/`` (``operator/rbac.yaml`` -> ``deploy/operator/rbac.yaml``).
The CRDs come from ``csi_vso.operator.crds`` and are written to both ``deploy/crds/`` and the
chart's ``crds/`` (Helm installs that directory before the templates and never templates it).

Usage: python scripts/gen_deploy.py [--check]
  --check  render into memory and exit 1, naming each file, if deploy/ differs.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from csi_vso.devkit import kubetools
from csi_vso.operator import crds

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "charts" / "csi-vso"
RELEASE = "csi-vso"
SOURCE = re.compile(r"^# Source: csi-vso/templates/(?P<path>\S+)$")
HEADER = "# Generated from deploy/charts/csi-vso/templates/{path} by scripts/gen_deploy.py; edit the chart.\n"


def helm_binary() -> Path:
    found = kubetools.find() or kubetools.install()
    return found["helm"]


# Off by default in the chart (they need the Prometheus Operator's CRDs) but shipped in deploy/
# for kustomize users too: rendered once more with the value that turns them on.
OPTIONAL = {"monitoring/prometheusrule.yaml": "monitoring.prometheusRule.enabled=true"}


def helm_template(
    values: list[Path] | None = None, helm: Path | None = None, sets: tuple[str, ...] = ()
) -> str:
    """``helm template`` of the chart (release ``csi-vso``), with extra values files if given."""
    command = [str(helm or helm_binary()), "template", RELEASE, str(CHART)]
    for path in values or []:
        command += ["--values", str(path)]
    for assignment in sets:
        command += ["--set", assignment]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def split_by_template(rendered: str) -> dict[str, str]:
    """Rendered stream -> {template path: its documents}, in the order Helm printed them (pure)."""
    files: dict[str, list[str]] = {}
    for document in rendered.split("\n---\n"):
        lines = document.strip("\n").splitlines()
        if lines and lines[0] == "---":
            lines = lines[1:]
        if not lines:
            continue
        match = SOURCE.match(lines[0])
        if not match:
            raise ValueError(f"a rendered document without a '# Source:' line: {lines[0]!r}")
        body = "\n".join(lines[1:]).strip("\n")
        if body:
            files.setdefault(match["path"], []).append(body + "\n")
    return {path: HEADER.format(path=path) + "---\n".join(docs) for path, docs in files.items()}


def expected_files(helm: Path | None = None) -> dict[Path, str]:
    """Every generated file under deploy/ with the content it must have."""
    wanted = {DEPLOY / path: text for path, text in split_by_template(helm_template(helm=helm)).items()}
    for path, assignment in OPTIONAL.items():
        wanted[DEPLOY / path] = split_by_template(helm_template(helm=helm, sets=(assignment,)))[path]
    with tempfile.TemporaryDirectory() as tmp:
        for written in crds.write_all(Path(tmp)):
            text = written.read_text()
            wanted[DEPLOY / "crds" / written.name] = text
            wanted[CHART / "crds" / written.name] = text
    return wanted


def stale_files(helm: Path | None = None) -> list[str]:
    """Generated files that are missing or differ from what the chart and the CRDs render."""
    stale = []
    for path, text in expected_files(helm).items():
        if not path.is_file() or path.read_text() != text:
            stale.append(str(path.relative_to(ROOT)))
    return sorted(stale)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if deploy/ differs from the chart")
    args = parser.parse_args()
    if args.check:
        stale = stale_files()
        for path in stale:
            print(f"out of date: {path} (run: python scripts/gen_deploy.py)", file=sys.stderr)
        return 1 if stale else 0
    for path, text in expected_files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
