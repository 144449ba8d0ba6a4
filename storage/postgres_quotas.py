"""Quota queries of the PostgreSQL driver: limits, blocks, the audit log, and the atomic reserve-and-insert.

On SQLite one statement is atomic because writers take turns. PostgreSQL runs statements side by side under
READ COMMITTED, where two INSERT ... SELECT ... WHERE usage < limit can both see the old usage and both pass; so
a reservation is one call of reserve_task() (migration 0002), which takes a transaction advisory lock on its
server (on its member in DMs) and only then checks and inserts, seeing every reservation committed before it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import asdict, fields
from typing import Any

import asyncpg

from storage import NewTask, QuotaLogEntry, QuotaUsage, TaskRecord
from storage.schema import NOT_ENDED, log_entry, log_params

_HELD = "quota_state = 'held'"

_COUNTER = ("SELECT COALESCE((SELECT {column} FROM usage_counters WHERE guild_key = COALESCE(:guild::bigint, 0) "
            "AND user_id = {user} AND period = '{prefix}' || :{period}::text), 0)")
# Each limit's usage, by name; `{guild}` is `guild_id = :guild::bigint` or `guild_id IS NULL` (in DMs), two
# forms so the count can use its index (IS NOT DISTINCT FROM cannot).
_USAGE_SQL = {
    "user_daily_jobs": _COUNTER.format(column="jobs", user=":user::bigint", prefix="d", period="day"),
    "user_concurrent_jobs": f"SELECT COUNT(*) FROM tasks WHERE {{guild}} AND user_id = :user::bigint AND {NOT_ENDED}",
    "user_monthly_credits": _COUNTER.format(column="credits", user=":user::bigint", prefix="m", period="month"),
    "server_daily_jobs": _COUNTER.format(column="jobs", user="0", prefix="d", period="day"),
    "server_monthly_credits": _COUNTER.format(column="credits", user="0", prefix="m", period="month"),
}
# reserve_task()'s arguments (migration 0005): the new row as JSON, the server and member, the quota day and
# month, then the limits in QuotaUsage's order (NULL: unlimited).
LIMIT_ORDER = tuple(f.name for f in fields(QuotaUsage))
_RESERVE = f"SELECT * FROM reserve_task({', '.join(f'${n}' for n in range(1, 6 + len(LIMIT_ORDER)))})"


@functools.lru_cache(maxsize=64)
def _compiled(sql: str) -> tuple[str, tuple[str, ...]]:
    """`:name` placeholders to asyncpg's `$n`, one number per name (`::type` casts are left alone); the same
    text always gives the same statement, so it is converted once."""
    order: list[str] = []
    out: list[str] = []
    index = 0
    while index < len(sql):
        if sql[index] == ":" and sql[index + 1: index + 2] != ":" and (index == 0 or sql[index - 1] != ":"):
            end = index + 1
            while end < len(sql) and (sql[end].isalnum() or sql[end] == "_"):
                end += 1
            name = sql[index + 1: end]
            if name:
                if name not in order:
                    order.append(name)
                out.append(f"${order.index(name) + 1}")
                index = end
                continue
        out.append(sql[index])
        index += 1
    return "".join(out), tuple(order)


def _numbered(sql: str, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
    text, names = _compiled(sql)
    return text, [params[name] for name in names]


def _count(status: str) -> int:
    """The row count at the end of asyncpg's command status ("DELETE 1", "INSERT 0 1", "UPDATE 3")."""
    return int(status.rsplit(" ", 1)[-1])


