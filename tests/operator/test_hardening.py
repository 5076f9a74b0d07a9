"""Issue 10 (adversarial review), operator side: one test per finding, named after it.

Each of these failed on the code before the fix. Logins go to a real OpenBao; a tenant's "own
Vault server" is a real HTTP listener that records every request it gets, so "nothing was sent
there" is an observation, not an assumption.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from csi_vso import protected
from csi_vso.devkit.openbao import OpenBaoDevServer
from csi_vso.operator import addresses, api, secretcache
from tests.operator.conftest import (
    Cluster,
    OperatorFactory,
    VaultAuthSetup,
    static_secret,
    wait_for,
)


class _Recorder(http.server.BaseHTTPRequestHandler):
    """A would-be Vault server that answers 500 and remembers every request line."""

    seen: list[str]

    def _any(self) -> None:
        self.seen.append(f"{self.command} {self.path}")
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_PUT = do_POST = _any

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def hostile_vault() -> Iterator[tuple[str, list[str]]]:
    """(address, requests seen) of a listener standing in for a tenant's own Vault server."""
    seen: list[str] = []
    handler = type("Recorder", (_Recorder,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def _connection(namespace: str, name: str, address: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": api.API_VERSION,
        "kind": "VaultConnection",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"address": address, **spec},
    }


def _kubernetes_auth(
    namespace: str, name: str, connection: str, mount: str, **kubernetes: Any
) -> dict[str, Any]:
    return {
        "apiVersion": api.API_VERSION,
        "kind": "VaultAuth",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "vaultConnectionRef": connection,
            "method": "kubernetes",
            "mount": mount,
            "kubernetes": {"role": "app", "serviceAccount": "app", **kubernetes},
        },
    }


def _reason(cluster: Cluster, kind: str, namespace: str, name: str, type: str = "Ready") -> str | None:
    condition = cluster.condition(kind, namespace, name, type)
    return condition["reason"] if condition and condition["status"] == "False" else None


def _warning_reasons(cluster: Cluster, namespace: str, name: str) -> set[str]:
    return {e.reason for e in cluster.events(namespace, name) if e.type == "Warning"}


def _assert_refused(
    cluster: Cluster, namespace: str, reason: str, objects: list[tuple[str, str, str]]
) -> None:
    """Each (kind, name, condition type) turns False with ``reason`` and gets a Warning event.

    An object reconciled before its reference reached the operator's cache first says so (for
    instance ``VaultConnectionNotFound``); the change to the reference re-queues it, so the wait
    is for the final reason, and a timeout names the reason it was stuck on."""
    for kind, name, type in objects:
        seen: list[str | None] = []

        def refused(k: str = kind, n: str = name, t: str = type, seen: list[str | None] = seen) -> bool:
            seen.append(_reason(cluster, k, namespace, n, t))
            return seen[-1] == reason

        try:
            wait_for(refused, what=f"{kind} {name} refused with {reason}")
        except AssertionError as timed_out:
            raise AssertionError(f"{timed_out}; its last reason was {seen[-1]!r}") from None
        assert reason in wait_for(
            lambda n=name: _warning_reasons(cluster, namespace, n), what=f"event on {name}"
        )


# --------------------------------------------------------------------------- finding 3


@pytest.mark.parametrize("seconds", [3601, 315_360_000])
def test_finding3_token_lifetime_above_an_hour_is_refused_by_the_parser(seconds: int) -> None:
    obj = {"spec": {"method": "kubernetes", "kubernetes": {"role": "r", "serviceAccount": "sa"}}}
    obj["spec"]["kubernetes"]["tokenExpirationSeconds"] = seconds  # type: ignore[index]
    with pytest.raises(api.SpecError) as caught:
        api.parse_auth(obj)
    assert caught.value.problems == (
        f"kubernetes.tokenExpirationSeconds must be at most 3600 (got {seconds})",
    )
    ok = api.parse_auth(
        {"spec": {"method": "kubernetes", "kubernetes": {"role": "r", "serviceAccount": "sa"}}}
    )
    assert ok.kubernetes is not None and ok.kubernetes.token_expiration_seconds == 600  # VSO's default


def test_finding3_token_lifetime_above_an_hour_is_refused_by_the_crd_schema(
    cluster: Cluster, namespace: str
) -> None:
    auth = _kubernetes_auth(namespace, "long", "default", "kubernetes", tokenExpirationSeconds=315_360_000)
    with pytest.raises(ApiException) as caught:
        cluster.apply(auth)
    assert caught.value.status == 422
    assert "spec.kubernetes.tokenExpirationSeconds" in str(caught.value.body)
    auth["spec"]["kubernetes"]["tokenExpirationSeconds"] = 3600
    cluster.apply(auth)  # the documented maximum is accepted


