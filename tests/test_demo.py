"""``csi-vso demo --once`` end to end, as root (real tmpfs) and as a non-root user (plain directory).

Each run starts real OpenBao, the devkit API server, the operator and the provider, mounts a
volume through the provider's socket, rotates the secret once and must exit 0 having printed
the rotation. Afterwards nothing it started may remain: no process, no mount, no directory,
nothing listening on the addresses it printed.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from csi_vso.cli import build_parser
from csi_vso.demo import scenario
from csi_vso.devkit.apiserver.schema import apply_schema
from csi_vso.operator.crds import build_crds
from csi_vso.provider import params, validation

DEMO_USER = "csi-vso-demo"
REPO = Path(__file__).resolve().parents[1]


# -- the scenario's pure pieces ---------------------------------------------------------------


@pytest.mark.parametrize(
    "manifest", scenario.demo_manifests("http://127.0.0.1:8200"), ids=lambda m: m["kind"]
)
def test_demo_manifests_fit_the_crds_without_losing_a_field(manifest: dict[str, Any]) -> None:
    crd = next(c for c in build_crds() if c["spec"]["names"]["kind"] == manifest["kind"])
    stored, errors = apply_schema(
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"], copy.deepcopy(manifest)
    )
    assert [e.message for e in errors] == []
    assert _contains(stored["spec"], manifest["spec"])  # defaults may be added, nothing pruned


def _contains(have: Any, want: Any) -> bool:
    if isinstance(want, dict):
        return isinstance(have, dict) and all(k in have and _contains(have[k], v) for k, v in want.items())
    return bool(have == want)


def test_demo_mount_request_passes_the_providers_validation() -> None:
    pod = {
        "name": scenario.POD_NAME,
        "namespace": scenario.APP_NAMESPACE,
        "uid": "u-1",
        "serviceAccount": "app",
    }
    tokens = {"csi-vso": {"token": "a.b.c", "expirationTimestamp": "2026-11-28T00:00:00Z"}}
    attributes = scenario.mount_attributes(pod, scenario.spc_parameters(), tokens)
    parsed = params.parse_request(
        attributes=json.dumps(attributes), secrets="null", target_path="/t", permission="420"
    )
    spec = validation.validate(parsed)
    assert spec.write_mode is validation.WriteMode.PROVIDER
    assert dict(spec.pod.tokens) == {"csi-vso": "a.b.c"}
    assert [(o.secret_name, o.key, o.file_name, o.mode) for o in spec.objects] == [
        (scenario.SECRET_NAME, scenario.SECRET_KEY, scenario.FILE_NAME, 0o444)
    ]
    # The demo's static secret allows exactly the pod's service account.
    static = next(m for m in scenario.demo_manifests("http://x") if m["kind"] == "VaultStaticSecret")
    assert static["spec"]["allowedServiceAccounts"] == [pod["serviceAccount"]]


@pytest.mark.parametrize(
    ("secret_written", "expected"),
    [
        (
            0.7,
            "  end-to-end latency 750 ms (OpenBao write -> operator wrote the Secret: 700 ms; "
            "Secret -> provider rewrote the file: 50 ms)",
        ),
        (None, "  end-to-end latency 750 ms (OpenBao write -> file changed)"),
    ],
)
def test_rotation_report(secret_written: float | None, expected: str) -> None:
    rotation = scenario.Rotation(
        number=3,
        old="v3-a",
        new="v4-b",
        end_to_end=0.75,
        secret_written=secret_written,
        data_link_before="..x",
        data_link_after="..y",
        same_volume=True,
    )
    assert scenario.format_rotation(rotation) == [
        "rotation 3: wrote a new version of secret/demo/db in OpenBao",
        "  db/password: 'v3-a' -> 'v4-b'",
        "  changed in place: same volume yes, ..data -> ..x became ..data -> ..y",
        expected,
    ]


def test_wait_for_names_what_timed_out() -> None:
    with pytest.raises(scenario.DemoError, match="timed out after 0s waiting for the moon"):
        scenario.wait_for("the moon", lambda: None, timeout=0.05, interval=0.01)
    assert scenario.wait_for("a number", lambda: 7, timeout=1) == 7


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--interval", "-1"], "argument --interval: '-1': must be a number of seconds >= 0"),
        (["--interval", "soon"], "argument --interval: 'soon' is not a number of seconds"),
        (["--timeout", "0"], "argument --timeout: '0': must be a number of seconds > 0"),
        (["--timeout", "nan"], "argument --timeout: 'nan': must be a number of seconds > 0"),
        (["--timeout", "inf"], "argument --timeout: 'inf': must be a number of seconds > 0"),
    ],
)
def test_bad_interval_or_timeout_is_refused_before_anything_starts(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        build_parser().parse_args(["demo", *args])
    assert raised.value.code == 2
    assert message in capsys.readouterr().err


def test_interval_zero_and_fractional_timeout_are_accepted() -> None:
    parsed = build_parser().parse_args(["demo", "--interval", "0", "--timeout", "0.5"])
    assert (parsed.interval, parsed.timeout) == (0.0, 0.5)


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_a_signal_during_tear_down_does_not_cut_the_clean_up_short(signum: str, tmp_path: Path) -> None:
    """Ctrl-C twice, or Ctrl-C then a SIGTERM: every clean-up step still runs, nothing is raised."""
    import io
    import signal

    from csi_vso.demo import runner

    demo = runner.Demo(
        runner.Settings(once=True, interval=0, timeout=1, keep_logs=None, log_level="info"),
        out=io.StringIO(),
    )
    demo.workdir = tmp_path / "work"
    demo.workdir.mkdir()
    done: list[str] = []
    # Run in reverse: the signal arrives during the first step, the second must still run.
    demo.cleanups = [lambda: done.append("unmounted"), lambda: os.kill(os.getpid(), getattr(signal, signum))]
    previous_term = signal.signal(signal.SIGTERM, runner._raise_keyboard_interrupt)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        demo.tear_down()
    except KeyboardInterrupt:
        pytest.fail(f"{signum} during tear-down escaped it: later clean-up steps were skipped")
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)
    assert done == ["unmounted"]
    assert not demo.workdir.exists()
    assert "shut down: every process stopped" in demo.out.getvalue()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({}, {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}),
        (
            {"NO_PROXY": ".corp.example, localhost", "no_proxy": "127.0.0.1"},
            {"NO_PROXY": ".corp.example,localhost,127.0.0.1", "no_proxy": "127.0.0.1,localhost"},
        ),
    ],
)
def test_loopback_is_added_to_no_proxy_keeping_what_was_there(
    before: dict[str, str], after: dict[str, str]
) -> None:
    from csi_vso.demo import loopback_bypasses_proxies

    environ = dict(before)
    loopback_bypasses_proxies(environ)
    assert environ == after


def test_root_that_cannot_mount_gets_a_plain_directory_volume_and_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root in an unprivileged container (or without ``mount``) still gets a demo, told why."""
    if os.geteuid() != 0:
        pytest.skip("the fallback is for root; non-root never tries to mount")
    import io

    from csi_vso.demo import runner

    demo = runner.Demo(
        runner.Settings(once=True, interval=0, timeout=1, keep_logs=None, log_level="info"),
        out=io.StringIO(),
    )
    demo.workdir = tmp_path
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no mount binary to be found
    target = demo.prepare_volume("0b0b0b0b-0000-4000-8000-000000000001")
    assert target.is_dir() and str(target) not in Path("/proc/mounts").read_text()
    assert demo.cleanups == []  # nothing to unmount
    said = demo.out.getvalue()  # type: ignore[attr-defined]
    assert f"volume {target} (a plain directory: could not mount a tmpfs: " in said
    assert "No such file or directory" in said


