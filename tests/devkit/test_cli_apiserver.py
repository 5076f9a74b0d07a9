"""`csi-vso devkit apiserver` as a subprocess: ready line, kubeconfig, token file, SIGTERM."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes import client, config

from csi_vso.devkit.main import parse_token_file


def test_subprocess_serves_until_sigterm(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    tokens = tmp_path / "tokens.csv"
    tokens.write_text('bob-token,bob,uid-1,"devs,ops"\n')
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "csi_vso",
            "devkit",
            "apiserver",
            "--port",
            "0",
            "--kubeconfig",
            str(kubeconfig),
            "--token-file",
            str(tokens),
            "--token-cache-ttl",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.fullmatch(r"apiserver ready url=(http://127\.0\.0\.1:\d+) kubeconfig=(\S+)\n", line)
        assert match, line
        assert match.group(2) == str(kubeconfig)
        assert kubeconfig.stat().st_mode & 0o077 == 0  # it holds a bearer token
        with config.new_client_from_config(config_file=str(kubeconfig)) as api:
            assert api.configuration.host == match.group(1)
            core = client.CoreV1Api(api)
            names = [n.metadata.name for n in core.list_namespace().items]
            assert names == ["default", "kube-system"]
            # --token-cache-ttl 0: a review answers from the store every time.
            core.create_namespaced_service_account("default", {"metadata": {"name": "app"}})
            token = core.create_namespaced_service_account_token("app", "default", {"spec": {}}).status.token
            review = {"spec": {"token": token}}
            authn = client.AuthenticationV1Api(api)
            assert authn.create_token_review(review).status.authenticated is True
            core.delete_namespaced_service_account("app", "default")
            assert authn.create_token_review(review).status.authenticated is not True
            api.configuration.refresh_api_key_hook = None
            api.configuration.api_key = {"BearerToken": "Bearer bob-token"}
            me = client.AuthenticationV1Api(api).create_self_subject_review({})
            assert me.status.user_info.username == "bob"
            assert me.status.user_info.groups == ["devs", "ops", "system:authenticated"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("t1,alice,u1\n", {"t1": ("alice", ("system:authenticated",), "u1")}),
        ('t2,bob,,"a, b"\n# comment\n\n', {"t2": ("bob", ("a", "b", "system:authenticated"), "")}),
    ],
)
def test_token_file_parsing(text: str, expected: dict[str, tuple[str, tuple[str, ...], str]]) -> None:
    users = parse_token_file(text)
    assert {k: (u.name, u.groups, u.uid) for k, u in users.items()} == expected


def test_token_file_errors_name_the_line() -> None:
    with pytest.raises(ValueError, match="token file line 2: need at least token,user"):
        parse_token_file("t1,alice\nonly-a-token\n")


def _run_apiserver(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "csi_vso", "devkit", "apiserver", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_startup_failures_are_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = _run_apiserver("--port", str(port), "--kubeconfig", str(tmp_path / "kc"))
    assert busy.returncode == 1 and busy.stdout == ""
    assert busy.stderr == (
        f"csi-vso devkit apiserver: cannot listen on 127.0.0.1:{port}: [Errno 98] Address already in use\n"
    )
    (tmp_path / "file").write_text("")
    unwritable = _run_apiserver("--port", "0", "--kubeconfig", str(tmp_path / "file" / "kc"))
    assert unwritable.returncode == 1 and unwritable.stdout == ""
    assert unwritable.stderr.startswith("csi-vso devkit apiserver: cannot write the kubeconfig: ")
    assert "Traceback" not in unwritable.stderr
