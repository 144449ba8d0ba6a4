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
from bot.i18n import _
from bot.text import clip
from bot.validation import InputError, Refusal
from storage import NewTask, QuotaLogEntry, QuotaUsage, Storage, TaskRecord

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


class QuotaExceeded(Refusal):
    """A new job was refused by a limit (`limit`: its name) or a block ("blocked"): a message id and values,
    rendered in the member's language (render(locale)); str() is the English text."""

    def __init__(self, message: str, /, limit: str | None = None, **values: object) -> None:
        super().__init__(message, **values)
        self.limit = limit


def _reset_time(name: str, p: Periods) -> str:
    """When a period limit lets the member start again, as Discord timestamps (each reader sees their own
    language and time zone: the markup itself is language-neutral)."""
    at = p.next_day if name.endswith("daily_jobs") else p.next_month
    return f"<t:{at}:R> (<t:{at}:f>)"


# Why a job was refused, per limit: {value} is the limit, {reset} when the member can start another.
_REFUSALS = {
    "user_daily_jobs": _("You have started your {value} job(s) for today. You can start another {reset}."),
    "user_concurrent_jobs": _("You already have {value} job(s) running. "
                              "You can start another when one of your jobs finishes."),
    "user_monthly_credits": _("You have used your {value} credits for this month. You can start another {reset}."),
    "server_daily_jobs": _("This server has started its {value} job(s) for today. You can start another {reset}."),
    "server_monthly_credits": _("This server has used its {value} credits for this month. "
                                "You can start another {reset}."),
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
            if blocked[0]:
                return QuotaExceeded(_("You are blocked from starting upscale jobs here ({reason}). "
                                       "Ask a server admin if you think this is a mistake."),
                                     limit="blocked", reason=blocked[0])
            return QuotaExceeded(_("You are blocked from starting upscale jobs here. "
                                   "Ask a server admin if you think this is a mistake."), limit="blocked")
        usage = await self.storage.quota_usage(guild_id, user_id, day=p.day, month=p.month)
        for name in LIMIT_NAMES:
            value = limits[name].value
            if value is not None and usage.of(name) >= value:
                return QuotaExceeded(_REFUSALS[name], limit=name, value=value, reset=_reset_time(name, p))
        # Usage fell below the limits between the insert and now (a job just ended): say so plainly.
        return QuotaExceeded(_("A limit was reached just as you asked; please try again."))

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

    # Admin changes: each one is written to the audit log as a code and its values (LOG_CODES), never as words:
    # /quota log renders them in the reading admin's language.
    async def set_limit(self, guild_id: int, actor_id: int, name: str, value: int | None) -> None:
        _check_limit(name, value, LIMIT_NAMES)
        await self.storage.set_guild_limit(guild_id, name, value)
        await self._log(guild_id, actor_id, "set_limit", name=name, value=value)

    async def clear_limit(self, guild_id: int, actor_id: int, name: str) -> None:
        """`/quota unset`: the limit becomes unlimited for this server (not the operator's default)."""
        await self.set_limit(guild_id, actor_id, name, None)

    async def set_role_limit(self, guild_id: int, actor_id: int, role_id: int, name: str,
                             value: int | None) -> bool:
        _check_limit(name, value, MEMBER_LIMITS)
        changed = await self.storage.set_role_limit(guild_id, role_id, name, value)
        if changed:
            await self._log(guild_id, actor_id, "role_limit", role_id=role_id, name=name, value=value)
        return changed

    async def block(self, guild_id: int, actor_id: int, user_id: int, reason: str | None) -> None:
        await self.storage.set_blocked(guild_id, user_id, blocked=True, actor_id=actor_id, at=self.clock(),
                                       reason=reason)
        await self._log(guild_id, actor_id, "block", user_id=user_id, reason=reason)

    async def unblock(self, guild_id: int, actor_id: int, user_id: int) -> bool:
        changed = await self.storage.set_blocked(guild_id, user_id, blocked=False, actor_id=actor_id,
                                                 at=self.clock())
        if changed:
            await self._log(guild_id, actor_id, "unblock", user_id=user_id)
        return changed

    async def reset_member(self, guild_id: int, actor_id: int, user_id: int) -> int:
        count = await self.storage.reset_member_usage(guild_id, user_id, month=self.periods().month)
        await self._log(guild_id, actor_id, "reset", user_id=user_id, count=count)
        return count

    async def log(self, guild_id: int) -> list[QuotaLogEntry]:
        """The last 20 changes, newest first: codes and values (older rows: their English words)."""
        return await self.storage.quota_log(guild_id, 20)

    async def _log(self, guild_id: int, actor_id: int, code: str, **params: Any) -> None:
        assert set(params) == LOG_CODES[code], f"{code} is logged with {sorted(LOG_CODES[code])}"
        await self.storage.add_quota_log(guild_id, actor_id, self.clock(), code, params)


# What each audit-log code carries (JSON values): the renderer in cogs/quota.py relies on exactly these.
LOG_CODES: dict[str, set[str]] = {
    "set_limit": {"name", "value"},               # value None: unlimited
    "role_limit": {"role_id", "name", "value"},   # value None: the role's own limit removed
    "block": {"user_id", "reason"},               # reason None: none given
    "unblock": {"user_id"},
    "reset": {"user_id", "count"},                # count: this month's jobs that no longer count for the member
}


def _check_limit(name: str, value: int | None, allowed: tuple[str, ...]) -> None:
    if name not in allowed:
        typed = clip(name.replace("`", "'"), 40)
        raise InputError(_("{name} is not one of: {names}."), name=f"`{typed}`", names=", ".join(allowed))
    if value is not None and not 0 <= value <= MAX_LIMIT_VALUE:
        raise InputError(_("A limit must be a whole number from 0 to {limit}."), limit=f"{MAX_LIMIT_VALUE:,}")
