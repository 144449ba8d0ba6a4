"""Many active tasks tracked by one bot process: memory, CPU and upstream queries.

    python benchmarks/bench_poll_scale.py           # reduced: 1,000 tasks, 10 s window
    python benchmarks/bench_poll_scale.py --full    # 10,000 tasks, 120 s window

The real bot (`python -m bot`, its own process) runs with the default poll settings (POLL_MIN 5, POLL_MAX 60,
concurrency 16) against the fake Discord (in this process) and the fake Evolink (a third process, so neither
fake's CPU is counted). The tasks are written straight into the bot's SQLite file before it starts, as
`processing` rows with upstream ids the fake knows, aged uniformly over a 600 s job (estimated_time 600) and
scheduled as the bot would have scheduled them, so the run starts in a steady state. The fake never finishes
them (a task past 600 s stays at 99%), and no row has a task card, so what is measured is polling alone:
no submissions, card edits or deliveries.

Figures: the bot's RSS (VmRSS, and the peak VmHWM), its CPU seconds over the window (from /proc, all its
threads) as % of one core, per query and per poll cycle (one query of every tracked task), queries per task.
Then, by simulating poll_delay, the number of queries a 600 s task with estimated_time 600 takes under the
default settings, against a fixed 8 s poll.
Goals: RSS < 200 MB, CPU < 10% of one core, <= 15 queries for the 600 s task.
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

from _bench import (
    UNLIMITED_ENV,
    FakeEvolinkProcess,
    figure,
    goal,
    header,
    note,
    proc_cpu_seconds,
    proc_status_kb,
)

from bot.lifecycle import poll_delay
from bot.quota import periods
from sandbox.fake_discord import FakeDiscord
from sandbox.process import BotProcess
from storage import open_storage

ESTIMATED_TIME = 600
POLL_MIN, POLL_MAX = 5.0, 60.0
BOT_TOKEN = "bench.poll-scale.bot-token"


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


def _rows(count: int, ages: list[float], ids: list[str], guild_id: int, channel_id: int,
          rng: random.Random) -> list[dict]:
    now = time.time()
    p = periods(now)
    rows = []
    for i in range(count):
        age = ages[i]
        progress = min(99, int(age / ESTIMATED_TIME * 100))
        delay = poll_delay(elapsed=age, estimated_time=ESTIMATED_TIME, progress=progress, failures=0,
                           minimum=POLL_MIN, maximum=POLL_MAX)
        rows.append({
            "guild_id": guild_id, "channel_id": channel_id, "user_id": 5_000_000 + i % 500,
            "source_kind": "url", "source_url": f"https://example.com/v/{i}.mp4", "source_label": f"{i}.mp4",
            "scale": 2, "status": "processing", "upstream_id": ids[i], "upstream_status": "processing",
            "progress": progress, "estimated_time": ESTIMATED_TIME, "credits_reserved": 28.8,
            "credits_charged": 28.8, "created_at": now - age, "submitted_at": now - age,
            "next_poll_at": now + rng.uniform(0, delay), "quota_day": p.day, "quota_month": p.month,
            "quota_state": "held",
        })
    return rows


async def write_database(path: Path, rows: list[dict]) -> None:
    storage = await open_storage(f"sqlite:///{path}")  # creates the file and applies the migrations
    await storage.close()
    columns = list(rows[0])
    sql = f"INSERT INTO tasks ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})"
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.executemany(sql, rows)
    finally:
        conn.close()


def overdue(path: Path, late_by: float) -> int:
    """Rows whose next query is more than `late_by` seconds overdue (the poller is not keeping up)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        (count,) = conn.execute("SELECT COUNT(*) FROM tasks WHERE next_poll_at < ?", (time.time() - late_by,)
                                ).fetchone()
    finally:
        conn.close()
    return int(count)


