"""SQLite driver (aiosqlite): WAL mode, numbered migrations, conditional updates."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from storage import TaskRecord
from storage.schema import NOT_ENDED, SCHEDULED_RUNNING, conditional_update, migrations
from storage.sqlite_copy import SQLiteCopy
from storage.sqlite_quotas import SQLiteQuotas

log = logging.getLogger(__name__)

class SQLiteStorage(SQLiteQuotas, SQLiteCopy):
    """The Storage interface on one aiosqlite connection (aiosqlite serialises calls on its thread)."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    @classmethod
    async def open(cls, path: str) -> SQLiteStorage:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path, isolation_level=None)
        db.row_factory = aiosqlite.Row
        storage = cls(db)
        try:
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=5000", "foreign_keys=ON"):
                await db.execute(f"PRAGMA {pragma}")
            await storage._migrate()
        except BaseException:
            await db.close()  # else aiosqlite's thread keeps the process alive
            raise
        return storage

    async def _migrate(self) -> None:
        async with self._db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        current = row[0] if row else 0
        for number, name, sql in migrations("sqlite"):
            if number <= current:
                continue
            log.info("applying migration %s", name)
            # One script per file, in one transaction with its version bump (triggers hold ';' inside).
            try:
                await self._db.executescript(f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;")
            except BaseException:
                if self._db.in_transaction:
                    await self._db.execute("ROLLBACK")
                raise

    async def close(self) -> None:
        await self._db.close()

    async def ping(self) -> None:
        await self._db.execute_fetchall("SELECT 1")

    async def count_active(self) -> int:
        rows = await self._db.execute_fetchall(
            f"SELECT COUNT(*) FROM tasks WHERE {NOT_ENDED}")
        return int(rows[0][0])

    async def get_task(self, task_id: int) -> TaskRecord | None:
        return await self._one("SELECT * FROM tasks WHERE id = ?", (task_id,))

    async def get_task_by_upstream_id(self, upstream_id: str) -> TaskRecord | None:
        return await self._one("SELECT * FROM tasks WHERE upstream_id = ?", (upstream_id,))

    async def update_task(self, task_id: int, changes: Mapping[str, Any],
                          expect: Mapping[str, Any] | None = None) -> TaskRecord | None:
        if not changes:
            return await self.get_task(task_id)
        return await self._one(*conditional_update(task_id, changes, expect or {}, lambda n: "?"))

    async def claim_due(self, now: float, limit: int, *, owner: str, lease: float,
                        exclude: Sequence[int] = ()) -> tuple[list[TaskRecord], int]:
        """One process per SQLite file (start-up refuses a second), so every due task is this process's: a plain
        read, no lease to write (a lease left by an earlier run of this process is not waited for)."""
        due = await self._many(
            f"SELECT * FROM tasks WHERE next_poll_at IS NOT NULL AND next_poll_at <= ? {_skip_ids(exclude)} "
            "AND NOT (status = 'submitting' AND lease_until > ?) ORDER BY next_poll_at LIMIT ?",
            (now, *exclude, now, limit),
        )
        return due, 0

    async def renew_lease(self, task_id: int, owner: str, until: float) -> bool:
        return True  # nobody else can hold it (see claim_due)

    async def result_dms(self, user_id: int) -> bool:
        rows = await self._db.execute_fetchall("SELECT result_dms FROM member_settings WHERE user_id = ?", (user_id,))
        return not rows or bool(rows[0][0])

    async def set_result_dms(self, user_id: int, enabled: bool) -> None:
        await self._db.execute("INSERT INTO member_settings (user_id, result_dms) VALUES (?, ?) ON CONFLICT (user_id) "
                               "DO UPDATE SET result_dms = excluded.result_dms", (user_id, int(enabled)))

    async def take_turn(self, name: str, now: float, interval: float) -> bool:
        rows = await self._db.execute_fetchall(
            "INSERT INTO throttles (name, last_at) VALUES (?, ?) ON CONFLICT (name) DO UPDATE "
            "SET last_at = excluded.last_at WHERE throttles.last_at <= excluded.last_at - ? RETURNING name",
            (name, now, interval))
        return bool(rows)

    async def set_flag(self, name: str, on: bool, at: float) -> bool:
        at = abs(at)
        if on:  # insert (flags start off) or turn an older "off" over; else note the newer "on"
            flipped = await self._db.execute_fetchall(
                "INSERT INTO throttles (name, last_at) VALUES (?, ?) ON CONFLICT (name) DO UPDATE "
                "SET last_at = excluded.last_at WHERE throttles.last_at < 0 AND -throttles.last_at < excluded.last_at "
                "RETURNING name", (name, at))
            if not flipped:
                await self._db.execute_fetchall(
                    "UPDATE throttles SET last_at = ? WHERE name = ? AND 0 < last_at AND last_at < ?", (at, name, at))
            return bool(flipped)
        flipped = await self._db.execute_fetchall(
            "UPDATE throttles SET last_at = -? WHERE name = ? AND 0 < last_at AND last_at < ? RETURNING name",
            (at, name, at))
        if not flipped:
            await self._db.execute_fetchall(
                "INSERT INTO throttles (name, last_at) VALUES (?, ?) ON CONFLICT (name) DO UPDATE "
                "SET last_at = excluded.last_at WHERE excluded.last_at < throttles.last_at AND throttles.last_at < 0",
                (name, -at))
        return bool(flipped)

    async def next_due_at(self, *, owner: str, exclude: Sequence[int] = ()) -> float | None:
        skip = _skip_ids(exclude)
        rows = await self._db.execute_fetchall(
            f"SELECT MIN(next_poll_at) FROM tasks WHERE next_poll_at IS NOT NULL {skip}", tuple(exclude))
        return rows[0][0] if rows else None

    async def make_due(self, task_id: int, callback_token: str, now: float) -> bool | None:
        params = {"id": task_id, "token": callback_token, "now": now}
        if await self._db.execute_fetchall(
                "UPDATE tasks SET next_poll_at = :now WHERE id = :id AND callback_token = :token "
                f"AND {SCHEDULED_RUNNING} RETURNING id", params):
            return True
        known = await self._db.execute_fetchall(
            "SELECT 1 FROM tasks WHERE id = :id AND callback_token = :token", params)
        return False if known else None

    async def poll_ending_within(self, now: float, spread: float) -> int:
        rows = await self._db.execute_fetchall(
            "UPDATE tasks SET next_poll_at = MIN(next_poll_at, :now + (ABS(RANDOM()) % 1000000) * :spread / 1e6) "
            f"WHERE {SCHEDULED_RUNNING} "
            "AND COALESCE(submitted_at, created_at) + COALESCE(estimated_time, 0) <= :now + :spread RETURNING id",
            {"now": now, "spread": spread})
        return len(rows)

    async def tasks_with_status(self, status: str) -> list[TaskRecord]:
        return await self._many("SELECT * FROM tasks WHERE status = ? ORDER BY id", (status,))

    async def user_tasks(self, user_id: int, limit: int, prefix: str = "") -> list[TaskRecord]:
        if prefix:
            like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            return await self._many(
                "SELECT * FROM tasks WHERE user_id = ? AND (upstream_id LIKE ? ESCAPE '\\' "
                "OR CAST(id AS TEXT) LIKE ? ESCAPE '\\') ORDER BY created_at DESC, id DESC LIMIT ?",
                (user_id, like, like.lstrip("#"), limit),
            )
        return await self._many(
            "SELECT * FROM tasks WHERE user_id = ? ORDER BY created_at DESC, id DESC LIMIT ?",
            (user_id, limit),
        )

    async def _one(self, sql: str, params: Sequence[Any]) -> TaskRecord | None:
        rows = await self._many(sql, params)
        return rows[0] if rows else None

    async def _many(self, sql: str, params: Sequence[Any]) -> list[TaskRecord]:
        # execute_fetchall is one trip to aiosqlite's thread; execute + fetch + close would be three.
        return [TaskRecord(**dict(row)) for row in await self._db.execute_fetchall(sql, params)]


def _skip_ids(ids: Sequence[int]) -> str:
    """`AND id NOT IN (?, …)` for the ids in flight, or nothing."""
    return f"AND id NOT IN ({', '.join('?' for _ in ids)})" if ids else ""

