"""`python -m bot copy-db --to URL`: every row moves with its id, usage carries over, the source stays as it was,
a non-empty target is refused, and members see their old jobs and usage on the bot after the move.

Tests whose target (or source) is the `database_url` fixture run once per backend named by their `backends` mark;
the PostgreSQL cases skip the way the fixture does when no server is available.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import re
import sqlite3
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bot.config import LIMIT_NAMES
from bot.copy_db import CopyCheckFailed, CopyRefused, copy_database, run_copy_db
from bot.quota import QuotaService
from sandbox.offline import Sandbox
from storage import NewTask, Storage, database_password, is_postgres, open_storage, sqlite_path
from storage.postgres import PostgresStorage
from storage.schema import COPIED_TABLES, TABLE_KEYS, USAGE_TABLE
from storage.sqlite import SQLiteStorage
from tests.helpers import DeliveryWatch, embed_text, rewind_sqlite, start_upscale, wait_told

UNLIMITED: dict[str, int | None] = dict.fromkeys(LIMIT_NAMES)
# Discord ids are 64-bit snowflakes: big enough that a 32-bit column anywhere would fail.
GUILD, OTHER_GUILD = 1_180_000_000_000_000_001, 1_180_000_000_000_000_002
ALICE, BOB, CAROL, ADMIN, PATRON_ROLE = (1_190_000_000_000_000_000 + n for n in (10, 20, 30, 99, 555))
CHANNEL = 1_200_000_000_000_000_005
NOW = "2026-11-28T12:00:00"
SECRET = "copy-db-secret-pw-7Qx"
EPHEMERAL = 1 << 6
FAST = {"poll_min_seconds": 0.05, "poll_max_seconds": 0.3, "card_edit_seconds": 0.3}


class Clock:
    def __init__(self, when: str) -> None:
        self.set(when)

    def set(self, when: str) -> None:
        self.now = datetime.fromisoformat(when).replace(tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.now


def _new(user: int, guild: int | None, label: str, at: float, token: str | None = None) -> NewTask:
    return NewTask(guild_id=guild, channel_id=CHANNEL, user_id=user, source_kind="url",
                   source_url=f"https://example.com/{label}", source_label=label, scale=2, created_at=at,
                   callback_token=token)


async def fill(url: str) -> None:
    """A database as months of use leave it, written through QuotaService and the storage API: tasks in every
    state across three periods and two servers and a DM, a member reset, limits, role limits, blocks, the log."""
    store = await open_storage(url)
    clock = Clock("2026-10-15T09:00:00")
    quotas = QuotaService(store, UNLIMITED, clock=clock)

    async def job(user: int, guild: int | None, label: str, status: str, credits: float | None = None,
                  **extra: Any) -> int:
        task = await quotas.reserve(_new(user, guild, label, clock(), token=f"tok-{label}"), [])
        changes: dict[str, Any] = {"status": status, **extra}
        if status != "submitting":
            changes.update(upstream_id=f"task-{label}", submitted_at=clock() + 1, credits_reserved=28.8,
                           credits_charged=28.8 if credits is None else credits)
        if status in ("failed", "cancelled"):
            changes.update(quota_state="released", error_code="upstream_failed", error_message="it failed",
                           finished_at=clock() + 60, notified_at=clock() + 61)
        if status == "completed":
            changes.update(progress=100, result_url=f"https://cdn.example.com/{label}?sig=abc",
                           finished_at=clock() + 60, notified_at=clock() + 61, dm_state="sent", channel_state="sent",
                           card_state="final")
        updated = await store.update_task(task.id, changes)
        assert updated is not None
        return task.id

    try:
        await job(ALICE, GUILD, "october.mp4", "completed", 12.5)
        await job(BOB, GUILD, "october-bob.mp4", "completed", 7.0)
        await quotas.set_limit(GUILD, ADMIN, "user_daily_jobs", 5)
        clock.set("2026-11-27T20:00:00")
        await job(ALICE, GUILD, "yesterday.mp4", "completed", 10.0)
        await job(CAROL, OTHER_GUILD, "carol vidéo 🎬.mp4", "completed", 3.25)
        clock.set(NOW)
        await job(ALICE, GUILD, "today.mp4", "completed", 10.0)
        await job(ALICE, GUILD, "broken.mp4", "failed")
        await job(BOB, GUILD, "bob.mp4", "completed", 5.5)
        await job(BOB, GUILD, "bob-cancelled.mp4", "cancelled")
        await job(BOB, None, "dm.mp4", "completed", 2.0)
        await quotas.reset_member(GUILD, ADMIN, ALICE)  # her November jobs: member_reset, still the server's
        await job(ALICE, GUILD, "after-reset.mp4", "processing", progress=40, next_poll_at=clock() + 5,
                  estimated_time=120.0, card_message_id=1_300_000_000_000_000_001, card_progress=40)
        await job(BOB, GUILD, "stuck.mp4", "submitting")
        await quotas.clear_limit(GUILD, ADMIN, "server_monthly_credits")
        await quotas.set_limit(OTHER_GUILD, ADMIN, "server_daily_jobs", 50)
        await quotas.set_role_limit(GUILD, ADMIN, PATRON_ROLE, "user_daily_jobs", 20)
        await quotas.set_role_limit(GUILD, ADMIN, PATRON_ROLE, "user_monthly_credits", 900)
        await quotas.block(GUILD, ADMIN, CAROL, "spam")
        await quotas.block(GUILD, ADMIN, BOB, None)
        await quotas.unblock(GUILD, ADMIN, BOB)
    finally:
        await store.close()


async def dump(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every table read straight from the database (not through the code under test), in key order."""
    found: dict[str, list[dict[str, Any]]] = {}
    if is_postgres(url):
        conn = await asyncpg.connect(url)
        try:
            for table, keys in TABLE_KEYS.items():
                order = ", ".join(f'{key} COLLATE "C"' if key in ("name", "period") else key for key in keys)
                found[table] = [dict(row) for row in await conn.fetch(f"SELECT * FROM {table} ORDER BY {order}")]
        finally:
            await conn.close()
        return found
    with sqlite3.connect(sqlite_path(url)) as conn:
        conn.row_factory = sqlite3.Row
        for table, keys in TABLE_KEYS.items():
            rows = conn.execute(f"SELECT * FROM {table} ORDER BY {', '.join(keys)}").fetchall()
            found[table] = [dict(row) for row in rows]
    conn.close()
    return found


