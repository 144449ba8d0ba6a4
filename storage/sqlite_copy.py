"""The SQLite side of `python -m bot copy-db`: a read-only source, streamed rows, one write transaction on a target.

As a source the file is opened read-only (`mode=ro`), so copying cannot change it: no migration, no journal mode
switch, no checkpoint. As a target everything goes in under one `BEGIN IMMEDIATE`, so a failed copy leaves the
file as empty as it was.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import aiosqlite

from storage.schema import COPIED_TABLES, ID_TABLES, TABLE_KEYS, check_copy_names, migrations


class SQLiteCopy:
    """Mixed into SQLiteStorage; shares its connection."""

    _db: aiosqlite.Connection

    @classmethod
    async def open_readonly(cls, path: str) -> Self:
        """The file as a source that cannot be written to (FileNotFoundError when there is none: opening it the
        usual way would create an empty database and copy nothing). No migrations: see `schema_version`."""
        db = await aiosqlite.connect(_readonly_uri(path), uri=True, isolation_level=None)
        db.row_factory = aiosqlite.Row
        try:
            await db.execute("PRAGMA busy_timeout=5000")
            await db.execute("SELECT COUNT(*) FROM sqlite_master")  # a file that is not a database fails here
        except BaseException:
            await db.close()
            raise
        return cls(db)  # type: ignore[call-arg]  # SQLiteStorage(db)

    async def schema_version(self) -> tuple[int, int]:
        """(this file's migration number, the newest this code has): a source behind must be migrated first."""
        async with self._db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        return (row[0] if row else 0), migrations("sqlite")[-1][0]

    async def database_identity(self) -> str:
        """The file itself (device and inode), so one database is never both source and target, however its
        URL is spelled (a symlink, a hard link, a relative path)."""
        async with self._db.execute("PRAGMA database_list") as cur:
            rows = await cur.fetchall()
        return _file_identity(next((row[2] for row in rows if row[1] == "main"), ""))

    @contextlib.asynccontextmanager
    async def copy_session(self, *, write: bool) -> AsyncIterator[None]:
        """One transaction for the whole copy: a snapshot to read (WAL readers see one commit throughout), or the
        write lock for the target, committed only if the block ends without an error."""
        await self._db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield
        except BaseException:
            if self._db.in_transaction:
                with contextlib.suppress(Exception):
                    await self._db.execute("ROLLBACK")
            raise
        await self._db.execute("COMMIT")

    async def table_columns(self, table: str) -> list[str]:
        check_copy_names(table, ["x"])
        async with self._db.execute(f"PRAGMA table_info({table})") as cur:
            return [row[1] for row in await cur.fetchall()]

    async def table_counts(self) -> dict[str, int]:
        counts = {}
        for table in TABLE_KEYS:
            async with self._db.execute(f"SELECT COUNT(*) FROM {table}") as cur:
                row = await cur.fetchone()
            counts[table] = int(row[0]) if row else 0
        return counts

    async def iter_rows(self, table: str, columns: Sequence[str], batch: int) -> AsyncIterator[list[tuple[Any, ...]]]:
        """The table in primary-key order, `batch` rows at a time, from one cursor (never the whole table)."""
        check_copy_names(table, columns)
        sql = f"SELECT {', '.join(columns)} FROM {table} ORDER BY {', '.join(TABLE_KEYS[table])}"
        async with self._db.execute(sql) as cur:
            while rows := await cur.fetchmany(batch):
                yield [tuple(row) for row in rows]

    async def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Rows as they are, ids included; the tasks insert trigger adds each held task to usage_counters."""
        check_copy_names(table, columns)
        if table not in COPIED_TABLES:
            raise ValueError(f"{table} is rebuilt, not copied")
        marks = ", ".join("?" for _ in columns)
        await self._db.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    async def id_high_water(self) -> dict[str, int]:
        """The highest id each id table ever handed out: AUTOINCREMENT remembers ids of deleted rows too."""
        found = {}
        for table in ID_TABLES:
            async with self._db.execute(
                    f"SELECT MAX(IFNULL((SELECT seq FROM sqlite_sequence WHERE name = ?), 0), "
                    f"IFNULL((SELECT MAX(id) FROM {table}), 0))", (table,)) as cur:
                row = await cur.fetchone()
            found[table] = int(row[0]) if row else 0
        return found

    async def after_copy(self, high_water: Mapping[str, int]) -> None:
        """New ids continue above the source's: inserting explicit ids already moved sqlite_sequence to the
        highest copied one; a source whose last rows were deleted had handed out more, so take that too."""
        for table in ID_TABLES:
            high = int(high_water.get(table, 0))
            if high <= 0:
                continue
            cur = await self._db.execute("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = ?", (high, table))
            updated = cur.rowcount
            await cur.close()
            if not updated:
                await self._db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, high))


def _readonly_uri(path: str) -> str:
    """`file:///abs/path?mode=ro` for an existing file (percent-encoded, so any file name is safe)."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"no database file at {path}")
    return f"{file.resolve().as_uri()}?mode=ro"


def _file_identity(path: str) -> str:
    if not path:
        return "sqlite::memory:"
    found = os.stat(path)
    return f"sqlite:{found.st_dev}:{found.st_ino}"
