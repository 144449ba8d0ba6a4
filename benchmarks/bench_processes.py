"""One bot process against two on one PostgreSQL database: CPU per process, queries, take-over after SIGKILL,
notify latency.

    python benchmarks/bench_processes.py                      # reduced: 1,000 tasks, 5 s window, time-scaled notify
    python benchmarks/bench_processes.py --full               # 10,000 tasks, 120 s window, LEASE_SECONDS 30 (~10 min)
    python benchmarks/bench_processes.py --full --processes 2 # only the two-process run
    python benchmarks/bench_processes.py --full --phase poll  # no notify-latency run

Why a script of its own: several processes need a shared database, so this runs on PostgreSQL only (SQLite refuses
a second process), and it starts, measures and kills several bots where bench_poll_scale.py handles one.

Polling phase (the same 10,000 tasks, seed and settings as `bench_poll_scale.py --database postgres`, so the
one-process figures compare with section 5 of docs/benchmarks.md): the rows are written into a fresh database as
`processing` tasks the fake Evolink (its own process) never finishes; then `--processes 1` starts one
`python -m bot` as before (unsharded), and `--processes 2` starts two with DISCORD_SHARD_COUNT=2 and
DISCORD_SHARD_IDS=0 / 1, each with its own HTTP_LISTEN port. After a warm-up, over the window: each process's CPU
(from /proc, all its threads) as % of one core and its RSS, the PostgreSQL server's CPU (postmaster and children),
task queries per second in total (the fake counts them) and per process (each bot's /metrics
`upscale_upstream_requests_total{endpoint="query"}`: the fake cannot tell the processes apart), and the lease
take-overs each process counted (`upscale_lease_takeovers_total`).

Take-over (two processes): after the window, the process holding shard 1 is SIGKILLed. Its due tasks stay leased
to it for up to LEASE_SECONDS (the bot's default 30 s in the full run; the reduced run sets 3 s), so they wait;
the database is sampled every 0.25 s to find when the survivor has claimed the last of them (no row leased to
the dead process more than 2 s overdue), how late the latest task got, and the survivor's take-over count, claim
lags (its `upscale_poll_lag_seconds`), CPU and query rate while it works alone.

Notify phase (bench_notify_latency.py's approach, on PostgreSQL for both counts): 50 members in two servers (one
on each shard) each send one /upscale; the fake Evolink (in this process, on the fake Discord's monotonic clock)
reports estimated_time 100 s while each job really takes 100 s times a random factor in [0.75, 1.25]. The
latency of a job is from its completion moment upstream to the fake Discord receiving the channel post (p50/p99).
The reduced run scales every time by 1/100, as bench_notify_latency.py does.

Goals: each process's CPU < 10 % of one core while polling 10,000 tasks (polling only, no completions), RSS
< 200 MB per process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _databases
import aiohttp
import asyncpg
from _bench import (
    BenchEvolink,
    FakeEvolinkProcess,
    backend,
    bot_env,
    figure,
    free_port,
    goal,
    header,
    note,
    notify_latencies,
    percentile,
    proc_cpu_seconds,
    proc_status_kb,
    side_by_side,
)
from _databases import PostgresServer
from bench_notify_latency import FACTORS, TASK_ID
from bench_poll_scale import ESTIMATED_TIME, POLL_MAX, POLL_MIN, TaskRows, _rows, write_database

from sandbox.fake_discord import FakeDiscord
from sandbox.process import BotProcess

BOT_TOKEN = "bench.processes.bot-token"
NOTIFY_API_KEY = "sk-bench-processes-notify"
DEFAULT_LEASE = 30.0  # the bot's LEASE_SECONDS default; the full run leaves the setting unset
LATE_AFTER = 2.0  # a task more than this past its due moment counts as waiting (the poller's slack is 1 s)
SAMPLE_EVERY = 0.25


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine spent busy so far (/proc/stat), so a window can say how much of the
    machine's load was not the benchmark's own (another engineer's tests share this machine now and then)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait


async def task_updates(conn: asyncpg.Connection) -> tuple[int, int]:
    """Row updates of `tasks` so far, and how many of them were HOT (no index entries written): what each poll
    step costs the server beyond its statements. The bots' backends report their counts within about a second."""
    row = await conn.fetchrow("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'tasks'")
    return int(row["n_tup_upd"]), int(row["n_tup_hot_upd"])