# -- the whole demo ----------------------------------------------------------------------------


def _ensure_user() -> None:
    if subprocess.run(["id", "-u", DEMO_USER], capture_output=True, check=False).returncode != 0:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", DEMO_USER],
            check=True,
            capture_output=True,
        )


def _blocked_ancestors(*paths: Path) -> list[Path]:
    """Directories on the way to ``paths`` that other users may not enter (0700 /root, mktemp -d)."""
    blocked = {
        ancestor
        for path in paths
        for ancestor in path.parents
        if ancestor.exists() and not ancestor.stat().st_mode & stat.S_IXOTH
    }
    return sorted(blocked, key=lambda p: len(p.parts))  # outermost first


# Run as root inside a private mount namespace: make each blocked directory enterable by
# mounting a 0755 tmpfs over it and binding its original entries back (they keep their own
# permissions), then exec the command. Nothing outside the namespace changes.
_OPEN_BLOCKED_DIRS = r"""
import os, subprocess, sys
stage_root, count = sys.argv[1], int(sys.argv[2])
blocked, command = sys.argv[3 : 3 + count], sys.argv[3 + count :]
for i, directory in enumerate(blocked):
    original = os.path.join(stage_root, str(i))
    os.mkdir(original)
    subprocess.run(["mount", "--bind", directory, original], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755,size=1m", "tmpfs", directory], check=True)
    for name in os.listdir(original):
        source, target = os.path.join(original, name), os.path.join(directory, name)
        if os.path.islink(source):
            os.symlink(os.readlink(source), target)
            continue
        if os.path.isdir(source):
            os.mkdir(target)
        else:
            open(target, "w").close()
        subprocess.run(["mount", "--bind", source, target], check=True)
os.execvp(command[0], command)
"""


