"""PostgreSQL driver (asyncpg): a connection pool, numbered migrations under an advisory lock, conditional
updates. The same Storage interface and guarantees as the SQLite driver, for a bot that outgrew one box."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from storage import TaskRecord
from storage.postgres_copy import PostgresCopy
from storage.postgres_quotas import PostgresQuotas
from storage.schema import NOT_ENDED, SCHEDULED_RUNNING, conditional_update, migrations

log = logging.getLogger(__name__)

# pg_advisory_lock key for "migrating this database": processes starting together migrate once, in turn.
MIGRATION_LOCK = 0x75707363616C65  # "upscale"
CONNECT_TIMEOUT = 10.0


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset on release, minus asyncpg's default round trip (UNLISTEN, RESET ALL, unlock all...):
    the driver leaves no session state behind (the migration lock is released where it is taken), and asyncpg
    still rolls back a transaction left open before calling this. Half the statements of a poll step go."""


class PostgresStorage(PostgresQuotas, PostgresCopy):
    """The Storage interface on an asyncpg pool of DATABASE_POOL_SIZE connections."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, url: str, *, pool_size: int = 10) -> PostgresStorage:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=max(1, pool_size), timeout=CONNECT_TIMEOUT,
                                         command_timeout=60, reset=_keep_session)
        storage = cls(pool)
        try:
            await storage._migrate()
        except BaseException:
            await pool.close()
            raise
        return storage

    async def _migrate(self) -> None:
        """Apply what is missing, each file in one transaction with its version row, under a session advisory
        lock: a second process starting at the same moment waits, then finds nothing left to do."""
        async with self._pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
            try:
                await conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                                   "name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
                applied = {row[0] for row in await conn.fetch("SELECT version FROM schema_migrations")}
                for number, name, sql in migrations("postgres"):
                    if number in applied:
                        continue
                    log.info("applying migration %s", name)
                    async with conn.transaction():
                        await conn.execute(sql)
                        await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                                           number, name)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)

    async def close(self) -> None:
        await self._pool.close()

    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")

    async def count_active(self) -> int:
        return int(await self._pool.fetchval(
            f"SELECT COUNT(*) FROM tasks WHERE {NOT_ENDED}"))

    async def get_task(self, task_id: int) -> TaskRecord | None:
        return await self._one("SELECT * FROM tasks WHERE id = $1", (task_id,))

    async def get_task_by_upstream_id(self, upstream_id: str) -> TaskRecord | None:
        return await self._one("SELECT * FROM tasks WHERE upstream_id = $1", (upstream_id,))

    async def update_task(self, task_id: int, changes: Mapping[str, Any],
                          expect: Mapping[str, Any] | None = None) -> TaskRecord | None:
        if not changes:
            return await self.get_task(task_id)
        return await self._one(*conditional_update(task_id, changes, expect or {}, lambda n: f"${n}"))

    async def claim_due(self, now: float, limit: int, *, owner: str, lease: float,
                        exclude: Sequence[int] = ()) -> tuple[list[TaskRecord], int]:
        rows = await self._pool.fetch(
            "WITH picked AS (SELECT id, lease_owner AS previous, lease_until AS previous_until FROM tasks "
            "WHERE next_poll_at IS NOT NULL AND next_poll_at <= $1 AND id <> ALL($4::bigint[]) "
            "AND (lease_until IS NULL OR lease_until <= $1 OR (lease_owner = $2 AND status <> 'submitting')) "
            "ORDER BY next_poll_at LIMIT $3 FOR UPDATE SKIP LOCKED) "
            "UPDATE tasks SET lease_owner = $2, lease_until = $1::float8 + $5::float8 FROM picked "
            # A take-over: the task fell due while another process held it, and that process let the lease run
            # out (died or stalled). A lease that simply lapsed between two polls is a hand-off, not counted.
            "WHERE tasks.id = picked.id RETURNING tasks.*, (picked.previous IS NOT NULL AND picked.previous <> $2 "
            "AND tasks.next_poll_at <= picked.previous_until) AS taken_over",
            now, owner, limit, list(exclude), lease)
        claimed, taken_over = [], 0
        for row in rows:
            values = dict(row)
            taken_over += bool(values.pop("taken_over"))
            claimed.append(TaskRecord(**values))
        return claimed, taken_over

    async def next_due_at(self, *, owner: str, exclude: Sequence[int] = ()) -> float | None:
        return await self._pool.fetchval(
            "SELECT MIN(CASE WHEN lease_owner IS NOT NULL AND lease_owner <> $2 AND lease_until > next_poll_at "
            "THEN lease_until ELSE next_poll_at END) FROM tasks "
            "WHERE next_poll_at IS NOT NULL AND id <> ALL($1::bigint[])", list(exclude), owner)

    async def renew_lease(self, task_id: int, owner: str, until: float) -> bool:
        return bool(await self._pool.fetchval(
            "UPDATE tasks SET lease_until = $3 WHERE id = $1 AND lease_owner = $2 RETURNING 1", task_id, owner, until))

    async def result_dms(self, user_id: int) -> bool:
        value = await self._pool.fetchval("SELECT result_dms FROM member_settings WHERE user_id = $1", user_id)
        return value is None or bool(value)

    async def set_result_dms(self, user_id: int, enabled: bool) -> None:
        await self._pool.execute("INSERT INTO member_settings (user_id, result_dms) VALUES ($1, $2) "
                                 "ON CONFLICT (user_id) DO UPDATE SET result_dms = excluded.result_dms",
                                 user_id, int(enabled))

    async def take_turn(self, name: str, now: float, interval: float) -> bool:
        return bool(await self._pool.fetchval(
            "INSERT INTO throttles (name, last_at) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE "
            "SET last_at = excluded.last_at WHERE throttles.last_at <= excluded.last_at - $3 RETURNING 1",
            name, now, interval))

    async def set_flag(self, name: str, on: bool, at: float) -> bool:
        at = abs(at)
        if on:  # insert (flags start off) or turn an older "off" over; else note the newer "on"
            flipped = await self._pool.fetchval(
                "INSERT INTO throttles (name, last_at) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE "
                "SET last_at = excluded.last_at WHERE throttles.last_at < 0 AND -throttles.last_at < excluded.last_at "
                "RETURNING 1", name, at)
            if not flipped:
                await self._pool.execute(
                    "UPDATE throttles SET last_at = $2 WHERE name = $1 AND 0 < last_at AND last_at < $2", name, at)
            return bool(flipped)
        flipped = await self._pool.fetchval(
            "UPDATE throttles SET last_at = -$2::float8 WHERE name = $1 AND 0 < last_at AND last_at < $2 RETURNING 1",
            name, at)
        if not flipped:
            await self._pool.execute(
                "INSERT INTO throttles (name, last_at) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE "
                "SET last_at = excluded.last_at WHERE excluded.last_at < throttles.last_at AND throttles.last_at < 0",
                name, -at)
        return bool(flipped)

    async def make_due(self, task_id: int, callback_token: str, now: float) -> bool | None:
        if await self._pool.fetchval(
                "UPDATE tasks SET next_poll_at = $3, lease_owner = NULL, lease_until = NULL "
                "WHERE id = $1 AND callback_token = $2 "
                f"AND {SCHEDULED_RUNNING} RETURNING id", task_id, callback_token, now):
            return True
        known = await self._pool.fetchval("SELECT 1 FROM tasks WHERE id = $1 AND callback_token = $2",
                                          task_id, callback_token)
        return False if known else None

    async def poll_ending_within(self, now: float, spread: float) -> int:
        rows = await self._pool.fetch(
            "UPDATE tasks SET next_poll_at = LEAST(next_poll_at, $1::float8 + random() * $2::float8) "
            f"WHERE {SCHEDULED_RUNNING} "
            "AND COALESCE(submitted_at, created_at) + COALESCE(estimated_time, 0) <= $1::float8 + $2::float8 "
            "RETURNING id",
            now, spread)
        return len(rows)

    async def tasks_with_status(self, status: str) -> list[TaskRecord]:
        return await self._many("SELECT * FROM tasks WHERE status = $1 ORDER BY id", (status,))

    async def user_tasks(self, user_id: int, limit: int, prefix: str = "") -> list[TaskRecord]:
        if prefix:
            like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            return await self._many(
                "SELECT * FROM tasks WHERE user_id = $1 AND (upstream_id LIKE $2 ESCAPE '\\' "
                "OR CAST(id AS TEXT) LIKE $3 ESCAPE '\\') ORDER BY created_at DESC, id DESC LIMIT $4",
                (user_id, like, like.lstrip("#"), limit))
        return await self._many(
            "SELECT * FROM tasks WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2", (user_id, limit))

    async def _one(self, sql: str, params: Sequence[Any]) -> TaskRecord | None:
        row = await self._pool.fetchrow(sql, *params)
        return None if row is None else TaskRecord(**dict(row))

    async def _many(self, sql: str, params: Sequence[Any]) -> list[TaskRecord]:
        return [TaskRecord(**dict(row)) for row in await self._pool.fetch(sql, *params)]