async def run(tasks: int, window: float, warmup: float) -> None:
    rng = random.Random(7)
    # Ages spread over the whole 600 s job. A task that passes 600 s during the run keeps running upstream and
    # is then polled every 60 s (elapsed * 0.1, capped), the same rate as a new task in its first 480 s, so the
    # mix of poll rates stays that of a steady stream of jobs; only the deliveries of a real stream are missing.
    ages = [rng.uniform(0, ESTIMATED_TIME) for _ in range(tasks)]
    ids = [f"task-unified-bench-{i:06d}" for i in range(tasks)]
    with tempfile.TemporaryDirectory(prefix="bench-poll-") as tmp:
        workdir = Path(tmp)
        preload = workdir / "preload.json"
        preload.write_text(json.dumps([[ids[i], ages[i]] for i in range(tasks)]))
        fake = FakeEvolinkProcess("--estimated-time", str(ESTIMATED_TIME), "--never-complete",
                                  "--preload-file", str(preload))
        discord = FakeDiscord(bot_token=BOT_TOKEN)
        bot: BotProcess | None = None
        await fake.start()
        await discord.start()
        try:
            guild = discord.add_guild("Bench Server")
            channel = discord.add_channel(guild, "video-lab")
            db = workdir / "bot.db"
            await write_database(db, _rows(tasks, ages, ids, int(guild), int(channel), rng))
            env = {
                "DISCORD_TOKEN": BOT_TOKEN, "EVOLINK_API_KEY": fake.api_key, "EVOLINK_BASE_URL": fake.base_url,
                "DATABASE_URL": f"sqlite:///{db}", "DISCORD_GUILD_IDS": guild,
                "DISCORD_API_BASE_URL": discord.api_base, "DISCORD_GATEWAY_URL": discord.gateway_url,
                "POLL_MIN_SECONDS": str(POLL_MIN), "POLL_MAX_SECONDS": str(POLL_MAX), "LOG_LEVEL": "INFO",
                **UNLIMITED_ENV,
            }
            bot = BotProcess(env, workdir / "bot.log")
            await bot.start_connected(discord, timeout=60)
            assert bot.proc is not None
            pid = bot.proc.pid
            rss_start = proc_status_kb(pid, "VmRSS")
            await asyncio.sleep(warmup)
            before, cpu0, t0 = await fake.stats(), proc_cpu_seconds(pid), time.monotonic()
            rss_max = 0
            end = t0 + window
            while (left := end - time.monotonic()) > 0:
                await asyncio.sleep(min(1.0, left))
                rss_max = max(rss_max, proc_status_kb(pid, "VmRSS"))
            after, cpu1, t1 = await fake.stats(), proc_cpu_seconds(pid), time.monotonic()
            rss_end, hwm = proc_status_kb(pid, "VmRSS"), proc_status_kb(pid, "VmHWM")
            late = overdue(db, 10.0)
            elapsed = t1 - t0
            cpu = cpu1 - cpu0
            queries = after["queries"] - before["queries"]
            fake_cpu = after["cpu_seconds"] - before["cpu_seconds"]
        finally:
            if bot is not None:
                await bot.kill()
            await discord.close()
            await fake.stop()
        errors = [line for line in bot.output().splitlines() if " ERROR " in line or "Traceback" in line]

    core_pct = cpu / elapsed * 100
    print(f"-- {tasks} active tasks, window {elapsed:.1f} s after {warmup:g} s warm-up")
    figure("tracked tasks", tasks)
    figure("bot RSS at start", rss_start / 1024, "MB", 1)
    figure("bot RSS at end", rss_end / 1024, "MB", 1)
    figure("bot RSS peak (VmHWM)", hwm / 1024, "MB", 1)
    figure("bot CPU over the window", cpu, "s")
    figure("bot CPU as % of one core", core_pct, "%", 1)
    figure("task queries in the window", queries)
    figure("task queries per second", queries / elapsed, "/s", 1)
    figure("queries per task in the window", queries / tasks, "", 2)
    figure("queries per task per 600 s (extrapolated)", queries / tasks / elapsed * ESTIMATED_TIME, "", 1)
    cpu_per_query = cpu / queries if queries else math.nan
    figure("bot CPU per task query", cpu_per_query * 1000, "ms", 3)
    figure("bot CPU per poll cycle (one query of every tracked task)", cpu_per_query * tasks, "s", 2)
    figure("tasks more than 10 s overdue at the end", late)
    figure("fake Evolink CPU over the window (not counted)", fake_cpu, "s")
    figure("errors in the bot log", len(errors))
    for line in errors[:5]:
        note("bot log: " + line[:200])
    goal("bot RSS peak", hwm / 1024, "<", 200, "MB")
    goal("bot CPU", core_pct, "<", 10, "% of one core")

    print("-- a 600 s task with estimated_time 600, default settings (simulated poll_delay)")
    with_progress = queries_for_task(600, 600, progress=True)
    without_progress = queries_for_task(600, 600, progress=False)
    fixed = math.ceil(600 / 8)
    figure("queries for a 600 s task (progress reported linearly)", with_progress)
    figure("queries for a 600 s task (no progress reported)", without_progress)
    figure("queries for a 600 s task with a fixed 8 s poll", fixed)
    figure("queries for a 600 s task that ends at 450 s (estimate 600)", queries_for_task(450, 600, progress=True))
    figure("queries for a 600 s task that ends at 750 s (estimate 600)", queries_for_task(750, 600, progress=True))
    goal("queries for a 600 s task", max(with_progress, without_progress), "<=", 15)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="10,000 tasks over 120 s (about 2.5 minutes)")
    parser.add_argument("--tasks", type=int, help="override the number of tasks")
    parser.add_argument("--window", type=float, help="override the measurement window (s)")
    args = parser.parse_args()
    tasks = args.tasks or (10_000 if args.full else 1_000)
    window = args.window or (120.0 if args.full else 10.0)
    warmup = 10.0 if args.full else 2.0
    header("bench_poll_scale: active tasks tracked by one bot process", "full" if args.full else "reduced",
           tasks=tasks, window_s=window, warmup_s=warmup, poll_min=POLL_MIN, poll_max=POLL_MAX,
           poll_concurrency=16, estimated_time=ESTIMATED_TIME)
    asyncio.run(run(tasks, window, warmup))
    return 0


if __name__ == "__main__":
    sys.exit(main())