def _as_user(command: list[str], stage: Path) -> tuple[list[str], str]:
    """``command`` run as the demo user with no capabilities at all, and how (for messages).

    Plain ``runuser`` when the user can import the package with this interpreter. CI machines
    often keep the interpreter, the venv or the checkout under a directory only root may enter
    (pyenv in /root, a clone in ``mktemp -d``): then the command runs in a private mount
    namespace where those directories are opened (``_OPEN_BLOCKED_DIRS``), and ``setpriv``
    switches to the user. The demo still runs with uid != 0 and an empty capability set, so it
    takes its non-root path.
    """
    probe = subprocess.run(
        ["runuser", "-u", DEMO_USER, "--", sys.executable, "-c", "import csi_vso"],
        capture_output=True,
        check=False,
    )
    blocked = _blocked_ancestors(Path(sys.executable).resolve(), Path(sys.prefix), REPO)
    if probe.returncode == 0 or not blocked:
        return ["runuser", "-u", DEMO_USER, "--", *command], "runuser"
    setpriv = ["setpriv", f"--reuid={DEMO_USER}", f"--regid={DEMO_USER}", "--clear-groups"]
    opener = [sys.executable, "-c", _OPEN_BLOCKED_DIRS, str(stage), str(len(blocked)), *map(str, blocked)]
    names = ", ".join(map(str, blocked))
    return ["unshare", "--mount", "--propagation", "private", *opener, *setpriv, *command], (
        f"setpriv (with {names} opened)"
    )


def _listening(url: str) -> bool:
    host, port = re.sub(r"^\w+://", "", url).rstrip("/").rsplit(":", 1)
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, int(port))) == 0


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


