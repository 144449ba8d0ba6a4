"""Many active tasks tracked by one bot process: memory, CPU and upstream queries.

    python benchmarks/bench_poll_scale.py                       # reduced: 1,000 tasks, 10 s window
    python benchmarks/bench_poll_scale.py --full                # 10,000 tasks, 120 s window, polling
    python benchmarks/bench_poll_scale.py --full --complete     # ... and tasks end and are delivered
    python benchmarks/bench_poll_scale.py --full --callbacks --complete   # ... with Evolink callbacks
    python benchmarks/bench_poll_scale.py --full --database both          # SQLite, then PostgreSQL

--complete lets tasks end at 600 s, so the bot also delivers them (DM and channel post) and, with --callbacks
(the bot runs with CALLBACK_URL), receives one callback per task and confirms it with one query; enough extra
tasks are loaded that at least `--tasks` are still running at the end of the window. Without --complete no task
ever ends, so only tracking is measured (with --callbacks: the safety-net queries).

The real bot (`python -m bot`, its own process) runs with the default poll settings (POLL_MIN 5, POLL_MAX 60,
concurrency 16) against the fake Discord (in this process) and the fake Evolink (a third process, so neither
fake's CPU is counted). The tasks are written straight into the bot's database before it starts (its SQLite
file, or with --database postgres a fresh PostgreSQL database, by COPY, then ANALYZE as autovacuum would), as
`processing` rows with upstream ids the fake knows, aged uniformly over a 600 s job (estimated_time 600) and
scheduled as the bot would have scheduled them, so the run starts in a steady state. The fake never finishes
them (a task past 600 s stays at 99%), and no row has a task card, so what is measured is polling alone:
no submissions, card edits or deliveries.

Figures: the bot's RSS (VmRSS, and the peak VmHWM), its CPU seconds over the window (from /proc, all its
threads) as % of one core, per query and per poll cycle (one query of every tracked task), queries per task.
On PostgreSQL the database work runs in the server's processes, not the bot's, so the server's CPU over the same
window is read too (postmaster and children, from /proc; not measured when the server is elsewhere) and the bot +
server CPU is what compares with SQLite, whose work is inside the bot.
Then, by simulating poll_delay, the number of queries a 600 s task with estimated_time 600 takes under the
default settings, against a fixed 8 s poll (the same on every database, so printed once).
Goals: RSS < 200 MB, CPU < 10% of one core, <= 15 queries for the 600 s task; on PostgreSQL also bot + server
CPU < 10% of one core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _databases
import asyncpg
from _bench import (
    FakeEvolinkProcess,
    backend,
    bot_env,
    figure,
    free_port,
    goal,
    header,
    note,
    proc_cpu_seconds,
    proc_status_kb,
    side_by_side,
)
from _databases import PostgresServer

from bot.lifecycle import poll_delay
from bot.quota import periods
from sandbox.fake_discord import FakeDiscord
from sandbox.process import BotProcess
from storage import open_storage

ESTIMATED_TIME = 600
POLL_MIN, POLL_MAX = 5.0, 60.0
BOT_TOKEN = "bench.poll-scale.bot-token"
PUBLIC_CALLBACK = "https://callbacks.example.com/evolink"
CALLBACK_POLL = 300.0


def queries_for_task(duration: float, estimated: float | None, *, progress: bool, minimum: float = POLL_MIN,
                     maximum: float = POLL_MAX) -> int:
    """How many task queries the bot makes for a job of `duration` seconds, by replaying its schedule:
    the first query poll_delay(0) after submission, then one poll_delay after each answer, until an answer
    says completed. With `progress` the answers carry linear progress (as the fake reports), else 0."""
    t = poll_delay(elapsed=0, estimated_time=estimated, progress=0, failures=0, minimum=minimum, maximum=maximum)
    count = 0
    while True:
        count += 1
        if t >= duration:
            return count
        seen = min(99, int(t / duration * 100)) if progress else 0
        t += poll_delay(elapsed=t, estimated_time=estimated, progress=seen, failures=0,
                        minimum=minimum, maximum=maximum)


def queries_with_callbacks(duration: float) -> int:
    """Queries for a job of `duration` seconds when its callback arrives: every CALLBACK_POLL until it ends,
    then the one the callback asks for."""
    safety_net = max(0, math.ceil(duration / CALLBACK_POLL) - 1)  # at 300 s, 600 s, ... before it ends
    return safety_net + 1


def _rows(count: int, ages: list[float], ids: list[str], guild_id: int, channel_id: int, users: list[str],
          rng: random.Random, tokens: list[str] | None) -> list[dict]:
    now = time.time()
    p = periods(now)
    rows = []
    for i in range(count):
        age = ages[i]
        progress = min(99, int(age / ESTIMATED_TIME * 100))
        delay = poll_delay(elapsed=age, estimated_time=ESTIMATED_TIME, progress=progress, failures=0,
                           minimum=POLL_MIN, maximum=POLL_MAX)
        if tokens:  # a callback is coming: the bot's next query is the safety net
            delay = max(delay, CALLBACK_POLL)
        rows.append({
            "id": i + 1, "callback_token": tokens[i] if tokens else None,
            "guild_id": guild_id, "channel_id": channel_id, "user_id": int(users[i % len(users)]),
            "source_kind": "url", "source_url": f"https://example.com/v/{i}.mp4", "source_label": f"{i}.mp4",
            "scale": 2, "status": "processing", "upstream_id": ids[i], "upstream_status": "processing",
            "progress": progress, "estimated_time": float(ESTIMATED_TIME), "credits_reserved": 28.8,
            "credits_charged": 28.8, "created_at": now - age, "submitted_at": now - age,
            "next_poll_at": now + rng.uniform(0, delay), "quota_day": p.day, "quota_month": p.month,
            "quota_state": "held",
        })
    return rows


async def write_database(url: str, rows: list[dict]) -> None:
    """The migrated schema, then the rows in one go (executemany on SQLite, COPY on PostgreSQL)."""
    storage = await open_storage(url)  # creates the database's tables (the migrations)
    await storage.close()
    columns = list(rows[0])
    if url.startswith("sqlite:///"):
        sql = f"INSERT INTO tasks ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})"
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            with conn:
                conn.executemany(sql, rows)
        finally:
            conn.close()
        return
    pg = await asyncpg.connect(url)
    try:
        await pg.copy_records_to_table("tasks", columns=columns, records=[tuple(r[c] for c in columns) for r in rows])
        # Explicit ids leave the identity behind; and a bot that has run a while has statistics (autovacuum).
        await pg.execute("SELECT setval(pg_get_serial_sequence('tasks', 'id'), (SELECT MAX(id) FROM tasks))")
        await pg.execute("ANALYZE")
    finally:
        await pg.close()


class TaskRows:
    """Counts read from the bot's database while it runs (a read-only SQLite connection, or one PostgreSQL
    connection opened before the window, so connecting costs the server nothing inside it)."""

    RUNNING = "SELECT COUNT(*) FROM tasks WHERE status IN ('pending', 'processing')"

    def __init__(self, url: str) -> None:
        self.url = url
        self._pg: asyncpg.Connection | None = None

    async def open(self) -> None:
        if not self.url.startswith("sqlite:///"):
            self._pg = await asyncpg.connect(self.url)

    async def close(self) -> None:
        if self._pg is not None:
            await self._pg.close()

    async def _count(self, sql: str, *args: float) -> int:
        if self._pg is not None:
            return int(await self._pg.fetchval(sql.replace("?", "$1"), *args))
        path = self.url.removeprefix("sqlite:///")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            (count,) = conn.execute(sql, args).fetchone()
        finally:
            conn.close()
        return int(count)

    async def running(self) -> int:
        return await self._count(self.RUNNING)

    async def overdue(self, late_by: float) -> int:
        """Rows whose next query is more than `late_by` seconds overdue (the poller is not keeping up)."""
        return await self._count("SELECT COUNT(*) FROM tasks WHERE next_poll_at < ?", time.time() - late_by)


async def run(tasks: int, window: float, warmup: float, *, complete: bool, callbacks: bool, database: str,
              server: PostgresServer | None) -> None:
    """One measurement on `database` ("sqlite" or "postgres", a fresh database on `server`): load the rows,
    start the bot, measure over the window, print the figures (tagged with the backend)."""
    rng = random.Random(7)
    # Ages spread over the whole 600 s job. Without --complete, a task that passes 600 s keeps running upstream
    # and is then polled every 15-60 s, so the mix of poll rates stays close to that of a steady stream of jobs;
    # only the deliveries of a real stream are missing. With it, tasks end at 600 s and are delivered, and more
    # are loaded so that `tasks` are still running when the window closes.
    loaded = math.ceil(tasks / (1 - (warmup + window) / ESTIMATED_TIME)) if complete else tasks
    ages = [rng.uniform(0, ESTIMATED_TIME) for _ in range(loaded)]
    ids = [f"task-unified-bench-{i:06d}" for i in range(loaded)]
    tokens = [f"bench{i:06d}{rng.getrandbits(64):016x}" for i in range(loaded)] if callbacks else None
    port = free_port() if callbacks else 0
    with tempfile.TemporaryDirectory(prefix="bench-poll-") as tmp:
        workdir = Path(tmp)
        preload = workdir / "preload.json"
        preload.write_text(json.dumps([
            [ids[i], ages[i], float(ESTIMATED_TIME), f"{PUBLIC_CALLBACK}/{i + 1}/{tokens[i]}" if tokens else None]
            for i in range(loaded)]))
        options = ["--estimated-time", str(ESTIMATED_TIME), "--preload-file", str(preload)]
        if not complete:
            options.append("--never-complete")
        if callbacks:
            options += ["--callback-route", f"{PUBLIC_CALLBACK}=http://127.0.0.1:{port}/evolink"]
        fake = FakeEvolinkProcess(*options)
        discord = FakeDiscord(bot_token=BOT_TOKEN)
        bot: BotProcess | None = None
        rows: TaskRows | None = None
        await fake.start()
        await discord.start()
        try:
            guild = discord.add_guild("Bench Server")
            channel = discord.add_channel(guild, "video-lab")
            users = [discord.add_member(guild, f"member{i}") for i in range(500)]
            if database == "postgres":
                assert server is not None
                url = await server.new_database("poll")
            else:
                url = f"sqlite:///{workdir / 'bot.db'}"
            await write_database(url, _rows(loaded, ages, ids, int(guild), int(channel), users, rng, tokens))
            rows = TaskRows(url)
            await rows.open()
            env = bot_env(discord, guild, api_key=fake.api_key, evolink_base_url=fake.base_url, database=url,
                          POLL_MIN_SECONDS=str(POLL_MIN), POLL_MAX_SECONDS=str(POLL_MAX),
                          DATABASE_POOL_SIZE=str(_databases.POOL_SIZE))
            if callbacks:
                env.update(CALLBACK_URL=PUBLIC_CALLBACK, HTTP_LISTEN=f"127.0.0.1:{port}",
                           CALLBACK_POLL_SECONDS=str(CALLBACK_POLL))
            bot = BotProcess(env, workdir / "bot.log")
            await bot.start_connected(discord, timeout=60)
            assert bot.proc is not None
            pid = bot.proc.pid
            rss_start = proc_status_kb(pid, "VmRSS")
            await asyncio.sleep(warmup)
            running0, posts0 = await rows.running(), len(discord.channel_messages(channel))
            before, cpu0, t0 = await fake.stats(), proc_cpu_seconds(pid), time.monotonic()
            server0 = server.cpu_seconds() if server is not None and database == "postgres" else None
            rss_max = 0
            end = t0 + window
            while (left := end - time.monotonic()) > 0:
                await asyncio.sleep(min(1.0, left))
                rss_max = max(rss_max, proc_status_kb(pid, "VmRSS"))
            after, cpu1, t1 = await fake.stats(), proc_cpu_seconds(pid), time.monotonic()
            server1 = server.cpu_seconds() if server is not None and database == "postgres" else None
            running1, posts1 = await rows.running(), len(discord.channel_messages(channel))
            rss_end, hwm = proc_status_kb(pid, "VmRSS"), proc_status_kb(pid, "VmHWM")
            late = await rows.overdue(10.0)
            elapsed = t1 - t0
            cpu = cpu1 - cpu0
            server_cpu = None if server0 is None or server1 is None else server1 - server0
            queries = after["queries"] - before["queries"]
            fake_cpu = after["cpu_seconds"] - before["cpu_seconds"]
        finally:
            if bot is not None:
                await bot.kill()
            if rows is not None:
                await rows.close()
            await discord.close()
            await fake.stop()
        errors = [line for line in bot.output().splitlines() if " ERROR " in line or "Traceback" in line]

    core_pct = cpu / elapsed * 100
    mode = "callbacks" if callbacks else "polling"
    print(f"-- {mode}, {'tasks end and are delivered' if complete else 'no task ends'}; "
          f"window {elapsed:.1f} s after {warmup:g} s warm-up [{database}]")
    figure("tasks loaded", loaded)
    figure("tasks running at the window's start / end", f"{running0} / {running1}")
    figure("tasks delivered in the window (channel posts)", posts1 - posts0)
    if callbacks:
        figure("callbacks sent / answered 2xx in the window",
               f"{after['callbacks_sent'] - before['callbacks_sent']} / "
               f"{after['callbacks_delivered'] - before['callbacks_delivered']}")
    figure("bot RSS at start", rss_start / 1024, "MB", 1)
    figure("bot RSS at end", rss_end / 1024, "MB", 1)
    figure("bot RSS peak (VmHWM)", hwm / 1024, "MB", 1)
    figure("bot CPU over the window", cpu, "s")
    figure("bot CPU as % of one core", core_pct, "%", 1)
    figure("task queries in the window", queries)
    figure("task queries per second", queries / elapsed, "/s", 1)
    mean_running = (running0 + running1) / 2
    figure("queries per running task in the window", queries / mean_running, "", 2)
    figure("queries per task per 600 s (extrapolated)", queries / mean_running / elapsed * ESTIMATED_TIME, "", 1)
    cpu_per_query = cpu / queries if queries else math.nan
    figure("bot CPU per task query (all the bot's CPU / queries)", cpu_per_query * 1000, "ms", 3)
    figure("bot CPU per poll cycle (one query of every running task)", cpu_per_query * mean_running, "s", 2)
    if database == "sqlite":
        figure("database server CPU over the window", "none (SQLite works inside the bot process)")
        figure("bot + server CPU as % of one core", core_pct, "%", 1)
        figure("bot + server CPU per task query", cpu_per_query * 1000, "ms", 3)
    elif server_cpu is None:
        figure("database server CPU over the window",
               f"not measured ({server.not_measured if server else 'no server'})")
    else:
        total_per_query = (cpu + server_cpu) / queries if queries else math.nan
        figure("database server CPU over the window", server_cpu, "s")
        figure("database server CPU as % of one core", server_cpu / elapsed * 100, "%", 1)
        figure("database server CPU per task query", server_cpu / queries * 1000 if queries else math.nan, "ms", 3)
        figure("bot + server CPU as % of one core", (cpu + server_cpu) / elapsed * 100, "%", 1)
        figure("bot + server CPU per task query", total_per_query * 1000, "ms", 3)
    figure("tasks more than 10 s overdue at the end", late)
    figure("fake Evolink CPU over the window (not counted)", fake_cpu, "s")
    figure("errors in the bot log", len(errors))
    for line in errors[:5]:
        note("bot log: " + line[:200])
    goal("bot RSS peak", hwm / 1024, "<", 200, "MB")
    goal("bot CPU", core_pct, "<", 10, "% of one core")
    if database == "postgres" and server_cpu is not None:
        goal("bot + server CPU", (cpu + server_cpu) / elapsed * 100, "<", 10, "% of one core")


def simulated_queries() -> None:
    """The schedule of one 600 s task, replayed through poll_delay: the same on every database."""
    print("-- a 600 s task with estimated_time 600, default settings (simulated poll_delay)")
    with_progress = queries_for_task(600, 600, progress=True)
    without_progress = queries_for_task(600, 600, progress=False)
    fixed = math.ceil(600 / 8)
    figure("queries for a 600 s task (progress reported linearly)", with_progress)
    figure("queries for a 600 s task (no progress reported)", without_progress)
    figure("queries for a 600 s task with a fixed 8 s poll", fixed)
    figure("queries for a 600 s task that ends at 450 s (estimate 600)", queries_for_task(450, 600, progress=True))
    figure("queries for a 600 s task that ends at 750 s (estimate 600)", queries_for_task(750, 600, progress=True))
    figure("queries for a 600 s task with callbacks (safety-net queries, then the one confirming it)",
           queries_with_callbacks(600))
    goal("queries for a 600 s task", max(with_progress, without_progress), "<=", 15)


async def main_async(tasks: int, window: float, warmup: float, *, complete: bool, callbacks: bool, database: str,
                     postgres_url: str | None) -> None:
    """Each chosen database in turn, with identical parameters (the same seed, so the same tasks), then the
    figures side by side."""
    names = _databases.backends(database)
    async with _databases.databases_for(database, postgres_url) as server:
        for name in names:
            with backend(name):
                await run(tasks, window, warmup, complete=complete, callbacks=callbacks, database=name,
                          server=server)
    simulated_queries()
    side_by_side(names)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="10,000 tasks over 120 s (about 2.5 minutes)")
    parser.add_argument("--tasks", type=int, help="override the number of tasks")
    parser.add_argument("--window", type=float, help="override the measurement window (s)")
    parser.add_argument("--complete", action="store_true", help="tasks end at 600 s and are delivered")
    parser.add_argument("--callbacks", action="store_true",
                        help="the bot runs with CALLBACK_URL and the fake calls it when a task ends")
    _databases.add_arguments(parser)
    args = parser.parse_args()
    tasks = args.tasks or (10_000 if args.full else 1_000)
    window = args.window or (120.0 if args.full else 10.0)
    warmup = 10.0 if args.full else 2.0
    header("bench_poll_scale: active tasks tracked by one bot process", "full" if args.full else "reduced",
           tasks=tasks, window_s=window, warmup_s=warmup, poll_min=POLL_MIN, poll_max=POLL_MAX,
           poll_concurrency=16, estimated_time=ESTIMATED_TIME, complete=args.complete, callbacks=args.callbacks,
           database=args.database)
    asyncio.run(main_async(tasks, window, warmup, complete=args.complete, callbacks=args.callbacks,
                           database=args.database, postgres_url=args.postgres_url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