@pytest.mark.parametrize(
    ("patterns", "address", "allowed"),
    [
        ((), "http://anything.example:1234", True),  # default: any address
        (("https://vault.example.com:8200",), "https://vault.example.com:8200", True),
        (("https://vault.example.com:8200",), "https://VAULT.example.com:8200/", True),
        (("https://vault.example.com:8200",), "https://vault.example.com:8200/v1/x", True),
        (("https://vault.example.com:8200",), "https://vault.example.com:8201", False),
        (("https://vault.example.com:8200",), "http://vault.example.com:8200", False),
        (("https://vault.example.com",), "https://vault.example.com.evil.net", False),
        (("https://vault.example.com",), "https://vault.example.com@evil.net", False),
        (("https://vault.example.com/v1",), "https://vault.example.com/v10", False),
        (("vault.example.com",), "http://vault.example.com:8200", True),
        (("vault.example.com:8200",), "https://vault.example.com", False),
        (("vault.example.com:443",), "https://vault.example.com", True),
        (("*.vault.svc",), "http://a.b.vault.svc:8200", True),
        (("*.vault.svc",), "http://vault.svc:8200", False),
        (("*.vault.svc",), "http://evilvault.svc", False),
        (("*.vault.svc",), "http://x@evil.net/.vault.svc", False),
        (("[::1]:8200",), "http://[::1]:8200", True),
        (("a.example", "b.example"), "https://b.example", True),
    ],
)
def test_finding3_allowed_vault_address_patterns(
    patterns: tuple[str, ...], address: str, allowed: bool
) -> None:
    assert addresses.address_allowed(address, addresses.parse_patterns(patterns)) is allowed


@pytest.mark.parametrize(
    ("address", "shown"),
    [
        ("https://user:pa55word@vault.example.com:8200/v1", "https://vault.example.com:8200/v1"),
        ("https://vault.example.com", "https://vault.example.com"),
    ],
)
def test_finding3_a_refused_address_is_reported_without_credentials(address: str, shown: str) -> None:
    assert addresses.without_userinfo(address) == shown


def test_finding3_bad_allowed_vault_address_patterns_are_all_reported() -> None:
    with pytest.raises(ValueError) as caught:
        addresses.parse_patterns(["ftp://x", "good.example,bad host", "h:99999"])
    assert str(caught.value) == (
        "'ftp://x' is not an http:// or https:// URL prefix; "
        "'bad host' is not a host, host:port or *.domain pattern; "
        "'h:99999' has a port outside 1-65535"
    )


def test_finding3_no_login_goes_to_an_address_outside_allowed_vault_addresses(
    openbao: OpenBaoDevServer,
    cluster: Cluster,
    k8s_vault: VaultAuthSetup,
    kv_mount: str,
    operator: OperatorFactory,
    hostile_vault: tuple[str, list[str]],
) -> None:
    ns = k8s_vault.namespace
    hostile, seen = hostile_vault
    openbao.client().secrets.kv.v2.create_or_update_secret(
        mount_point=kv_mount, path="app", secret={"password": "pinned"}
    )
    operator(allowed_vault_addresses=addresses.parse_patterns([openbao.address]))
    cluster.apply(_connection(ns, "tenant", hostile))
    cluster.apply(_kubernetes_auth(ns, "tenant", "tenant", k8s_vault.mount))
    cluster.apply(
        static_secret(ns, "stolen", mount=kv_mount, path="app", destination="stolen", vaultAuthRef="tenant")
    )
    # The allowed connection (k8s_vault's, at OpenBao) still works: a real login and read.
    cluster.apply(static_secret(ns, "fine", mount=kv_mount, path="app", destination="fine", type="kv-v2"))
    assert wait_for(lambda: cluster.secret_data(ns, "fine"), what="allowed sync") == {"password": "pinned"}

    _assert_refused(
        cluster,
        ns,
        "VaultAddressNotAllowed",
        [
            ("VaultConnection", "tenant", "Ready"),
            ("VaultAuth", "tenant", "Ready"),
            ("VaultStaticSecret", "stolen", "SecretSynced"),
        ],
    )
    message = cluster.condition("VaultStaticSecret", ns, "stolen", "SecretSynced")
    assert (
        message is not None
        and hostile in message["message"]
        and "--allowed-vault-addresses" in message["message"]
    )
    assert cluster.secret(ns, "stolen") is None
    assert seen == []  # not one request (no login, no token) reached the tenant's server


# --------------------------------------------------------------------------- finding 9