class PostgresQuotas:
    """Mixed into PostgresStorage; shares its pool."""

    _pool: asyncpg.Pool

    async def create_task_within_limits(self, task: NewTask, *, day: str, month: str,
                                        limits: Mapping[str, int | None]) -> TaskRecord | None:
        """Insert the `submitting` row holding a job only if every limit and the block list allow it: one call
        of reserve_task(), in which the server's reservations take turns."""
        values = {**asdict(task), "status": "submitting", "quota_day": day, "quota_month": month,
                  "quota_state": "held"}
        row = await self._pool.fetchrow(_RESERVE, json.dumps(values), task.guild_id, task.user_id, day, month,
                                        *(limits.get(name) for name in LIMIT_ORDER))
        return None if row is None else TaskRecord(**dict(row))

    async def quota_usage(self, guild_id: int | None, user_id: int, *, day: str, month: str) -> QuotaUsage:
        params = {"guild": guild_id, "user": user_id, "day": day, "month": month}
        guild = "guild_id IS NULL" if guild_id is None else "guild_id = :guild::bigint"
        figures: dict[str, float] = {}
        async with self._pool.acquire() as conn:
            for name, query in _USAGE_SQL.items():
                sql, args = _numbered(query.replace("{guild}", guild), params)
                figures[name] = float(await conn.fetchval(sql, *args) or 0)
        return QuotaUsage(**figures)


    async def server_report(self, guild_id: int, *, day: str, month: str) -> dict[str, Any]:
        """This month's credits and jobs, today's jobs, active jobs, and the top 10 members by credits."""
        async with self._pool.acquire() as conn:
            month_jobs, month_credits, day_jobs = await conn.fetchrow(
                "SELECT COUNT(*), COALESCE(SUM(credits_charged), 0), COUNT(*) FILTER (WHERE quota_day = $2) "
                f"FROM tasks WHERE guild_id = $1 AND quota_month = $3 AND {_HELD}", guild_id, day, month)
            active = await conn.fetchval(f"SELECT COUNT(*) FROM tasks WHERE guild_id = $1 AND {NOT_ENDED}", guild_id)
            top = [(int(u), int(j), float(c)) for u, j, c in await conn.fetch(
                "SELECT user_id, COUNT(*), COALESCE(SUM(credits_charged), 0) FROM tasks "
                f"WHERE guild_id = $1 AND quota_month = $2 AND {_HELD} "
                "GROUP BY user_id ORDER BY 3 DESC, 2 DESC, user_id LIMIT 10", guild_id, month)]
        return {"month_jobs": int(month_jobs), "month_credits": float(month_credits),
                "day_jobs": int(day_jobs), "active_jobs": int(active), "top": top}

    async def guild_limits(self, guild_id: int) -> dict[str, int | None]:
        """Only the limits the server set; a missing name means the operator's default applies."""
        rows = await self._pool.fetch("SELECT name, value FROM guild_limits WHERE guild_id = $1", guild_id)
        return {name: value for name, value in rows}

    async def set_guild_limit(self, guild_id: int, name: str, value: int | None) -> None:
        await self._pool.execute(
            "INSERT INTO guild_limits (guild_id, name, value) VALUES ($1, $2, $3) "
            "ON CONFLICT (guild_id, name) DO UPDATE SET value = excluded.value", guild_id, name, value)

    async def role_limits(self, guild_id: int) -> list[tuple[int, str, int]]:
        rows = await self._pool.fetch("SELECT role_id, name, value FROM role_limits WHERE guild_id = $1 "
                                      "ORDER BY name, role_id", guild_id)
        return [(int(r), n, int(v)) for r, n, v in rows]

    async def set_role_limit(self, guild_id: int, role_id: int, name: str, value: int | None) -> bool:
        if value is None:
            status = await self._pool.execute(
                "DELETE FROM role_limits WHERE guild_id = $1 AND role_id = $2 AND name = $3", guild_id, role_id, name)
        else:
            status = await self._pool.execute(
                "INSERT INTO role_limits (guild_id, role_id, name, value) VALUES ($1, $2, $3, $4) "
                "ON CONFLICT (guild_id, role_id, name) DO UPDATE SET value = excluded.value",
                guild_id, role_id, name, value)
        return _count(status) > 0

    async def blocked(self, guild_id: int | None, user_id: int) -> tuple[str | None] | None:
        """(reason,) when the member is blocked, else None."""
        row = await self._pool.fetchrow("SELECT reason FROM blocked_members WHERE guild_id IS NOT DISTINCT FROM "
                                        "$1::bigint AND user_id = $2", guild_id, user_id)
        return (row[0],) if row else None

    async def set_blocked(self, guild_id: int, user_id: int, *, blocked: bool, actor_id: int, at: float,
                          reason: str | None = None) -> bool:
        if blocked:
            status = await self._pool.execute(
                "INSERT INTO blocked_members (guild_id, user_id, reason, blocked_by, blocked_at) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (guild_id, user_id) DO UPDATE SET reason = excluded.reason",
                guild_id, user_id, reason, actor_id, at)
        else:
            status = await self._pool.execute("DELETE FROM blocked_members WHERE guild_id = $1 AND user_id = $2",
                                              guild_id, user_id)
        return _count(status) > 0

    async def reset_member_usage(self, guild_id: int, user_id: int, *, month: str) -> int:
        return _count(await self._pool.execute(
            "UPDATE tasks SET member_reset = 1 WHERE guild_id = $1 AND user_id = $2 AND quota_month = $3 "
            "AND member_reset = 0", guild_id, user_id, month))

    async def add_quota_log(self, guild_id: int, actor_id: int, at: float, code: str,
                            params: Mapping[str, Any]) -> None:
        await self._pool.execute("INSERT INTO quota_log (guild_id, actor_id, at, code, params) "
                                 "VALUES ($1, $2, $3, $4, $5)", guild_id, actor_id, at, code, log_params(params))

    async def quota_log(self, guild_id: int, limit: int = 20) -> list[QuotaLogEntry]:
        rows = await self._pool.fetch("SELECT actor_id, at, code, params, action FROM quota_log WHERE guild_id = $1 "
                                      "ORDER BY id DESC LIMIT $2", guild_id, limit)
        return [log_entry(*row) for row in rows]