def usage_of(rows: list[dict[str, Any]]) -> dict[tuple[int, int, str], tuple[int, float]]:
    """usage_counters rows that count something (a job given back leaves a zero row behind)."""
    return {(r["guild_key"], r["user_id"], r["period"]): (r["jobs"], r["credits"]) for r in rows
            if r["jobs"] or abs(r["credits"]) > 1e-9}


def assert_same_usage(a: Mapping[tuple[int, int, str], tuple[int, float]],
                      b: Mapping[tuple[int, int, str], tuple[int, float]]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key][0] == b[key][0] and math.isclose(a[key][1], b[key][1], abs_tol=1e-9), key


async def figures(url: str) -> list[Any]:
    """What members and admins are shown: QuotaService.usage for each member (and the DM) and server_report."""
    store = await open_storage(url)
    try:
        quotas = QuotaService(store, UNLIMITED, clock=Clock(NOW))
        shown: list[Any] = []
        for guild, user in ((GUILD, ALICE), (GUILD, BOB), (GUILD, CAROL), (OTHER_GUILD, CAROL), (None, BOB)):
            shown.append(await quotas.usage(guild, user))
        for guild in (GUILD, OTHER_GUILD):
            shown.append(await quotas.report(guild))
        shown.append(await store.user_tasks(ALICE, 10))
        shown.append((await store.guild_limits(GUILD), await store.role_limits(GUILD), await store.quota_log(GUILD)))
        shown.append(await store.blocked(GUILD, CAROL))
        return shown
    finally:
        await store.close()


def file_digest(url: str) -> str:
    return hashlib.sha256(Path(sqlite_path(url)).read_bytes()).hexdigest()


def sqlite_url(tmp_path: Path, name: str) -> str:
    return f"sqlite:///{tmp_path / name}"