def _run_demo(command: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run the demo; if it hangs, SIGTERM it (its tear-down runs) before the test fails.

    ``subprocess.run(timeout=...)`` would SIGKILL it instead, leaving OpenBao, the API server,
    the operator, the provider (all in sessions of their own) and the tmpfs behind.
    """
    import signal

    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd="/",
        env=env,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        pytest.fail(f"the demo did not finish within {timeout:.0f}s; stopped it with SIGTERM:\n{out}{err}")
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


@pytest.mark.slow
@pytest.mark.parametrize("user", ["root", "non-root"])
def test_demo_once_rotates_and_leaves_nothing_behind(user: str, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: the root run mounts tmpfs, the non-root run switches user")
    command = [sys.executable, "-m", "csi_vso", "demo", "--once", "--timeout", "90"]
    how = "root"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VAULT_", "BAO_", "KUBECONFIG")) and k.lower() != "no_proxy"
    }
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # A proxy nobody answers on, as company machines set one: loopback traffic must bypass it.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env[name] = "http://127.0.0.1:9"
    if user == "non-root":
        _ensure_user()
        stage = tmp_path / "stage"
        stage.mkdir()
        command, how = _as_user(command, stage)
        # A home the user can enter (pytest's tmp_path sits under a root-only directory).
        home = Path(tempfile.mkdtemp(prefix="csi-vso-demo-home-"))
        shutil.chown(home, DEMO_USER, DEMO_USER)
        env["HOME"] = str(home)
    try:
        result = _run_demo(command, env, timeout=280)
    finally:
        if user == "non-root":
            shutil.rmtree(env["HOME"], ignore_errors=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"demo as {how} exited {result.returncode}:\n{output}"

    first = re.search(r"workdir (\S+), uid (\d+)\)", result.stdout)
    assert first, output
    workdir, uid = first.group(1), int(first.group(2))
    assert (uid == 0) == (user == "root"), output
    # Both mount flavours, as the driver would make them.
    if user == "root":
        assert re.search(r"volume \S+ \(tmpfs", result.stdout), output
    else:
        assert "(a plain directory: not root" in result.stdout, output
    # The mounted file, then one rotation observed in place with its latency.
    assert re.search(r"mounted file \S+/db/password:\n  'v1-[0-9a-f]{8}'", result.stdout), output
    rotation = re.search(
        r"rotation 1: .*\n  db/password: 'v1-[0-9a-f]{8}' -> 'v2-[0-9a-f]{8}'\n"
        r"  changed in place: same volume yes, \.\.data -> (\S+) became \.\.data -> (\S+)\n"
        r"  end-to-end latency (\d+) ms",
        result.stdout,
    )
    assert rotation, output
    assert rotation.group(1) != rotation.group(2)
    assert "shut down: every process stopped, volume and temporary files removed" in result.stdout

    # Nothing left behind.
    assert not Path(workdir).exists(), f"{workdir} was not removed"
    mounts = Path("/proc/mounts").read_text()
    assert workdir not in mounts and str(tmp_path) not in mounts
    # The API server, the operator and the provider all name files in the workdir on their
    # command lines; OpenBao and the API server must no longer accept connections.
    assert _processes_mentioning(workdir) == []
    urls = re.findall(r"started (?:OpenBao|the in-memory API server) (https?://[\d.:]+)", result.stdout)
    assert len(urls) == 2, output
    for url in urls:
        assert not _listening(url), f"{url} still accepts connections after the demo exited"


def _read_until(stream: Any, pattern: str, count: int, deadline: float) -> str:
    """Lines from ``stream`` until ``pattern`` has appeared ``count`` times (or the deadline/EOF)."""
    import select
    import time

    seen = ""
    while len(re.findall(pattern, seen)) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        ready, _, _ = select.select([stream], [], [], min(remaining, 1.0))
        if ready:
            line = stream.readline()
            if not line:
                break
            seen += line
    return seen


@pytest.mark.slow
def test_looping_demo_keeps_rotating_until_ctrl_c_then_cleans_up(tmp_path: Path) -> None:
    """The default (looping) demo: rotation after rotation until Ctrl-C, then exit 0 and nothing left.

    Ctrl-C in a terminal signals the whole foreground process group; the demo runs in a group of
    its own here and the group gets SIGINT, as from a terminal. ``--keep-logs`` keeps the
    processes' logs, which must not hold any of the secret values the demo printed.
    """
    if os.geteuid() != 0:
        pytest.skip("needs root: the volume is a real tmpfs, whose unmount is checked")
    import signal
    import time

    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_", "KUBECONFIG"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    proc = subprocess.Popen(
        [
            *[sys.executable, "-m", "csi_vso", "demo", "--interval", "0.2", "--timeout", "90"],
            *["--keep-logs", str(tmp_path / "logs"), "--log-level", "debug"],
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd="/",
        env=env,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        before = _read_until(proc.stdout, r"end-to-end latency \d+ ms", 2, time.monotonic() + 180)
        assert proc.poll() is None, f"the looping demo exited on its own:\n{before}"
        os.killpg(proc.pid, signal.SIGINT)
        after, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = before + after
    assert proc.returncode == 0, f"demo exited {proc.returncode} after Ctrl-C:\n{output}"
    assert "rotating every 0.2s; Ctrl-C stops" in output, output
    # Two rotations, each building on the previous value, observed in place.
    assert re.search(
        r"rotation 1: .*\n  db/password: 'v1-(\w+)' -> 'v2-(\w+)'\n(?:.*\n)*?rotation 2: .*\n"
        r"  db/password: 'v2-\2' -> 'v3-\w+'",
        output,
    ), output
    assert "stopped by Ctrl-C" in after, output
    assert "shut down: every process stopped, volume and temporary files removed" in after, output

    workdir = re.search(r"workdir (\S+), uid 0\)", output)
    assert workdir, output
    assert not Path(workdir.group(1)).exists()
    assert workdir.group(1) not in Path("/proc/mounts").read_text()
    assert _processes_mentioning(workdir.group(1)) == []
    for url in re.findall(r"started (?:OpenBao|the in-memory API server) (https?://[\d.:]+)", output):
        assert not _listening(url), f"{url} still accepts connections after Ctrl-C"

    # The kept logs: every process but OpenBao (its log holds the root token), none empty, and
    # none with a secret value in it, even at debug level.
    logs = {p.name: p.read_text() for p in (tmp_path / "logs").iterdir()}
    assert sorted(logs) == ["apiserver.log", "operator.log", "provider.log"]
    assert all(logs.values()), [name for name, text in logs.items() if not text]
    values = set(re.findall(r"'(v\d+-[0-9a-f]{8})'", output))
    assert len(values) >= 3, output
    leaks = [(name, v) for name, text in logs.items() for v in values if v in text]
    assert leaks == []


@pytest.mark.slow
def test_a_sigkilled_demo_leaves_no_process_running() -> None:
    """SIGKILL runs none of the demo's clean-up: the kernel must still stop every child it started.

    Only the demo process is killed, not its group (the children are in sessions of their own
    anyway). The tmpfs it mounted and its directories do stay behind, which is accepted; this
    test removes them.
    """
    if os.geteuid() != 0:
        pytest.skip("needs root: the volume is a real tmpfs, as in the looping demo")
    import signal
    import time

    from tests.devkit.test_process import wait_until_exited

    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_", "KUBECONFIG"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    proc = subprocess.Popen(
        [sys.executable, "-m", "csi_vso", "demo", "--interval", "0.2", "--timeout", "90"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd="/",
        env=env,
        start_new_session=True,
    )
    workdir: str | None = None
    bao_workdirs: list[str] = []
    pids: list[int] = []
    try:
        assert proc.stdout is not None
        output = _read_until(proc.stdout, r"end-to-end latency \d+ ms", 1, time.monotonic() + 180)
        assert proc.poll() is None, f"the looping demo exited on its own:\n{output}"
        found = re.search(r"workdir (\S+), uid 0\)", output)
        assert found, output
        workdir = found.group(1)
        urls = re.findall(r"started (?:OpenBao|the in-memory API server) (https?://[\d.:]+)", output)
        assert len(urls) == 2, output
        # The API server, the operator and the provider name the workdir; OpenBao its port.
        bao_url = re.search(r"started OpenBao (https?://[\d.:]+)", output)
        assert bao_url, output
        bao_port = bao_url.group(1).rsplit(":", 1)[1]
        children = dict(
            line.split(": ", 1)
            for line in _processes_mentioning(workdir) + _processes_mentioning(f"127.0.0.1:{bao_port}")
        )
        pids = [int(pid) for pid in children]
        bao_workdirs = [
            os.readlink(f"/proc/{pid}/cwd") for pid, cmd in children.items() if " server -dev " in cmd
        ]
        assert len(pids) == 4 and len(bao_workdirs) == 1, children

        proc.kill()
        proc.wait()
        assert wait_until_exited(pids) == [], f"still running after the demo was SIGKILLed: {children}"
        assert _processes_mentioning(workdir) == []
        for url in urls:
            assert not _listening(url), f"{url} still accepts connections after the demo was SIGKILLed"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in wait_until_exited(pids, timeout=0):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if workdir is not None:
            for line in Path("/proc/mounts").read_text().splitlines():
                if line.split()[1].startswith(workdir):
                    subprocess.run(["umount", "-l", line.split()[1]], check=False)
            shutil.rmtree(workdir, ignore_errors=True)
        for path in bao_workdirs:
            shutil.rmtree(path, ignore_errors=True)


# -- the certificate scene (--pki) ---------------------------------------------------------------


def test_pki_scene_manifest_fits_the_crd_and_its_volume_passes_the_providers_validation() -> None:
    from csi_vso.demo import pkiscenario
    from csi_vso.operator.pkispec import parse_pki_secret

    manifest = pkiscenario.pki_manifest()
    crd = next(c for c in build_crds() if c["spec"]["names"]["kind"] == manifest["kind"])
    stored, errors = apply_schema(
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"], copy.deepcopy(manifest)
    )
    assert [e.message for e in errors] == [] and _contains(stored["spec"], manifest["spec"])
    spec = parse_pki_secret(manifest)  # the operator accepts it as is
    assert spec.is_tls and spec.expiry_offset == 20
    pod = {
        "name": scenario.POD_NAME,
        "namespace": scenario.APP_NAMESPACE,
        "uid": "u-1",
        "serviceAccount": "app",
    }
    attributes = scenario.mount_attributes(pod, pkiscenario.pki_spc_parameters())
    parsed = params.parse_request(
        attributes=json.dumps(attributes), secrets="null", target_path="/t", permission="420"
    )
    objects = validation.validate(parsed).objects
    assert [(o.secret_name, o.key) for o in objects] == [
        (pkiscenario.TLS_SECRET, "tls.crt"),
        (pkiscenario.TLS_SECRET, "tls.key"),
        (pkiscenario.TLS_SECRET, "ca.crt"),
    ]
    assert manifest["spec"]["allowedServiceAccounts"] == [pod["serviceAccount"]]


def test_certificate_rotation_report_says_whether_the_server_process_stayed() -> None:
    from csi_vso.demo.pkiscenario import CertificateRotation, format_certificate_rotation

    same = CertificateRotation(1, 42, 42, "AA", "BB", handshakes=90, failed=0, waited=8.5)
    assert format_certificate_rotation(same)[1:] == [
        "  TLS server pid 42 (the same process) presents serial AA -> BB",
        "  90 verified TLS handshakes while waiting, 0 failed",
    ]
    other = CertificateRotation(1, 41, 42, "AA", "BB", handshakes=1, failed=3, waited=1.0)
    assert "A NEW PROCESS (was 41)" in format_certificate_rotation(other)[1]


@pytest.mark.slow
def test_demo_pki_once_shows_a_new_serial_from_the_same_tls_server_process() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: the volumes are real tmpfs mounts, whose removal is checked")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_", "KUBECONFIG"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    command = [sys.executable, "-m", "csi_vso", "demo", "--pki", "--once", "--timeout", "90"]
    result = _run_demo(command, env, timeout=280)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    started = re.search(r"started a TLS server on 127\.0\.0\.1:\d+ \(pid (\d+)\)", result.stdout)
    first = re.search(r"it presents serial ([0-9A-F]+), verified against the root CA", result.stdout)
    rotated = re.search(
        r"TLS server pid (\d+) \(the same process\) presents serial ([0-9A-F]+) -> ([0-9A-F]+)\n"
        r"  (\d+) verified TLS handshakes while waiting, 0 failed",
        result.stdout,
    )
    assert started and first and rotated, output
    assert rotated.group(1) == started.group(1)  # the server was never restarted
    assert rotated.group(2) == first.group(1) and rotated.group(3) != first.group(1)
    assert int(rotated.group(4)) > 0
    assert "PRIVATE KEY" not in output
    workdir = re.search(r"workdir (\S+), uid", result.stdout)
    assert workdir and not Path(workdir.group(1)).exists()
    assert workdir.group(1) not in Path("/proc/mounts").read_text()
    assert _processes_mentioning(workdir.group(1)) == []