def label(count: int) -> str:
    return "1 process" if count == 1 else f"{count} processes"


# --- /metrics --------------------------------------------------------------------------------------------
_SERIES = re.compile(r'^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass
class Scrape:
    """One /metrics answer: every sample as (name, labels) -> value, so figures can be summed over labels."""

    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> Scrape:
        scrape = cls()
        for line in text.splitlines():
            match = _SERIES.match(line.strip())
            if match and not line.startswith("#"):
                scrape.samples.append((match[1], dict(_LABEL.findall(match[2] or "")), float(match[3])))
        return scrape

    def total(self, name: str, **labels: str) -> float:
        """The sum of `name` over every series carrying `labels` (0 when there is none)."""
        return sum(value for n, have, value in self.samples
                   if n == name and all(have.get(k) == v for k, v in labels.items()))

    def queries(self) -> float:
        return self.total("upscale_upstream_requests_total", endpoint="query")

    def takeovers(self) -> float:
        return self.total("upscale_lease_takeovers_total")

    def claims_later_than(self, seconds: float) -> float:
        """Claims whose lag (now - next_poll_at) exceeded `seconds` (a bucket bound of POLL_LAG_BUCKETS)."""
        return (self.total("upscale_poll_lag_seconds_count")
                - self.total("upscale_poll_lag_seconds_bucket", le=f"{seconds:.1f}"))


# --- the bot processes -----------------------------------------------------------------------------------
@dataclass
class Bot:
    """One `python -m bot` of the run: which shards it holds, where its /metrics is, and its process."""

    index: int
    shards: tuple[int, ...]  # () when unsharded (one process, as bench_poll_scale.py runs it)
    port: int
    process: BotProcess

    @property
    def pid(self) -> int:
        assert self.process.proc is not None
        return self.process.proc.pid

    @property
    def name(self) -> str:
        return f"process {self.index} (shard {','.join(map(str, self.shards))} of 2)" if self.shards \
            else f"process {self.index} (unsharded)"

    async def scrape(self, session: aiohttp.ClientSession) -> Scrape:
        async with session.get(f"http://127.0.0.1:{self.port}/metrics") as response:
            response.raise_for_status()
            return Scrape.parse(await response.text())

    def errors(self) -> list[str]:
        return [line for line in self.process.output().splitlines() if " ERROR " in line or "Traceback" in line]


async def start_bots(count: int, discord: FakeDiscord, env: dict[str, str], workdir: Path) -> list[Bot]:
    """`count` bots started together: one unsharded, or shard i of `count` each, each on its own HTTP_LISTEN
    port; returns once every shard has its READY."""
    bots = []
    for index in range(count):
        port = free_port()
        settings = dict(env, HTTP_LISTEN=f"127.0.0.1:{port}")
        shards: tuple[int, ...] = ()
        if count > 1:
            shards = (index,)
            settings.update(DISCORD_SHARD_COUNT=str(count), DISCORD_SHARD_IDS=str(index))
        bots.append(Bot(index, shards, port, BotProcess(settings, workdir / f"bot{index}.log")))
    for bot in bots:
        await bot.process.start()
    try:
        await discord.wait_for(lambda: discord.identify_count >= count, timeout=60, what="every bot to IDENTIFY")
        await discord.wait_ready(timeout=60, shards=range(count) if count > 1 else None)
    except TimeoutError:
        logs = "\n".join(f"--- {bot.name}\n{bot.process.output()[-2000:]}" for bot in bots)
        raise AssertionError(f"the bot processes did not connect:\n{logs}") from None
    return bots


async def kill_all(bots: list[Bot]) -> None:
    for bot in bots:
        await bot.process.kill()


# --- polling and take-over -------------------------------------------------------------------------------
async def owner_of(conn: asyncpg.Connection, pid: int) -> str | None:
    """The lease owner name (`host:pid:random`, bot.lifecycle.new_owner) the process `pid` writes on its rows."""
    for (owner,) in await conn.fetch("SELECT DISTINCT lease_owner FROM tasks WHERE lease_owner IS NOT NULL"):
        if owner.rsplit(":", 2)[-2] == str(pid):
            return str(owner)
    return None


async def take_over(conn: asyncpg.Connection, bots: list[Bot], session: aiohttp.ClientSession,
                    server: PostgresServer, lease: float) -> None:
    """SIGKILL the process holding shard 1 and measure how long its due tasks wait for the survivor."""
    dead, survivor = bots[1], bots[0]
    owner = await owner_of(conn, dead.pid)
    if owner is None:
        note("take-over not measured: the process to kill holds no lease")
        return
    before = await survivor.scrape(session)
    cpu0, server0 = proc_cpu_seconds(survivor.pid), server.cpu_seconds()
    await dead.process.kill()
    killed = time.time()
    t0 = time.monotonic()
    held = await conn.fetchrow(
        "SELECT COUNT(*) AS held, COUNT(*) FILTER (WHERE next_poll_at < lease_until) AS blocked, "
        "COUNT(*) FILTER (WHERE next_poll_at <= $2) AS in_flight FROM tasks "
        "WHERE lease_owner = $1 AND lease_until > $2", owner, killed)
    observe = lease + max(2.0, lease * 2 / 3)  # every lease has run out, then time to catch up (full: 50 s)
    last_waiting, worst, peak_late = 0.0, 0.0, 0
    while (rel := time.monotonic() - t0) < observe:
        now = time.time()
        row = await conn.fetchrow(
            "SELECT COUNT(*) FILTER (WHERE lease_owner = $1 AND next_poll_at <= $2::float8 - $3::float8) AS waiting, "
            "COUNT(*) FILTER (WHERE next_poll_at <= $2::float8 - $3::float8) AS late, MIN(next_poll_at) AS oldest "
            "FROM tasks WHERE next_poll_at IS NOT NULL", owner, now, LATE_AFTER)
        if row["waiting"]:
            last_waiting = rel + SAMPLE_EVERY  # still waiting at this sample: claimed by the next one at the soonest
        if row["oldest"] is not None:
            worst = max(worst, now - row["oldest"])
        peak_late = max(peak_late, int(row["late"]))
        await asyncio.sleep(SAMPLE_EVERY)
    elapsed = time.monotonic() - t0
    after = await survivor.scrape(session)
    cpu1, server1 = proc_cpu_seconds(survivor.pid), server.cpu_seconds()
    left = await conn.fetchval("SELECT COUNT(*) FROM tasks WHERE lease_owner = $1 AND next_poll_at <= $2",
                               owner, time.time() - LATE_AFTER)
    print(f"-- take-over: SIGKILL of {dead.name}, LEASE_SECONDS {lease:g}"
          f"{' (the default)' if lease == DEFAULT_LEASE else ''}; {elapsed:.1f} s observed")
    figure("leases the killed process held at the kill (lease not run out)", int(held["held"]))
    figure("... of them due before their lease ran out (must wait for it)", int(held["blocked"]))
    figure("... of them already due at the kill (in flight)", int(held["in_flight"]))
    figure("take-over delay: kill -> no task of the killed process more than 2 s overdue", last_waiting, "s", 2)
    figure("latest task during the take-over (most overdue)", worst, "s", 1)
    figure("tasks more than 2 s overdue, peak", peak_late)
    figure("tasks of the killed process still more than 2 s overdue at the end", int(left))
    figure("survivor's lease take-overs counted (upscale_lease_takeovers_total)",
           int(after.takeovers() - before.takeovers()))
    figure("survivor's claims more than 5 s late / more than 30 s late (upscale_poll_lag_seconds)",
           f"{int(after.claims_later_than(5) - before.claims_later_than(5))} / "
           f"{int(after.claims_later_than(30) - before.claims_later_than(30))}")
    figure("survivor's task queries per second, alone", (after.queries() - before.queries()) / elapsed, "/s", 1)
    figure("survivor's CPU as % of one core, alone (take-over included)", (cpu1 - cpu0) / elapsed * 100, "%", 1)
    if server0 is not None and server1 is not None:
        figure("database server CPU as % of one core, during the take-over", (server1 - server0) / elapsed * 100,
               "%", 1)
    goal("take-over delay", last_waiting, "<=", lease + 5, "s (LEASE_SECONDS + 5)")


async def poll_run(count: int, tasks: int, window: float, warmup: float, *, lease: float | None,
                   server: PostgresServer) -> None:
    """Polling only (no task ends): `count` processes over the same rows; then, with two, the take-over."""
    rng = random.Random(7)  # as bench_poll_scale.py: the same ages, ids and schedule
    ages = [rng.uniform(0, ESTIMATED_TIME) for _ in range(tasks)]
    ids = [f"task-unified-bench-{i:06d}" for i in range(tasks)]
    with tempfile.TemporaryDirectory(prefix="bench-processes-") as tmp:
        workdir = Path(tmp)
        preload = workdir / "preload.json"
        preload.write_text(json.dumps([[ids[i], ages[i], float(ESTIMATED_TIME)] for i in range(tasks)]))
        fake = FakeEvolinkProcess("--estimated-time", str(ESTIMATED_TIME), "--preload-file", str(preload),
                                  "--never-complete")
        discord = FakeDiscord(bot_token=BOT_TOKEN)
        bots: list[Bot] = []
        rows: TaskRows | None = None
        conn: asyncpg.Connection | None = None
        await fake.start()
        await discord.start()
        try:
            guild = discord.add_guild("Bench Server", shard=(0, 2))
            channel = discord.add_channel(guild, "video-lab")
            users = [discord.add_member(guild, f"member{i}") for i in range(500)]
            url = await server.new_database(f"processes{count}")
            await write_database(url, _rows(tasks, ages, ids, int(guild), int(channel), users, rng, None))
            rows = TaskRows(url)
            await rows.open()
            conn = await asyncpg.connect(url)
            env = bot_env(discord, guild, api_key=fake.api_key, evolink_base_url=fake.base_url, database=url,
                          POLL_MIN_SECONDS=str(POLL_MIN), POLL_MAX_SECONDS=str(POLL_MAX),
                          DATABASE_POOL_SIZE=str(_databases.POOL_SIZE))
            if lease is not None:
                env["LEASE_SECONDS"] = f"{lease:g}"
            bots = await start_bots(count, discord, env, workdir)
            async with aiohttp.ClientSession() as session:
                await asyncio.sleep(warmup)
                running0 = await rows.running()
                scrapes0 = [await bot.scrape(session) for bot in bots]
                cpu0 = [proc_cpu_seconds(bot.pid) for bot in bots]
                updates0, own0 = await task_updates(conn), proc_cpu_seconds(os.getpid())
                before, server0, t0 = await fake.stats(), server.cpu_seconds(), time.monotonic()
                busy0 = machine_busy_seconds()
                rss_max = [0] * count
                end = t0 + window
                while (left := end - time.monotonic()) > 0:
                    await asyncio.sleep(min(1.0, left))
                    rss_max = [max(m, proc_status_kb(bot.pid, "VmRSS")) for m, bot in zip(rss_max, bots, strict=True)]
                busy1 = machine_busy_seconds()
                after, server1, t1 = await fake.stats(), server.cpu_seconds(), time.monotonic()
                own1 = proc_cpu_seconds(os.getpid())
                cpu1 = [proc_cpu_seconds(bot.pid) for bot in bots]
                scrapes1 = [await bot.scrape(session) for bot in bots]
                hwm = [proc_status_kb(bot.pid, "VmHWM") for bot in bots]
                running1, late = await rows.running(), await rows.overdue(10.0)
                updates1 = await task_updates(conn)
                elapsed = t1 - t0
                print(f"-- polling only (no task ends), {label(count)}; window {elapsed:.1f} s after {warmup:g} s "
                      f"warm-up; LEASE_SECONDS {lease if lease is not None else DEFAULT_LEASE:g}")
                figure("tasks loaded", tasks)
                figure("tasks running at the window's start / end", f"{running0} / {running1}")
                queries = after["queries"] - before["queries"]
                cpus = [(c1 - c0) / elapsed * 100 for c0, c1 in zip(cpu0, cpu1, strict=True)]
                per_process = [s1.queries() - s0.queries() for s0, s1 in zip(scrapes0, scrapes1, strict=True)]
                takeovers = [s1.takeovers() - s0.takeovers() for s0, s1 in zip(scrapes0, scrapes1, strict=True)]
                for i, bot in enumerate(bots):
                    figure(f"{bot.name} CPU as % of one core", cpus[i], "%", 1)
                    figure(f"{bot.name} task queries per second (its /metrics)", per_process[i] / elapsed, "/s", 1)
                    figure(f"{bot.name} CPU per task query", (cpu1[i] - cpu0[i]) / per_process[i] * 1000
                           if per_process[i] else math.nan, "ms", 3)
                    figure(f"{bot.name} RSS peak (VmHWM) / highest VmRSS in the window",
                           f"{hwm[i] / 1024:.1f} / {rss_max[i] / 1024:.1f}", "MB")
                    figure(f"{bot.name} lease take-overs counted in the window (no process died)", int(takeovers[i]))
                    figure(f"{bot.name} errors in its log", len(bot.errors()))
                    for line in bot.errors()[:3]:
                        note(f"{bot.name} log: {line[:200]}")
                figure("bot CPU per process, highest, as % of one core", max(cpus), "%", 1)
                figure("bot CPU, all processes together, as % of one core", sum(cpus), "%", 1)
                figure("task queries per second, all processes (the fake's count)", queries / elapsed, "/s", 1)
                figure("task queries per second, sum of the processes' /metrics", sum(per_process) / elapsed, "/s", 1)
                figure("bot CPU per task query, all processes", sum(c1 - c0 for c0, c1 in zip(cpu0, cpu1, strict=True))
                       / queries * 1000 if queries else math.nan, "ms", 3)
                mean_running = (running0 + running1) / 2
                figure("queries per task per 600 s (extrapolated)",
                       queries / mean_running / elapsed * ESTIMATED_TIME if mean_running else math.nan, "", 1)
                if server0 is not None and server1 is not None:
                    server_pct = (server1 - server0) / elapsed * 100
                    figure("database server CPU as % of one core", server_pct, "%", 1)
                    figure("database server CPU per task query", (server1 - server0) / queries * 1000
                           if queries else math.nan, "ms", 3)
                    figure("bot + server CPU as % of one core, all processes", sum(cpus) + server_pct, "%", 1)
                else:
                    figure("database server CPU", f"not measured ({server.not_measured})")
                updates, hot = updates1[0] - updates0[0], updates1[1] - updates0[1]
                figure("tasks row updates per task query (pg_stat_user_tables), of them HOT",
                       f"{updates / queries:.2f}, {hot / updates * 100 if updates else 0:.0f} %" if queries else "n/a")
                figure("tasks more than 10 s overdue at the end", late)
                figure("lease take-overs counted in the window, all processes (no process died)", int(sum(takeovers)))
                fake_cpu = after["cpu_seconds"] - before["cpu_seconds"]
                figure("fake Evolink CPU over the window (not counted)", fake_cpu, "s")
                own = sum(c1 - c0 for c0, c1 in zip(cpu0, cpu1, strict=True)) + fake_cpu + (own1 - own0) + (
                    server1 - server0 if server0 is not None and server1 is not None else 0)
                figure("machine busy over the window, all processes / the benchmark's own (bots, server, fakes)",
                       f"{(busy1 - busy0) / elapsed:.2f} / {own / elapsed:.2f}", "cores")
                goal("bot RSS peak per process", max(hwm) / 1024, "<", 200, "MB")
                goal("bot CPU per process", max(cpus), "<", 10, "% of one core")
                if count >= 2:
                    await take_over(conn, bots, session, server, lease if lease is not None else DEFAULT_LEASE)
                else:
                    figure("take-over delay", "n/a: one process (after a crash its restart resumes from the database)")
        finally:
            await kill_all(bots)
            if conn is not None:
                await conn.close()
            if rows is not None:
                await rows.close()
            await discord.close()
            await fake.stop()


# --- notify latency --------------------------------------------------------------------------------------
async def notify_run(count: int, jobs: int, *, scale: float, server: PostgresServer) -> None:
    """bench_notify_latency.py's measurement with `count` processes on a fresh PostgreSQL database: completion
    upstream -> channel post, and which process delivered."""
    estimated, poll_min, poll_max, card_edit = 100.0 * scale, 5.0 * scale, 60.0 * scale, 15.0 * scale
    evolink = BenchEvolink(api_key=NOTIFY_API_KEY, estimated_time=estimated,  # type: ignore[arg-type]
                           factor_range=FACTORS, seed=11)
    discord = FakeDiscord(bot_token=BOT_TOKEN)
    bots: list[Bot] = []
    with tempfile.TemporaryDirectory(prefix="bench-processes-notify-") as tmp:
        workdir = Path(tmp)
        await evolink.start()
        await discord.start()
        try:
            # One server on each shard, so each process of two receives the /upscale of half the members.
            guilds = [discord.add_guild(f"Bench Server {i}", shard=(i, 2)) for i in range(2)]
            channels = [discord.add_channel(guild, "video-lab") for guild in guilds]
            people = [(i % 2, discord.add_member(guilds[i % 2], f"member{i}")) for i in range(jobs)]
            url = await server.new_database(f"notify{count}")
            env = bot_env(discord, ",".join(guilds), api_key=NOTIFY_API_KEY, evolink_base_url=evolink.base_url,
                          database=url, POLL_MIN_SECONDS=f"{max(0.05, poll_min):g}",
                          POLL_MAX_SECONDS=f"{max(0.05, poll_max):g}", CARD_EDIT_SECONDS=f"{card_edit:g}",
                          DATABASE_POOL_SIZE=str(_databases.POOL_SIZE))
            if scale != 1:
                env["LEASE_SECONDS"] = f"{max(1.0, DEFAULT_LEASE * scale):g}"
            bots = await start_bots(count, discord, env, workdir)
            began = time.monotonic()
            for i, (where, person) in enumerate(people):
                await discord.slash("upscale", user_id=person, channel_id=channels[where], guild_id=guilds[where],
                                    options={"url": f"https://example.com/v/{i}.mp4"})

            def posts() -> dict[str, float]:
                """'channel:<upstream id>' / 'dm:<upstream id>' -> when the fake received its 'is ready' post."""
                seen: dict[str, float] = {}
                channel_paths = {f"/channels/{c}/messages" for c in channels}
                for request in discord.find_requests("POST", r"^/channels/\d+/messages$"):
                    content = (request.json or {}).get("content") or ""
                    match = TASK_ID.search(content)
                    if request.status == 200 and "is ready" in content and match:
                        kind = "channel" if request.path in channel_paths else "dm"
                        seen.setdefault(f"{kind}:{match.group(1)}", request.at)
                return seen

            timeout = estimated * FACTORS[1] + poll_max * 2 + 30 * scale + 10
            with contextlib.suppress(TimeoutError):
                await discord.wait_for(lambda: sum(k.startswith("channel:") for k in posts()) >= jobs,
                                       timeout=timeout, what="every job to be posted in the channel")
            ran_for = time.monotonic() - began
            seen = posts()
            completion = dict(evolink.completion_at)
            durations = dict(evolink.duration)
            async with aiohttp.ClientSession() as session:
                delivered = [(await bot.scrape(session)).total("upscale_discord_deliveries_total", kind="channel",
                                                               outcome="ok") for bot in bots]
            queries = sorted(evolink.queries(task_id) for task_id in completion)
            errors = [len(bot.errors()) for bot in bots]
        finally:
            await kill_all(bots)
            await discord.close()
            await evolink.close()

    latency, dm, within, over = notify_latencies(seen, completion, durations, estimated)
    print(f"-- notify latency, {label(count)}: {jobs} jobs, estimated_time {estimated:g} s, real durations "
          f"x{FACTORS[0]}..x{FACTORS[1]}, polling")
    figure("jobs / posted in the channel / told by DM", f"{jobs} / {len(latency)} / {len(dm)}")
    figure("run time", ran_for, "s", 1)
    for name, values in (("channel post latency", list(latency.values())), ("DM latency", dm),
                         ("channel post latency, jobs within their estimate", within),
                         ("channel post latency, jobs overrunning their estimate", over)):
        for pct in (50, 99):
            if scale == 1:
                figure(f"{name} p{pct}", percentile(values, pct), "s", 2)
            else:
                figure(f"{name} p{pct} (x{1 / scale:g}, real-time equivalent)", percentile(values, pct) / scale,
                       "s", 1)
    figure("queries per job, median / max", f"{percentile(queries, 50):.0f} / {max(queries, default=0)}")
    figure("channel posts per process (/metrics)", " / ".join(str(int(d)) for d in delivered))
    figure("errors in the bots' logs", sum(errors))
    if scale != 1:
        note(f"time scaled by {scale:g}: POLL_MIN {max(0.05, poll_min):g}, POLL_MAX {max(0.05, poll_max):g}, "
             f"LEASE_SECONDS {max(1.0, DEFAULT_LEASE * scale):g}, estimated_time {estimated:g} s stand for 5, 60, "
             f"30 and 100 s; the x{1 / scale:g} figures overstate fixed costs (round trips are not scaled)")


async def main_async(args: argparse.Namespace, counts: tuple[int, ...]) -> None:
    async with _databases.databases_for("postgres", args.postgres_url) as server:
        assert server is not None
        for count in counts:
            with backend(label(count)):
                if args.phase in ("all", "poll"):
                    await poll_run(count, args.tasks, args.window, args.warmup, lease=args.lease, server=server)
                if args.phase in ("all", "notify") and args.notify_jobs > 0:
                    await notify_run(count, args.notify_jobs, scale=args.scale, server=server)
    side_by_side([label(count) for count in counts])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true",
                        help="10,000 tasks, 120 s window, default LEASE_SECONDS, 50 real-time notify jobs")
    parser.add_argument("--processes", choices=("1", "2", "both"), default="both",
                        help="one bot process, two (shards 0 and 1 of 2), or both runs in turn (default)")
    parser.add_argument("--phase", choices=("all", "poll", "notify"), default="all",
                        help="polling (with the take-over), notify latency, or all (default)")
    parser.add_argument("--tasks", type=int, help="override the number of tasks polled")
    parser.add_argument("--window", type=float, help="override the measurement window (s)")
    parser.add_argument("--notify-jobs", type=int, help="override the number of notify jobs (0: none)")
    parser.add_argument("--postgres-url", metavar="URL",
                        help="a PostgreSQL URL allowed to CREATE DATABASE (default: TEST_DATABASE_URL, else a "
                             "throwaway cluster started for this run)")
    args = parser.parse_args()
    args.tasks = args.tasks or (10_000 if args.full else 1_000)
    args.window = args.window or (120.0 if args.full else 5.0)
    args.warmup = 10.0 if args.full else 2.0
    args.lease = None if args.full else 3.0  # None: the bot's default (30 s)
    args.scale = 1.0 if args.full else 0.01
    args.notify_jobs = args.notify_jobs if args.notify_jobs is not None else (50 if args.full else 20)
    counts = (1, 2) if args.processes == "both" else (int(args.processes),)
    header("bench_processes: one bot process vs two on PostgreSQL", "full" if args.full else "reduced",
           processes=args.processes, phase=args.phase, tasks=args.tasks, window_s=args.window,
           warmup_s=args.warmup, poll_min=POLL_MIN, poll_max=POLL_MAX, poll_concurrency=16,
           estimated_time=ESTIMATED_TIME,
           lease_seconds=f"{args.lease:g}" if args.lease is not None else f"{DEFAULT_LEASE:g} (default)",
           notify_jobs=args.notify_jobs, notify_time_scale=args.scale)
    asyncio.run(main_async(args, counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