async def assert_copied(source: str, target: str) -> None:
    """The check every direction must pass: each row equal by id, usage equal, ids continuing."""
    before = await dump(source)
    digest = None if is_postgres(source) else file_digest(source)
    shown_before = await figures(source)

    report = await copy_database(source, target, batch=3)  # small batches: many round trips, keys in order

    copied = await dump(target)
    for table in COPIED_TABLES:
        assert copied[table] == before[table], f"{table} differs"
        assert report.counts[table] == (len(before[table]), len(before[table]))
    assert_same_usage(usage_of(copied[USAGE_TABLE]), usage_of(before[USAGE_TABLE]))
    assert report.usage_rows == (len(usage_of(before[USAGE_TABLE])),) * 2
    assert await figures(target) == shown_before, "members and admins see the same figures and jobs"

    assert await dump(source) == before, "the source is unchanged"
    if digest is not None:
        assert file_digest(source) == digest, "the source file is byte for byte the same"
    assert not report.source_migrated

    top_task = max(row["id"] for row in before["tasks"])
    top_log = max(row["id"] for row in before["quota_log"])
    assert report.next_ids == {"tasks": top_task + 1, "quota_log": top_log + 1}
    store = await open_storage(target)
    try:
        new = await QuotaService(store, UNLIMITED, clock=Clock(NOW)).reserve(_new(BOB, GUILD, "new.mp4", 0.0), [])
        assert new.id == top_task + 1, "the next task gets a new number above the copied ones"
        await store.add_quota_log(GUILD, ADMIN, 0.0, "unblock", {"user_id": CAROL})
        [after] = await store.quota_log(GUILD, 1)
        assert (after.code, after.params, after.action) == ("unblock", {"user_id": CAROL}, None)
    finally:
        await store.close()
    assert max(row["id"] for row in (await dump(target))["quota_log"]) == top_log + 1


# ---- copying, each direction --------------------------------------------------------------------------------

@pytest.mark.backends("sqlite", "postgres")
async def test_sqlite_into_each_backend_copies_every_row_with_its_id(database_url: str, tmp_path: Path) -> None:
    source = sqlite_url(tmp_path, "source.db")
    await fill(source)
    await assert_copied(source, database_url)


@pytest.mark.backends("postgres")
async def test_postgres_into_sqlite_copies_every_row_with_its_id(database_url: str, tmp_path: Path) -> None:
    await fill(database_url)
    await assert_copied(database_url, sqlite_url(tmp_path, "back.db"))


@pytest.mark.backends("sqlite", "postgres")
async def test_ids_continue_above_ids_the_source_handed_out_to_rows_since_deleted(database_url: str,
                                                                                  tmp_path: Path) -> None:
    source = sqlite_url(tmp_path, "source.db")
    await fill(source)
    with sqlite3.connect(sqlite_path(source)) as conn:
        top = conn.execute("SELECT MAX(id) FROM tasks").fetchone()[0]
        conn.execute("UPDATE tasks SET quota_state = 'released' WHERE id = ?", (top,))  # its job given back
        conn.execute("DELETE FROM tasks WHERE id = ?", (top,))
    conn.close()
    report = await copy_database(source, database_url)
    assert report.next_ids["tasks"] == top + 1
    store = await open_storage(database_url)
    try:
        new = await store.create_task_within_limits(_new(BOB, GUILD, "n.mp4", 0.0), day="d", month="m", limits={})
    finally:
        await store.close()
    assert new is not None and new.id == top + 1, "a deleted task's number is not handed out again"


@pytest.mark.backends("sqlite", "postgres")
async def test_rows_stream_in_key_order_in_batches(database_url: str) -> None:
    await fill(database_url)
    store = await open_storage(database_url)
    try:
        columns = await store.table_columns("tasks")
        async with store.copy_session(write=False):
            batches = [rows async for rows in store.iter_rows("tasks", columns, 4)]
            counts = await store.table_counts()
    finally:
        await store.close()
    assert [len(rows) for rows in batches[:-1]] == [4] * (len(batches) - 1) and 0 < len(batches[-1]) <= 4
    ids = [row[columns.index("id")] for rows in batches for row in rows]
    assert ids == sorted(ids) and len(ids) == counts["tasks"] == 11


# ---- what is refused, and what is rolled back -----------------------------------------------------------------

@pytest.mark.backends("sqlite", "postgres")
async def test_a_target_with_rows_is_refused_and_nothing_is_written(database_url: str, tmp_path: Path) -> None:
    source = sqlite_url(tmp_path, "source.db")
    await fill(source)
    store = await open_storage(database_url)
    try:
        await store.set_guild_limit(GUILD, "server_daily_jobs", 1)  # one row is enough to refuse
    finally:
        await store.close()
    before = await dump(database_url)
    with pytest.raises(CopyRefused, match=r"is not empty \(guild_limits 1 rows\).*empty it .*Nothing was written"):
        await copy_database(source, database_url)
    assert await dump(database_url) == before


