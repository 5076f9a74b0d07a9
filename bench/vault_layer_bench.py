"""Cost of the operator's Vault layer against a real OpenBao dev server (and real PostgreSQL).

What the operator pays per reconcile, so its own benchmarks can tell whether Vault calls or the
operator dominate: an AppRole login, a kv-v2 read, a mount detection, a lease renewal, and one
issue of database credentials (OpenBao creating a PostgreSQL role). Sequential calls, one
session; the table shows the median over ``--runs`` of p50, p99 and calls/s.

    python bench/vault_layer_bench.py [--calls 300] [--runs 3] [--no-db]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from csi_vso.devkit.openbao import OpenBaoDevServer
from csi_vso.devkit.postgres import PostgresServer
from csi_vso.operator.vault import AuthSettings, ConnectionSettings, VaultSession

CREATE = [
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
]


def measure(fn: Callable[[], object], calls: int) -> tuple[float, float, float]:
    samples = []
    start = time.perf_counter()
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    total = time.perf_counter() - start
    samples.sort()
    return (
        samples[len(samples) // 2] * 1000,
        samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1000,
        calls / total,
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-db", action="store_true", help="skip the database engine rows")
    args = parser.parse_args()

    with OpenBaoDevServer() as bao:
        root = bao.client()
        root.sys.enable_secrets_engine("kv", path="kv", options={"version": "2"})
        root.secrets.kv.v2.create_or_update_secret(
            mount_point="kv", path="app", secret={f"k{i}": "x" * 100 for i in range(10)}
        )
        root.sys.enable_auth_method("approle")
        root.sys.create_or_update_policy(
            name="bench",
            policy='path "kv/*" { capabilities = ["read"] }\npath "db/creds/*" { capabilities = ["read"] }\n'
            'path "sys/leases/*" { capabilities = ["update"] }\npath "sys/internal/ui/mounts/*" '
            '{ capabilities = ["read"] }',
        )
        root.write("auth/approle/role/bench", token_policies=["bench"], token_ttl="1h")
        root.write("auth/approle/role/bench/role-id", role_id="bench-role")
        root.write("auth/approle/role/bench/custom-secret-id", secret_id="bench-secret")
        auth = AuthSettings(method="appRole", app_role_id="bench-role", app_role_secret_id="bench-secret")
        session = VaultSession(connection=ConnectionSettings(address=bao.address, timeout=10), auth=auth)
        session.login()

        rows: dict[str, Callable[[], object]] = {
            "approle login": session.login,
            "read_kv (kv-v2, 10 keys)": lambda: session.read_kv("kv", "app", kv_version=2),
            "detect_kv_version": lambda: session.detect_kv_version("kv"),
        }
        pg: PostgresServer | None = None
        if not args.no_db:
            pg = PostgresServer()
            pg.start()
            root.sys.enable_secrets_engine("database", path="db")
            root.write(
                "db/config/pg",
                plugin_name="postgresql-database-plugin",
                connection_url=pg.vault_connection_url(),
                username=pg.superuser,
                password=pg.password,
                allowed_roles="*",
            )
            root.write(
                "db/roles/app", db_name="pg", creation_statements=CREATE, default_ttl="1h", max_ttl="24h"
            )
            lease = session.read_dynamic("db", "creds/app").lease
            rows["renew_lease"] = lambda: session.renew_lease(lease.id, 3600)
            rows["read_dynamic (new PG role)"] = lambda: session.read_dynamic("db", "creds/app")
        try:
            header = f"{'operation':<28} {'p50 ms':>8} {'p99 ms':>8} {'calls/s':>9}"
            print(f"{header}   ({args.calls} calls x {args.runs} runs; login/dynamic: a fifth)")
            for name, fn in rows.items():
                calls = max(20, args.calls // 5) if "dynamic" in name or "login" in name else args.calls
                results = [measure(fn, calls) for _ in range(args.runs)]
                p50 = statistics.median(r[0] for r in results)
                p99 = statistics.median(r[1] for r in results)
                rate = statistics.median(r[2] for r in results)
                print(f"{name:<28} {p50:>8.2f} {p99:>8.2f} {rate:>9.0f}")
        finally:
            session.close()
            if pg is not None:
                pg.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
