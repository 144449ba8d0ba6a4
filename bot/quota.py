"""QuotaService: which limits apply to a member, the atomic reservation, usage figures, and admin changes.

Periods are UTC days and months, stored on each task as text keys ("2026-11-28", "2026-11"), so nothing has to
run at midnight: a new day simply has no tasks yet.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.config import LIMIT_NAMES, MAX_LIMIT_VALUE
from bot.text import clip
from bot.validation import InputError
from storage import NewTask, QuotaUsage, Storage, TaskRecord

MEMBER_LIMITS = LIMIT_NAMES[:3]
SERVER_LIMITS = LIMIT_NAMES[3:]


@dataclass(frozen=True, slots=True)
class Periods:
    day: str
    month: str
    next_day: int    # unix time the day's counts reset
    next_month: int  # unix time the month's counts reset


def periods(now: float) -> Periods:
    moment = datetime.fromtimestamp(now, UTC)
    start_of_day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    first_next_month = (start_of_day.replace(day=1) + timedelta(days=32)).replace(day=1)
    return Periods(day=moment.strftime("%Y-%m-%d"), month=moment.strftime("%Y-%m"),
                   next_day=int((start_of_day + timedelta(days=1)).timestamp()),
                   next_month=int(first_next_month.timestamp()))


@dataclass(frozen=True, slots=True)
class EffectiveLimit:
    name: str
    value: int | None      # None: unlimited
    source: str            # "default", "server" or "role:<id>"


class QuotaExceeded(Exception):
    """A new job was refused by a limit or a block; str() is the member-facing reason."""

    def __init__(self, message: str, limit: str | None = None) -> None:
        super().__init__(message)
        self.limit = limit


def _resets_text(name: str, p: Periods) -> str:
    if name == "user_concurrent_jobs":
        return "when one of your jobs finishes"
    at = p.next_day if name.endswith("daily_jobs") else p.next_month
    return f"<t:{at}:R> (<t:{at}:f>)"


_REFUSALS = {
    "user_daily_jobs": "You have started your {value} job(s) for today.",
    "user_concurrent_jobs": "You already have {value} job(s) running.",
    "user_monthly_credits": "You have used your {value} credits for this month.",
    "server_daily_jobs": "This server has started its {value} job(s) for today.",
    "server_monthly_credits": "This server has used its {value} credits for this month.",
}


class QuotaService:
    def __init__(self, storage: Storage, defaults: Mapping[str, int | None], *,
                 clock: Callable[[], float] = time.time) -> None:
        self.storage = storage
        self.defaults = dict(defaults)
        self.clock = clock

    def periods(self) -> Periods:
        return periods(self.clock())

    async def server_limits(self, guild_id: int | None) -> dict[str, EffectiveLimit]:
        """The server's own value where it set one, else the operator's default.

        In DMs there is no server: the operator's member defaults apply per user, and no server-wide limit
        (all DM users together are not one server).
        """
        if guild_id is None:
            return {name: EffectiveLimit(name, self.defaults.get(name) if name in MEMBER_LIMITS else None,
                                         "default") for name in LIMIT_NAMES}
        own = await self.storage.guild_limits(guild_id)
        return {name: EffectiveLimit(name, own[name], "server") if name in own
                else EffectiveLimit(name, self.defaults.get(name), "default") for name in LIMIT_NAMES}

    async def member_limits(self, guild_id: int | None, role_ids: Iterable[int]) -> dict[str, EffectiveLimit]:
        """Member limits: the most generous value among the member's roles that set one, else the server's."""
        limits = await self.server_limits(guild_id)
        if guild_id is None:
            return limits
        roles = set(role_ids)
        for role_id, name, value in await self.storage.role_limits(guild_id):
            if role_id not in roles or name not in MEMBER_LIMITS:
                continue
            current = limits[name]
            if current.source.startswith("role:") and current.value is not None and current.value >= value:
                continue
            limits[name] = EffectiveLimit(name, value, f"role:{role_id}")
        return limits

    async def reserve(self, task: NewTask, role_ids: Iterable[int]) -> TaskRecord:
        """Check every limit and write the `submitting` row holding the job, as one atomic step."""
        limits = await self.member_limits(task.guild_id, role_ids)
        p = self.periods()
        record = await self.storage.create_task_within_limits(
            task, day=p.day, month=p.month, limits={name: limit.value for name, limit in limits.items()})
        if record is not None:
            return record
        raise await self._refusal(task.guild_id, task.user_id, limits, p)

    async def _refusal(self, guild_id: int | None, user_id: int, limits: Mapping[str, EffectiveLimit],
                       p: Periods) -> QuotaExceeded:
        blocked = await self.storage.blocked(guild_id, user_id)
        if blocked is not None:
            reason = f" ({blocked[0]})" if blocked[0] else ""
            return QuotaExceeded(f"You are blocked from starting upscale jobs here{reason}. "
                                 "Ask a server admin if you think this is a mistake.", "blocked")
        usage = await self.storage.quota_usage(guild_id, user_id, day=p.day, month=p.month)
        for name in LIMIT_NAMES:
            value = limits[name].value
            if value is not None and usage.of(name) >= value:
                return QuotaExceeded(f"{_REFUSALS[name].format(value=value)} "
                                     f"You can start another {_resets_text(name, p)}.", name)
        # Usage fell below the limits between the insert and now (a job just ended): say so plainly.
        return QuotaExceeded("A limit was reached just as you asked; please try again.", None)

    async def role_limits(self, guild_id: int) -> list[tuple[int, str, int]]:
        """(role id, limit name, value) for every role that sets its own member limit."""
        return await self.storage.role_limits(guild_id)

    async def blocked(self, guild_id: int | None, user_id: int) -> tuple[str | None] | None:
        """(reason,) when the member is blocked here, else None."""
        return await self.storage.blocked(guild_id, user_id)

    async def usage(self, guild_id: int | None, user_id: int) -> QuotaUsage:
        p = self.periods()
        return await self.storage.quota_usage(guild_id, user_id, day=p.day, month=p.month)

    async def report(self, guild_id: int) -> dict[str, Any]:
        p = self.periods()
        return await self.storage.server_report(guild_id, day=p.day, month=p.month)

    # Admin changes: each one is written to the audit log.
    async def set_limit(self, guild_id: int, actor_id: int, name: str, value: int | None) -> None:
        _check_limit(name, value, LIMIT_NAMES)
        await self.storage.set_guild_limit(guild_id, name, value)
        shown = "unlimited" if value is None else str(value)
        await self._log(guild_id, actor_id, f"set {name} = {shown}")

    async def clear_limit(self, guild_id: int, actor_id: int, name: str) -> None:
        """`/quota unset`: the limit becomes unlimited for this server (not the operator's default)."""
        await self.set_limit(guild_id, actor_id, name, None)

    async def set_role_limit(self, guild_id: int, actor_id: int, role_id: int, name: str,
                             value: int | None) -> bool:
        _check_limit(name, value, MEMBER_LIMITS)
        changed = await self.storage.set_role_limit(guild_id, role_id, name, value)
        if changed:
            action = f"role <@&{role_id}>: {name} = {value}" if value is not None \
                else f"role <@&{role_id}>: {name} unset"
            await self._log(guild_id, actor_id, action)
        return changed

    async def block(self, guild_id: int, actor_id: int, user_id: int, reason: str | None) -> None:
        await self.storage.set_blocked(guild_id, user_id, blocked=True, actor_id=actor_id, at=self.clock(),
                                       reason=reason)
        await self._log(guild_id, actor_id, f"blocked <@{user_id}>" + (f": {reason}" if reason else ""))

    async def unblock(self, guild_id: int, actor_id: int, user_id: int) -> bool:
        changed = await self.storage.set_blocked(guild_id, user_id, blocked=False, actor_id=actor_id,
                                                 at=self.clock())
        if changed:
            await self._log(guild_id, actor_id, f"unblocked <@{user_id}>")
        return changed

    async def reset_member(self, guild_id: int, actor_id: int, user_id: int) -> int:
        count = await self.storage.reset_member_usage(guild_id, user_id, month=self.periods().month)
        await self._log(guild_id, actor_id, f"reset usage of <@{user_id}> ({count} job(s) this month)")
        return count

    async def log(self, guild_id: int) -> list[tuple[int, float, str]]:
        return await self.storage.quota_log(guild_id, 20)

    async def _log(self, guild_id: int, actor_id: int, action: str) -> None:
        await self.storage.add_quota_log(guild_id, actor_id, self.clock(), action)


def _check_limit(name: str, value: int | None, allowed: tuple[str, ...]) -> None:
    if name not in allowed:
        raise InputError(f"`{clip(name, 40)}` is not one of: {', '.join(allowed)}.")
    if value is not None and not 0 <= value <= MAX_LIMIT_VALUE:
        raise InputError(f"A limit must be a whole number from 0 to {MAX_LIMIT_VALUE:,}.")