@pytest.mark.backends("sqlite", "postgres")
async def test_a_copy_that_fails_halfway_leaves_the_target_empty(database_url: str, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    source = sqlite_url(tmp_path, "source.db")
    await fill(source)
    driver: Any = PostgresStorage if is_postgres(database_url) else SQLiteStorage
    real_insert = driver.insert_rows
    calls = 0

    async def failing_insert(self: Storage, table: str, columns: Any, rows: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:  # two batches of tasks are in by now
            raise OSError("disk full (simulated)")
        await real_insert(self, table, columns, rows)

    monkeypatch.setattr(driver, "insert_rows", failing_insert)
    with pytest.raises(OSError, match="simulated"):
        await copy_database(source, database_url, batch=4)
    assert calls == 3
    assert all(not rows for rows in (await dump(database_url)).values()), "the whole copy was rolled back"


@pytest.mark.backends("sqlite", "postgres")
async def test_usage_that_differs_fails_the_check_and_rolls_back(database_url: str, tmp_path: Path) -> None:
    source = sqlite_url(tmp_path, "source.db")
    await fill(source)
    with sqlite3.connect(sqlite_path(source)) as conn:  # a drifted counter: the tasks say 1 job, it says 2
        conn.execute("UPDATE usage_counters SET jobs = jobs + 1 WHERE guild_key = ? AND user_id = ? AND period = ?",
                     (OTHER_GUILD, CAROL, "d2026-11-27"))
    conn.close()
    with pytest.raises(CopyCheckFailed) as failed:
        await copy_database(source, database_url)
    assert f"usage_counters differ: server {OTHER_GUILD}, member {CAROL}, d2026-11-27: source 2 job(s)" \
           in str(failed.value)
    assert "rolled back" in str(failed.value)
    assert failed.value.report.counts["tasks"] == (11, 11), "the figures are there to print"
    assert all(not rows for rows in (await dump(database_url)).values())


async def test_the_same_database_and_bad_urls_are_refused(tmp_path: Path) -> None:
    source = sqlite_url(tmp_path, "source.db")
    await fill(source)
    os.link(sqlite_path(source), tmp_path / "hard-link.db")
    for target in (source, f"sqlite:///{tmp_path}/./source.db", sqlite_url(tmp_path, "hard-link.db")):
        with pytest.raises(CopyRefused, match="the database the bot uses"):
            await copy_database(source, target)
    for target, message in (("mysql://root:pw@db/x", "--to must look like"),
                            ("sqlite:///:memory:", "in-memory"),
                            ("postgresql://u:pw@127.0.0.1:99x/db", "not a valid PostgreSQL URL")):
        with pytest.raises(CopyRefused, match=message):
            await copy_database(source, target)
    with pytest.raises(CopyRefused, match=r"there is no database at .*nothing to copy"):
        await copy_database(sqlite_url(tmp_path, "missing.db"), sqlite_url(tmp_path, "new.db"))
    assert not (tmp_path / "missing.db").exists(), "a missing source is not created"


async def test_a_sqlite_source_is_opened_read_only(tmp_path: Path) -> None:
    source = sqlite_url(tmp_path, "source.db")
    await fill(source)
    store = await SQLiteStorage.open_readonly(sqlite_path(source))
    try:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await store.set_guild_limit(GUILD, "server_daily_jobs", 1)
    finally:
        await store.close()


async def test_a_sqlite_source_from_an_older_version_is_migrated_first(tmp_path: Path) -> None:
    source = sqlite_url(tmp_path, "old.db")
    await fill(source)
    with sqlite3.connect(sqlite_path(source)) as conn:  # as version 0003 left it: no callback_token yet
        rewind_sqlite(conn, 3)
    conn.close()
    report = await copy_database(source, sqlite_url(tmp_path, "new.db"))
    assert report.source_migrated and report.counts["tasks"] == (11, 11)


@pytest.mark.backends("sqlite", "postgres")
async def test_a_stop_signal_during_the_copy_rolls_it_back(database_url: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    source = sqlite_url(tmp_path, "source.db")
    await fill(source)
    monkeypatch.chdir(tmp_path)  # no .env but ours
    monkeypatch.setenv("DATABASE_URL", source)
    stop = asyncio.Event()
    driver: Any = PostgresStorage if is_postgres(database_url) else SQLiteStorage
    real_insert = driver.insert_rows

    async def insert_then_hang(self: Storage, table: str, columns: Any, rows: Any) -> None:
        await real_insert(self, table, columns, rows)
        stop.set()  # SIGTERM arrives while the first batch is in the target's transaction
        await asyncio.Event().wait()

    monkeypatch.setattr(driver, "insert_rows", insert_then_hang)
    assert await run_copy_db(database_url, stop) == 1
    assert "interrupted: the copy was rolled back" in capsys.readouterr().err
    assert all(not rows for rows in (await dump(database_url)).values())


# ---- the command, as its own process -----------------------------------------------------------------------

async def copy_db(cwd: Path, env: Mapping[str, str], *args: str) -> tuple[int, str, str]:
    """Run `python -m bot copy-db` with neither DISCORD_TOKEN nor EVOLINK_API_KEY; (exit code, stdout, stderr)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "EVOLINK_", "DATABASE_"))}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "copy-db", *args, cwd=cwd, env={**clean, **env},
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode or 0, out.decode(), err.decode()


def with_password(url: str) -> tuple[str, str]:
    """`url` carrying a password (the test servers trust loopback, so any password logs in), and that password."""
    password = database_password(url)
    if password:
        return url, password
    scheme, rest = url.split("://", 1)
    login, host = rest.split("@", 1) if "@" in rest else ("postgres", rest)
    return f"{scheme}://{login}:{SECRET}@{host}", SECRET


def assert_one_line(code: int, out: str, err: str, expected_code: int, *needles: str,
                    secret: str = SECRET) -> None:
    assert code == expected_code, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("upscale-bot: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert secret not in out + err, "a password was printed"


@pytest.mark.backends("postgres")
async def test_the_command_copies_into_postgres_and_refuses_to_copy_twice(database_url: str, tmp_path: Path) -> None:
    await fill(sqlite_url(tmp_path, "data.db"))
    (tmp_path / ".env").write_text("DATABASE_URL=sqlite:///data.db\n")  # read from .env, relative to the cwd
    target, password = with_password(database_url)

    code, out, err = await copy_db(tmp_path, {}, "--to", target)
    assert code == 0 and err == "", (code, out, err)
    assert re.search(r"^tasks\s+11\s+11$", out, re.M), out
    assert re.search(r"^quota_log\s+9\s+9$", out, re.M), out
    assert re.search(r"^role_limits\s+2\s+2$", out, re.M) and re.search(r"^blocked_members\s+1\s+1$", out, re.M)
    assert re.search(r"^usage_counters\s+(\d+)\s+\1\s", out, re.M), out
    assert "copied and checked in" in out and "numbered from #12" in out and "The source was only read" in out
    assert "sqlite:///data.db -> postgresql://" in out and ":***@" in out
    assert password not in out + err
    assert len((await dump(database_url))["tasks"]) == 11

    before = await dump(database_url)
    code, out, err = await copy_db(tmp_path, {}, "--to", target)
    assert_one_line(code, out, err, 2, "is not empty (tasks 11", "empty it", secret=password)
    assert await dump(database_url) == before, "nothing was written"


@pytest.mark.backends("postgres")
async def test_the_command_with_a_postgres_source_needs_only_database_url(database_url: str, tmp_path: Path) -> None:
    await fill(database_url)
    source, password = with_password(database_url)
    code, out, err = await copy_db(tmp_path, {"DATABASE_URL": source}, "--to", "sqlite:///moved/bot.db")
    assert code == 0 and err == "", (code, out, err)
    assert re.search(r"^tasks\s+11\s+11$", out, re.M) and password not in out
    code, out, err = await copy_db(tmp_path, {"DATABASE_URL": source}, "--to", source)
    assert_one_line(code, out, err, 2, "the database the bot uses", secret=password)


async def test_the_command_refuses_bad_urls_and_reports_a_difference(tmp_path: Path) -> None:
    source = sqlite_url(tmp_path, "bot.db")
    await fill(source)
    env = {"DATABASE_URL": source}
    for target, needle in ((f"mysql://root:{SECRET}@db.example.com/bot", "--to must look like sqlite:///"),
                           (f"postgresql://bot:{SECRET}@127.0.0.1:54x/bot", "--to is not a valid PostgreSQL URL"),
                           (f"postgresql://bot:{SECRET}@127.0.0.1:1/bot", "cannot open the target database"),
                           (source, "the database the bot uses")):
        code, out, err = await copy_db(tmp_path, env, "--to", target)
        assert_one_line(code, out, err, 2, needle)
    code, out, err = await copy_db(tmp_path, {"DATABASE_URL": f"postgresql://bot:{SECRET}@127.0.0.1:x/bot"},
                                   "--to", sqlite_url(tmp_path, "new.db"))
    assert_one_line(code, out, err, 2, "configuration error: DATABASE_URL")

    with sqlite3.connect(sqlite_path(source)) as conn:
        conn.execute("UPDATE usage_counters SET credits = credits + 1 WHERE guild_key = ? AND user_id = 0 "
                     "AND period = 'm2026-11'", (GUILD,))
    conn.close()
    code, out, err = await copy_db(tmp_path, env, "--to", sqlite_url(tmp_path, "new.db"))
    assert_one_line(code, out, err, 1, "the check found a difference", "usage_counters differ", "rolled back")
    assert re.search(r"^tasks\s+11\s+11$", out, re.M), "the figures are printed"
    assert all(not rows for rows in (await dump(sqlite_url(tmp_path, "new.db"))).values())


async def test_help_says_what_copy_db_does(tmp_path: Path) -> None:
    code, out, err = await copy_db(tmp_path, {}, "--help")
    text = " ".join(out.split())
    assert code == 0 and err == ""
    for needle in ("--to URL", "into an empty database", "DATABASE_URL", "Stop the bot first", "only read",
                   "Needs neither DISCORD_TOKEN nor EVOLINK_API_KEY", "nothing is written", "exit status"):
        assert needle in text, needle


# ---- after the move, on the real bot --------------------------------------------------------------------------

async def _private_reply(box: Sandbox, command: str, user_id: str) -> str:
    interaction = await box.discord.slash(command, user_id=user_id, channel_id=box.channel_id, guild_id=box.guild_id)
    ack = await interaction.wait_ack()
    assert ack["type"] == 4 and ack["data"]["flags"] & EPHEMERAL
    return embed_text(ack["data"])


@pytest.mark.backends("postgres")
async def test_members_see_their_old_jobs_and_usage_after_moving_to_postgres(
        box: Sandbox, bot_runner: Any, database_url: str, tmp_path: Path) -> None:
    source = sqlite_url(tmp_path, "sqlite-era.db")
    limits = {**UNLIMITED, "user_daily_jobs": 5, "user_monthly_credits": 300}
    on_sqlite = type(bot_runner)(box, source)
    try:
        bot = await on_sqlite.start(default_limits=limits, **FAST)
        watch = DeliveryWatch(bot)
        jobs = []
        for name, credits in (("first", 10.0), ("second", 4.5)):
            _, task_id = await start_upscale(box, url=f"https://example.com/{name}.mp4")
            box.evolink.complete(task_id, f"https://cdn.example.com/{name}-result.mp4", credits_used=credits)
            await watch.told(task_id)
            jobs.append(task_id)
        _, task_id = await start_upscale(box, url="https://example.com/broken.mp4")
        box.evolink.fail(task_id)
        await wait_told(box, box.alice_id, "failed")
        await watch.told(task_id)
        jobs.append(task_id)
        tasks_before = await _private_reply(box, "tasks", box.alice_id)
        usage_before = await _private_reply(box, "usage", box.alice_id)
    finally:
        await on_sqlite.stop()
    assert all(job in tasks_before for job in jobs) and "first-result.mp4" in tasks_before
    assert "Jobs today: **2**" in usage_before and "Credits this month: **14.5**" in usage_before

    report = await copy_database(source, database_url)
    assert report.counts["tasks"] == (3, 3)

    bot = await bot_runner.start(default_limits=limits, **FAST)
    assert bot.settings.database_url == database_url
    assert await _private_reply(box, "tasks", box.alice_id) == tasks_before, "the same jobs, links and numbers"
    assert await _private_reply(box, "usage", box.alice_id) == usage_before, "the usage carried over"
    _, upstream_id = await start_upscale(box, url="https://example.com/third.mp4")
    store = await open_storage(database_url)
    try:
        new = await store.get_task_by_upstream_id(upstream_id)
    finally:
        await store.close()
    assert new is not None and new.id == 4, "the first job on PostgreSQL is numbered after the copied ones"
    assert "Jobs today: **3**" in await _private_reply(box, "usage", box.alice_id)
