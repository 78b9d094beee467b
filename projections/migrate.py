"""Versioned SQL migrations, applied in file-name order, each once, under an advisory lock."""

from __future__ import annotations

from pathlib import Path

import psycopg

MIGRATIONS = Path(__file__).parent / "migrations"
LOCK_ID = 0x41494F4E  # "AION": one migrator at a time across processes


def migrate(database_url: str) -> list[str]:
    """Apply pending migrations; returns the names applied now."""
    applied_now = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(%s)", (LOCK_ID,))
        try:
            conn.execute(
                "create table if not exists schema_migrations ("
                " version text primary key, applied_at timestamptz not null default now())"
            )
            done = {r[0] for r in conn.execute("select version from schema_migrations")}
            for path in sorted(MIGRATIONS.glob("*.sql")):
                if path.stem in done:
                    continue
                with conn.transaction():
                    conn.execute(path.read_bytes())
                    conn.execute(
                        "insert into schema_migrations (version) values (%s)", (path.stem,)
                    )
                applied_now.append(path.stem)
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (LOCK_ID,))
    return applied_now
