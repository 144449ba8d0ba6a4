"""The PostgreSQL side of `python -m bot copy-db`: a read-only snapshot as a source, one transaction as a target.

Everything a copy does runs on one pooled connection held for the session: the source reads in a REPEATABLE READ
READ ONLY transaction (one snapshot for the counts, the rows and the usage), the target writes in one transaction
that first locks the copied tables, so a failed or interrupted copy rolls back to the empty database it found.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import asyncpg

from storage.schema import COPIED_TABLES, ID_TABLES, TABLE_KEYS, check_copy_names


class PostgresCopy:
    """Mixed into PostgresStorage; shares its pool."""

    _pool: asyncpg.Pool
    _copy_conn: asyncpg.Connection | None = None

    def _session(self) -> asyncpg.Connection:
        if self._copy_conn is None:
            raise RuntimeError("copy methods run inside copy_session()")
        return self._copy_conn

    async def database_identity(self) -> str:
        """The server (its start time) and the database: the same one reached by two spellings of a URL is
        recognised, so it is never both source and target."""
        row = await self._pool.fetchrow("SELECT current_database(), pg_postmaster_start_time()::text, "
                                        "COALESCE(inet_server_port(), 0)")
        assert row is not None
        return f"postgres:{row[0]}@{row[1]}:{row[2]}"

    @contextlib.asynccontextmanager
    async def copy_session(self, *, write: bool) -> AsyncIterator[None]:
        """One transaction for the whole copy, committed only if the block ends without an error. The target's
        tables are locked against other writers (a bot started on it too early waits instead of interleaving)."""
        if self._copy_conn is not None:
            raise RuntimeError("a copy session is already open")
        async with self._pool.acquire() as conn:
            transaction = conn.transaction() if write else conn.transaction(isolation="repeatable_read",
                                                                            readonly=True)
            async with transaction:
                if write:
                    await conn.execute(f"LOCK TABLE {', '.join(TABLE_KEYS)} IN EXCLUSIVE MODE")
                self._copy_conn = conn
                try:
                    yield
                finally:
                    self._copy_conn = None

    async def table_columns(self, table: str) -> list[str]:
        check_copy_names(table, ["x"])
        rows = await self._pool.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = $1 ORDER BY ordinal_position", table)
        return [row[0] for row in rows]

    async def table_counts(self) -> dict[str, int]:
        conn = self._session()
        return {table: int(await conn.fetchval(f"SELECT COUNT(*) FROM {table}")) for table in TABLE_KEYS}

    async def iter_rows(self, table: str, columns: Sequence[str], batch: int) -> AsyncIterator[list[tuple[Any, ...]]]:
        """The table in primary-key order, `batch` rows at a time, through a server-side cursor. Text keys sort
        by "C" so both dialects give the same order whatever the database's collation."""
        check_copy_names(table, columns)
        order = ", ".join(f'{key} COLLATE "C"' if key in ("name", "period") else key for key in TABLE_KEYS[table])
        rows: list[tuple[Any, ...]] = []
        async for record in self._session().cursor(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}",
                                                   prefetch=batch):
            rows.append(tuple(record))
            if len(rows) >= batch:
                yield rows
                rows = []
        if rows:
            yield rows

    async def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Rows as they are, ids included, through COPY (row triggers fire for COPY as for INSERT, so each held
        task is added to usage_counters)."""
        check_copy_names(table, columns)
        if table not in COPIED_TABLES:
            raise ValueError(f"{table} is rebuilt, not copied")
        await self._session().copy_records_to_table(table, records=[tuple(row) for row in rows],
                                                    columns=list(columns))

    async def id_high_water(self) -> dict[str, int]:
        """The highest id each id table ever handed out: its sequence's last value, or a higher copied id."""
        conn = self._session()
        found = {}
        for table in ID_TABLES:
            found[table] = int(await conn.fetchval(
                f"SELECT GREATEST(COALESCE(pg_sequence_last_value(pg_get_serial_sequence($1, 'id')::regclass), 0), "
                f"COALESCE((SELECT MAX(id) FROM {table}), 0))", table))
        return found

    async def after_copy(self, high_water: Mapping[str, int]) -> None:
        """Explicit ids do not move an identity sequence: set it past the highest id, so the next task is
        numbered above every copied one (and above ids the source handed out to rows since deleted)."""
        conn = self._session()
        for table in ID_TABLES:
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence($1, 'id'), top) FROM (SELECT GREATEST($2::bigint, "
                f"(SELECT COALESCE(MAX(id), 0) FROM {table})) AS top) AS t WHERE top > 0",
                table, int(high_water.get(table, 0)))