def test_finding9_vault_connection_of_another_namespace_needs_its_allowed_namespaces(
    openbao: OpenBaoDevServer,
    cluster: Cluster,
    k8s_vault: VaultAuthSetup,
    kv_mount: str,
    operator: OperatorFactory,
) -> None:
    ns = k8s_vault.namespace
    other = f"{ns}-conn"
    cluster.ensure_namespace(other)
    try:
        openbao.client().secrets.kv.v2.create_or_update_secret(
            mount_point=kv_mount, path="app", secret={"password": "shared"}
        )
        operator()  # operator namespace = ns; `other` is an ordinary tenant namespace
        cluster.apply(_connection(other, "private", openbao.address, headers={"X-Team": "other"}))
        cluster.apply(_kubernetes_auth(ns, "borrow", f"{other}/private", k8s_vault.mount))
        cluster.apply(
            static_secret(
                ns, "borrowed", mount=kv_mount, path="app", destination="borrowed", vaultAuthRef="borrow"
            )
        )
        _assert_refused(
            cluster,
            ns,
            "VaultConnectionNotAllowed",
            [("VaultAuth", "borrow", "Ready"), ("VaultStaticSecret", "borrowed", "SecretSynced")],
        )
        assert cluster.secret(ns, "borrowed") is None

        # The connection's owner shares it: the same VaultAuth now logs in (real OpenBao).
        cluster.patch_spec("VaultConnection", other, "private", {"allowedNamespaces": [ns]})
        assert wait_for(lambda: cluster.secret_data(ns, "borrowed"), timeout=30, what="shared sync") == {
            "password": "shared"
        }
    finally:
        cluster.core.delete_namespace(other)


@pytest.mark.parametrize(
    ("allowed", "connection_ns", "auth_ns", "expected"),
    [
        (None, "a", "a", True),  # own namespace
        (None, "ops", "a", True),  # the operator's namespace: the platform's shared connection
        (None, "b", "a", False),
        (["a"], "b", "a", True),
        (["c"], "b", "a", False),
        (["*"], "b", "a", True),
        ([], "ops", "a", False),  # an explicit empty list closes even the operator's connection
    ],
)
def test_finding9_connection_allowed_namespaces_table(
    allowed: list[str] | None, connection_ns: str, auth_ns: str, expected: bool
) -> None:
    spec: dict[str, Any] = {"address": "https://vault:8200"}
    if allowed is not None:
        spec["allowedNamespaces"] = allowed
    connection = api.parse_connection({"spec": spec})
    assert api.connection_allows_namespace(connection, connection_ns, auth_ns, "ops") is expected


def test_finding9_connection_allowed_namespaces_are_validated() -> None:
    with pytest.raises(api.SpecError) as caught:
        api.parse_connection({"spec": {"address": "https://v", "allowedNamespaces": ["ok", "Not_OK"]}})
    assert caught.value.problems == ("allowedNamespaces: 'Not_OK' is not a namespace name or '*'",)


# --------------------------------------------------------------------------- finding 2b


def _labelled(name: str, owner: str, *, blob: int = 1024) -> client.V1Secret:
    return client.V1Secret(
        metadata=client.V1ObjectMeta(
            name=name,
            namespace="team-a",
            uid=f"uid-{name}",
            resource_version="7",
            labels={**protected.protected_labels(owner), "big": "x" * 60},
            annotations={"a": "y" * blob},
            owner_references=[
                client.V1OwnerReference(api_version="v1", kind="ConfigMap", name="c", uid="cm"),
                *(
                    client.V1OwnerReference(
                        api_version=api.API_VERSION,
                        kind="VaultStaticSecret",
                        name=f"o{i}",
                        uid=f"{owner}-{i}",
                    )
                    for i in range(10)
                ),
            ],
        ),
        data={"blob": "A" * blob},
    )


def test_finding2b_the_cache_keeps_only_metadata_of_a_secret_no_custom_resource_writes() -> None:
    ours = {("team-a", "mine"): {"cr-1"}}

    def is_ours(namespace: str, name: str, claimed: set[str]) -> bool:
        return bool(ours.get((namespace, name), set()) & claimed)

    mine = _labelled("mine", "cr-1")
    assert secretcache.slim(mine, is_ours) is mine  # our destination: whole, data included
    for forged in (_labelled("forged", "cr-1"), _labelled("mine", "someone-else")):
        kept = secretcache.slim(forged, is_ours)
        assert isinstance(kept, secretcache.MetadataOnly)
        assert kept.data is None and kept.metadata.annotations is None
        assert kept.metadata.labels == protected.protected_labels(
            forged.metadata.labels[protected.OWNER_UID_LABEL]
        )
        assert (kept.metadata.name, kept.metadata.uid) == (forged.metadata.name, forged.metadata.uid)
        # only our group's references, at most 4: enough to find an owner, bounded in size
        assert [r.kind for r in kept.metadata.owner_references] == ["VaultStaticSecret"] * 4
        assert secretcache.slim(kept, is_ours) is kept


