"""QuotaService on real SQLite and PostgreSQL with an injectable clock: limits, atomic reservation, refunds,
rollover."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.config import LIMIT_NAMES
from bot.quota import QuotaExceeded, QuotaService, periods
from bot.validation import InputError
from storage import NewTask, Storage, open_storage
from tests.helpers import rewind_sqlite

# Every test using the `storage` fixture (tests/conftest.py) runs on both; the migration test is SQLite's own.
pytestmark = pytest.mark.backends("sqlite", "postgres")

UNLIMITED = dict.fromkeys(LIMIT_NAMES)
GUILD, ALICE, BOB, ADMIN = 1, 10, 20, 99


class Clock:
    def __init__(self, when: str) -> None:
        self.now = datetime.fromisoformat(when).replace(tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.now


def _task(user: int = ALICE, guild: int | None = GUILD) -> NewTask:
    return NewTask(guild_id=guild, channel_id=5, user_id=user, source_kind="url",
                   source_url="https://example.com/a.mp4", source_label="a.mp4", scale=2, created_at=0.0)


async def _finish(storage: Storage, task_id: int, *, credits: float = 0.0, released: bool = False) -> None:
    await storage.update_task(task_id, {"status": "failed" if released else "completed",
                                        "credits_charged": credits,
                                        "quota_state": "released" if released else "held"})


def test_periods_are_utc_days_and_months() -> None:
    p = periods(Clock("2026-12-31T23:59:00")())
    assert (p.day, p.month) == ("2026-12-31", "2026-12")
    assert p.next_day == p.next_month == int(Clock("2027-01-01T00:00:00")())


async def test_ten_concurrent_reservations_pass_exactly_the_limit(storage: Storage) -> None:
    quotas = QuotaService(storage, {**UNLIMITED, "user_daily_jobs": 2})
    results = await asyncio.gather(*(quotas.reserve(_task(), []) for _ in range(10)), return_exceptions=True)
    assert sum(not isinstance(r, Exception) for r in results) == 2
    refusals = [r for r in results if isinstance(r, QuotaExceeded)]
    assert len(refusals) == 8 and all(r.limit == "user_daily_jobs" and "<t:" in str(r) for r in refusals)


@pytest.mark.parametrize("name", LIMIT_NAMES)
async def test_each_limit_refuses_once_reached(storage: Storage, name: str) -> None:
    quotas = QuotaService(storage, {**UNLIMITED, name: 1})
    first = await quotas.reserve(_task(), [])
    if name.endswith("credits"):
        await storage.update_task(first.id, {"status": "pending", "credits_charged": 1.0})
    with pytest.raises(QuotaExceeded) as refused:
        await quotas.reserve(_task(), [])
    assert refused.value.limit == name
    other_user_allowed = not name.startswith("server")
    if other_user_allowed:
        await quotas.reserve(_task(user=BOB), [])
    else:
        with pytest.raises(QuotaExceeded):
            await quotas.reserve(_task(user=BOB), [])


async def test_credit_limit_counts_reserved_then_settled_credits(storage: Storage) -> None:
    quotas = QuotaService(storage, {**UNLIMITED, "user_monthly_credits": 50})
    first = await quotas.reserve(_task(), [])
    await storage.update_task(first.id, {"credits_charged": 28.8, "status": "completed"})
    second = await quotas.reserve(_task(), [])  # 28.8 < 50: allowed, and may go past the limit
    await storage.update_task(second.id, {"credits_charged": 28.8, "status": "completed"})
    with pytest.raises(QuotaExceeded, match="credits"):
        await quotas.reserve(_task(), [])
    await storage.update_task(second.id, {"credits_charged": 10.0})  # settled to the final charge
    assert (await quotas.usage(GUILD, ALICE)).user_monthly_credits == pytest.approx(38.8)
    await quotas.reserve(_task(), [])


async def test_released_jobs_give_their_job_and_credits_back(storage: Storage) -> None:
    quotas = QuotaService(storage, {**UNLIMITED, "user_daily_jobs": 1, "server_monthly_credits": 20})
    task = await quotas.reserve(_task(), [])
    with pytest.raises(QuotaExceeded):
        await quotas.reserve(_task(), [])
    await _finish(storage, task.id, credits=28.8, released=True)
    usage = await quotas.usage(GUILD, ALICE)
    assert (usage.user_daily_jobs, usage.server_monthly_credits) == (0, 0)
    await quotas.reserve(_task(), [])


async def test_day_and_month_roll_over_without_anything_running_at_midnight(storage: Storage) -> None:
    clock = Clock("2026-11-30T23:59:00")
    quotas = QuotaService(storage, {**UNLIMITED, "user_daily_jobs": 1, "user_monthly_credits": 30}, clock=clock)
    task = await quotas.reserve(_task(), [])
    await _finish(storage, task.id, credits=28.8)
    with pytest.raises(QuotaExceeded, match="today"):
        await quotas.reserve(_task(), [])
    clock.now += 120  # 2026-12-01 00:01: a new day and a new month
    usage = await quotas.usage(GUILD, ALICE)
    assert (usage.user_daily_jobs, usage.user_monthly_credits) == (0, 0)
    task = await quotas.reserve(_task(), [])
    await _finish(storage, task.id, credits=31.0)
    clock.now += 86400  # next day, same month: the day resets, the month's credits do not
    with pytest.raises(QuotaExceeded, match="credits for this month"):
        await quotas.reserve(_task(), [])


async def test_roles_raise_or_lower_member_limits_most_generous_wins(storage: Storage) -> None:
    quotas = QuotaService(storage, {**UNLIMITED, "user_daily_jobs": 5})
    await quotas.set_limit(GUILD, ADMIN, "user_daily_jobs", 2)
    await quotas.set_role_limit(GUILD, ADMIN, 111, "user_daily_jobs", 1)
    await quotas.set_role_limit(GUILD, ADMIN, 222, "user_daily_jobs", 4)
    assert (await quotas.member_limits(GUILD, []))["user_daily_jobs"].value == 2
    assert (await quotas.member_limits(GUILD, [111]))["user_daily_jobs"].value == 1
    limit = (await quotas.member_limits(GUILD, [111, 222]))["user_daily_jobs"]
    assert (limit.value, limit.source) == (4, "role:222")
    with pytest.raises(InputError):
        await quotas.set_role_limit(GUILD, ADMIN, 111, "server_daily_jobs", 1)


async def test_unset_means_unlimited_and_defaults_apply_until_set(storage: Storage) -> None:
    quotas = QuotaService(storage, {**UNLIMITED, "server_daily_jobs": 3})
    assert (await quotas.server_limits(GUILD))["server_daily_jobs"].source == "default"
    await quotas.clear_limit(GUILD, ADMIN, "server_daily_jobs")
    limit = (await quotas.server_limits(GUILD))["server_daily_jobs"]
    assert (limit.value, limit.source) == (None, "server")
    with pytest.raises(InputError):
        await quotas.set_limit(GUILD, ADMIN, "server_daily_jobs", -1)
    with pytest.raises(InputError):
        await quotas.set_limit(GUILD, ADMIN, "everything", 1)


async def test_blocked_members_start_nothing_and_reset_zeroes_the_member_only(storage: Storage) -> None:
    quotas = QuotaService(storage, {**UNLIMITED, "user_daily_jobs": 1})
    await quotas.block(GUILD, ADMIN, BOB, "spam")
    with pytest.raises(QuotaExceeded, match=r"blocked.*spam"):
        await quotas.reserve(_task(user=BOB), [])
    assert await quotas.unblock(GUILD, ADMIN, BOB)
    task = await quotas.reserve(_task(), [])
    await _finish(storage, task.id, credits=5)
    assert await quotas.reset_member(GUILD, ADMIN, ALICE) == 1
    usage = await quotas.usage(GUILD, ALICE)
    assert (usage.user_daily_jobs, usage.server_daily_jobs) == (0, 1)
    await quotas.reserve(_task(), [])
    logged = [(entry.code, dict(entry.params)) for entry in await quotas.log(GUILD)]
    assert logged == [("reset", {"user_id": ALICE, "count": 1}), ("unblock", {"user_id": BOB}),
                      ("block", {"user_id": BOB, "reason": "spam"})], "codes and values, newest first"


async def test_dms_use_the_operator_defaults_per_user(storage: Storage) -> None:
    quotas = QuotaService(storage, {**UNLIMITED, "user_daily_jobs": 1})
    await quotas.reserve(_task(guild=None), [])
    with pytest.raises(QuotaExceeded):
        await quotas.reserve(_task(guild=None), [])
    await quotas.reserve(_task(user=BOB, guild=None), [])
    await quotas.reserve(_task(), [])  # a server's count is separate from DMs


async def _counters(path: Path) -> list[tuple]:
    import sqlite3

    with sqlite3.connect(path) as conn:
        return sorted(conn.execute("SELECT guild_key, user_id, period, jobs, round(credits, 6) FROM usage_counters "
                                   "WHERE jobs != 0 OR round(credits, 6) != 0").fetchall())


async def test_usage_counters_match_the_ledger_and_are_rebuilt_by_the_migration(tmp_path: Path) -> None:
    """The triggers keep usage_counters equal to a recount of the tasks; migration 0003 rebuilds them."""
    import sqlite3

    path = tmp_path / "counters.db"
    store = await open_storage(f"sqlite:///{path}")
    clock = Clock("2026-11-30T23:00:00")
    quotas = QuotaService(store, UNLIMITED, clock=clock)
    tasks = [await quotas.reserve(_task(user=user), []) for user in (ALICE, ALICE, BOB)]
    await store.update_task(tasks[0].id, {"credits_charged": 28.8, "status": "pending"})
    await store.update_task(tasks[0].id, {"credits_charged": 12.5, "status": "completed"})
    await store.update_task(tasks[1].id, {"credits_charged": 28.8})
    await store.update_task(tasks[1].id, {"quota_state": "released", "status": "failed"})
    clock.now += 7200  # next day, next month
    await _finish(store, (await quotas.reserve(_task(guild=None), [])).id, credits=3.0)
    await quotas.reset_member(GUILD, ADMIN, ALICE)
    kept = await _counters(path)
    await store.close()
    assert (GUILD, 0, "m2026-11", 2, 12.5) in kept and (GUILD, ALICE, "m2026-11", 0, 0.0) not in kept

    with sqlite3.connect(path) as conn:  # forget the counters (and what came later), as before 0003
        rewind_sqlite(conn, 3)
        conn.executescript("DROP TABLE usage_counters; DROP TRIGGER tasks_usage_insert; "
                           "DROP TRIGGER tasks_usage_update; PRAGMA user_version = 2;")
    store = await open_storage(f"sqlite:///{path}")
    await store.close()
    assert await _counters(path) == kept


async def test_an_older_audit_log_keeps_its_words_and_its_numbering(tmp_path: Path) -> None:
    """Migration 0008 rebuilds SQLite's quota_log (a NOT NULL cannot be dropped): the words an older bot wrote stay,
    shown as they are, and the next entry is numbered after every entry ever written (AUTOINCREMENT kept)."""
    path = tmp_path / "log.db"
    store = await open_storage(f"sqlite:///{path}")
    await store.close()
    with sqlite3.connect(path) as conn:  # as a bot before codes left it: three entries, the last one deleted
        rewind_sqlite(conn, 7)
        conn.executemany("INSERT INTO quota_log (guild_id, actor_id, at, action) VALUES (?, ?, ?, ?)",
                         [(GUILD, ADMIN, 1.0, "set user_daily_jobs = 2"), (GUILD, ADMIN, 2.0, "blocked <@20>: spam"),
                          (GUILD, ADMIN, 3.0, "unblocked <@20>")])
        conn.execute("DELETE FROM quota_log WHERE id = 3")
    store = await open_storage(f"sqlite:///{path}")
    try:
        quotas = QuotaService(store, UNLIMITED, clock=Clock("2026-12-01T00:00:00"))
        await quotas.unblock(GUILD, ADMIN, BOB)
        await quotas.block(GUILD, ADMIN, BOB, None)
        logged = [(entry.code, dict(entry.params), entry.action) for entry in await quotas.log(GUILD)]
        assert logged == [("block", {"user_id": BOB, "reason": None}, None),
                          (None, {}, "blocked <@20>: spam"), (None, {}, "set user_daily_jobs = 2")]
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        assert [row[0] for row in conn.execute("SELECT id FROM quota_log ORDER BY id")] == [1, 2, 4]
