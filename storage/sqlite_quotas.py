"""Quota queries of the SQLite driver: limits, blocks, the audit log, and the atomic reserve-and-insert."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import aiosqlite

from storage import NewTask, QuotaLogEntry, QuotaUsage, TaskRecord
from storage.schema import NOT_ENDED, log_entry, log_params

_HELD = "quota_state = 'held'"

# Each limit as (usage expression, scope): the same SQL serves the atomic check and the usage report.
_COUNTER = ("SELECT IFNULL((SELECT {column} FROM usage_counters WHERE guild_key = IFNULL(:guild, 0) "
            "AND user_id = {user} AND period = '{prefix}' || :{period}), 0)")
# Each limit's usage as SQL: the same expressions serve the atomic check and the usage report. Day and month
# totals come from usage_counters (kept by triggers, see migration 0003), so the check does not grow with
# the number of tasks.
_USAGE_SQL = {
    "user_daily_jobs": _COUNTER.format(column="jobs", user=":user", prefix="d", period="day"),
    "user_concurrent_jobs": f"SELECT COUNT(*) FROM tasks WHERE guild_id IS :guild AND user_id = :user AND {NOT_ENDED}",
    "user_monthly_credits": _COUNTER.format(column="credits", user=":user", prefix="m", period="month"),
    "server_daily_jobs": _COUNTER.format(column="jobs", user="0", prefix="d", period="day"),
    "server_monthly_credits": _COUNTER.format(column="credits", user="0", prefix="m", period="month"),
}


class SQLiteQuotas:
    """Mixed into SQLiteStorage; shares its connection."""

    _db: aiosqlite.Connection

    async def create_task_within_limits(self, task: NewTask, *, day: str, month: str,
                                        limits: Mapping[str, int | None]) -> TaskRecord | None:
        """Insert the `submitting` row holding a job, in one statement that also checks every limit and the
        block list. One statement is atomic in SQLite, so concurrent clicks cannot all pass the check."""
        values = {**asdict(task), "status": "submitting", "quota_day": day, "quota_month": month,
                  "quota_state": "held"}
        params: dict[str, Any] = {f"v_{k}": v for k, v in values.items()}
        params.update(guild=task.guild_id, user=task.user_id, day=day, month=month)
        checks = ["NOT EXISTS (SELECT 1 FROM blocked_members WHERE guild_id IS :guild AND user_id = :user)"]
        for name, value in limits.items():
            if value is not None:
                params[f"limit_{name}"] = value
                checks.append(f"({_USAGE_SQL[name]}) < :limit_{name}")
        columns = ", ".join(values)
        selected = ", ".join(f":v_{k}" for k in values)
        sql = f"INSERT INTO tasks ({columns}) SELECT {selected} WHERE {' AND '.join(checks)} RETURNING *"
        rows = await self._db.execute_fetchall(sql, params)
        return TaskRecord(**dict(rows[0])) if rows else None

    async def quota_usage(self, guild_id: int | None, user_id: int, *, day: str, month: str) -> QuotaUsage:
        params = {"guild": guild_id, "user": user_id, "day": day, "month": month}
        figures: dict[str, float] = {}
        for name, sql in _USAGE_SQL.items():
            async with self._db.execute(sql, params) as cur:
                row = await cur.fetchone()
            figures[name] = float(row[0]) if row else 0.0
        return QuotaUsage(**figures)

    async def server_report(self, guild_id: int, *, day: str, month: str) -> dict[str, Any]:
        """This month's credits and jobs, today's jobs, active jobs, and the top 10 members by credits."""
        params = {"guild": guild_id, "day": day, "month": month}
        async with self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(credits_charged), 0), "
            "COALESCE(SUM(quota_day = :day), 0) FROM tasks "
            f"WHERE guild_id IS :guild AND quota_month = :month AND {_HELD}", params) as cur:
            month_jobs, month_credits, day_jobs = await cur.fetchone()  # type: ignore[misc]
        async with self._db.execute(f"SELECT COUNT(*) FROM tasks WHERE guild_id IS :guild AND {NOT_ENDED}",
                                    params) as cur:
            (active,) = await cur.fetchone()  # type: ignore[misc]
        async with self._db.execute(
            "SELECT user_id, COUNT(*), COALESCE(SUM(credits_charged), 0) FROM tasks "
            f"WHERE guild_id IS :guild AND quota_month = :month AND {_HELD} "
            "GROUP BY user_id ORDER BY 3 DESC, 2 DESC, user_id LIMIT 10", params) as cur:
            top = [(int(u), int(j), float(c)) for u, j, c in await cur.fetchall()]
        return {"month_jobs": int(month_jobs), "month_credits": float(month_credits),
                "day_jobs": int(day_jobs), "active_jobs": int(active), "top": top}

    async def guild_limits(self, guild_id: int) -> dict[str, int | None]:
        """Only the limits the server set; a missing name means the operator's default applies."""
        async with self._db.execute("SELECT name, value FROM guild_limits WHERE guild_id = ?", (guild_id,)) as cur:
            return {name: value for name, value in await cur.fetchall()}

    async def set_guild_limit(self, guild_id: int, name: str, value: int | None) -> None:
        await self._db.execute(
            "INSERT INTO guild_limits (guild_id, name, value) VALUES (?, ?, ?) "
            "ON CONFLICT (guild_id, name) DO UPDATE SET value = excluded.value", (guild_id, name, value))

    async def role_limits(self, guild_id: int) -> list[tuple[int, str, int]]:
        async with self._db.execute("SELECT role_id, name, value FROM role_limits WHERE guild_id = ? "
                                    "ORDER BY name, role_id", (guild_id,)) as cur:
            return [(int(r), n, int(v)) for r, n, v in await cur.fetchall()]

    async def set_role_limit(self, guild_id: int, role_id: int, name: str, value: int | None) -> bool:
        if value is None:
            cur = await self._db.execute("DELETE FROM role_limits WHERE guild_id = ? AND role_id = ? AND name = ?",
                                         (guild_id, role_id, name))
        else:
            cur = await self._db.execute(
                "INSERT INTO role_limits (guild_id, role_id, name, value) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (guild_id, role_id, name) DO UPDATE SET value = excluded.value",
                (guild_id, role_id, name, value))
        changed = cur.rowcount > 0
        await cur.close()
        return changed

    async def blocked(self, guild_id: int | None, user_id: int) -> tuple[str | None] | None:
        """(reason,) when the member is blocked, else None."""
        async with self._db.execute("SELECT reason FROM blocked_members WHERE guild_id IS ? AND user_id = ?",
                                    (guild_id, user_id)) as cur:
            row = await cur.fetchone()
        return (row[0],) if row else None

    async def set_blocked(self, guild_id: int, user_id: int, *, blocked: bool, actor_id: int, at: float,
                          reason: str | None = None) -> bool:
        if blocked:
            cur = await self._db.execute(
                "INSERT INTO blocked_members (guild_id, user_id, reason, blocked_by, blocked_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (guild_id, user_id) DO UPDATE SET reason = excluded.reason",
                (guild_id, user_id, reason, actor_id, at))
        else:
            cur = await self._db.execute("DELETE FROM blocked_members WHERE guild_id = ? AND user_id = ?",
                                         (guild_id, user_id))
        changed = cur.rowcount > 0
        await cur.close()
        return changed

    async def reset_member_usage(self, guild_id: int, user_id: int, *, month: str) -> int:
        cur = await self._db.execute(
            "UPDATE tasks SET member_reset = 1 WHERE guild_id = ? AND user_id = ? AND quota_month = ? "
            "AND member_reset = 0", (guild_id, user_id, month))
        count = cur.rowcount
        await cur.close()
        return count

    async def add_quota_log(self, guild_id: int, actor_id: int, at: float, code: str,
                            params: Mapping[str, Any]) -> None:
        await self._db.execute("INSERT INTO quota_log (guild_id, actor_id, at, code, params) VALUES (?, ?, ?, ?, ?)",
                               (guild_id, actor_id, at, code, log_params(params)))

    async def quota_log(self, guild_id: int, limit: int = 20) -> list[QuotaLogEntry]:
        async with self._db.execute("SELECT actor_id, at, code, params, action FROM quota_log WHERE guild_id = ? "
                                    "ORDER BY id DESC LIMIT ?", (guild_id, limit)) as cur:
            return [log_entry(*row) for row in await cur.fetchall()]