def test_finding2b_the_list_is_paged_and_each_page_slimmed() -> None:
    pages = {
        None: (["a", "b"], "t1"),
        "t1": (["c", "d"], "t2"),
        "t2": (["e"], None),
    }
    calls: list[dict[str, Any]] = []

    def list_page(**kwargs: Any) -> client.V1SecretList:
        calls.append(kwargs)
        names, token = pages[kwargs.get("_continue")]
        return client.V1SecretList(
            items=[_labelled(n, "x") for n in names],
            metadata=client.V1ListMeta(
                resource_version="41" if kwargs.get("_continue") is None else "99", _continue=token
            ),
        )

    listing = secretcache.paged_list(list_page, lambda s: secretcache.slim(s, lambda *_: False), page_size=2)
    answer = listing(label_selector="app.kubernetes.io/managed-by=csi-vso")
    assert [s.metadata.name for s in answer.items] == ["a", "b", "c", "d", "e"]
    assert all(isinstance(s, secretcache.MetadataOnly) for s in answer.items)
    assert answer.metadata.resource_version == "41"  # the snapshot of the first page
    assert [c.get("_continue") for c in calls] == [None, "t1", "t2"]
    assert all(
        c["limit"] == 2 and c["label_selector"] == "app.kubernetes.io/managed-by=csi-vso" for c in calls
    )
    assert listing(watch=True) is not None and calls[-1] == {"watch": True}  # a watch passes through


# --------------------------------------------------------------------------- what held


def test_held_overwrite_false_and_destination_marks_cannot_forge_protection(
    openbao: OpenBaoDevServer,
    cluster: Cluster,
    k8s_vault: VaultAuthSetup,
    kv_mount: str,
    operator: OperatorFactory,
) -> None:
    """Regression guard for two things the review found holding: a second custom resource
    cannot take over the first one's protected Secret without ``overwrite: true``, and
    ``destination.labels``/``annotations`` cannot forge the owner, un-protect the Secret or widen
    its access policy."""
    ns = k8s_vault.namespace
    openbao.client().secrets.kv.v2.create_or_update_secret(
        mount_point=kv_mount, path="app", secret={"k": "v"}
    )
    operator()
    first = cluster.apply(
        static_secret(
            ns,
            "first",
            mount=kv_mount,
            path="app",
            destination="target",
            type="kv-v2",
            allowedKubernetesNamespaces=["team-b"],
        )
    )
    forged = {
        "labels": {
            protected.OWNER_UID_LABEL: "someone-else",
            protected.PROTECTED_LABEL: "false",
            "team": "a",
        },
        "annotations": {
            protected.ALLOWED_NAMESPACES_ANNOTATION: '["*"]',
            protected.ALLOWED_SERVICE_ACCOUNTS_ANNOTATION: '["*"]',
            protected.CONTENT_MAC_ANNOTATION: "forged",
            "note": "kept",
        },
    }
    cluster.patch_spec(
        "VaultStaticSecret", ns, "first", {"destination": {"name": "target", "create": True, **forged}}
    )
    uid = first["metadata"]["uid"]

    def marks_are_ours() -> bool:
        secret = cluster.secret(ns, "target")
        return bool(secret and (secret.metadata.labels or {}).get("team") == "a")

    wait_for(marks_are_ours, what="destination metadata applied")
    secret = cluster.secret(ns, "target")
    assert secret is not None
    assert secret.metadata.labels == {"team": "a", **protected.protected_labels(uid)}
    annotations = secret.metadata.annotations
    assert annotations[protected.ALLOWED_NAMESPACES_ANNOTATION] == '["team-b"]'
    assert protected.ALLOWED_SERVICE_ACCOUNTS_ANNOTATION not in annotations
    assert annotations[protected.CONTENT_MAC_ANNOTATION] != "forged" and annotations["note"] == "kept"
    version = secret.metadata.resource_version

    # A second custom resource aimed at the same (protected, not its own) Secret is refused.
    cluster.apply(static_secret(ns, "second", mount=kv_mount, path="app", destination="target", type="kv-v2"))
    _assert_refused(cluster, ns, "SecretNotOwned", [("VaultStaticSecret", "second", "SecretSynced")])
    after = cluster.secret(ns, "target")
    assert after is not None and after.metadata.labels[protected.OWNER_UID_LABEL] == uid
    assert after.metadata.resource_version == version  # not written by the second one
