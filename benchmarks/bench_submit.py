"""Submissions per second through the quota check into SQLite or PostgreSQL, from 50 concurrent members.

    python benchmarks/bench_submit.py                        # reduced: a few seconds, SQLite
    python benchmarks/bench_submit.py --full                 # 20 s of reservations, then the other phases
    python benchmarks/bench_submit.py --full --database both # SQLite, then PostgreSQL, same parameters

Three phases, each on a fresh database: a SQLite file (WAL, as the bot opens it) in a temporary directory, or a
new database on the PostgreSQL server (a pool of the bot's default DATABASE_POOL_SIZE, 10 connections):
  A. QuotaService.reserve with every limit set very high (so every check runs and nothing is refused);
  B. the same with the shipped default limits (5 a day and 1 at a time per member, 50 a day per server):
     almost every attempt is refused, and refusals are counted and timed apart from reservations;
  C. TaskService.submit (reserve + the paid POST to the fake Evolink + recording the upstream id), with the
     fake Evolink in its own process so its CPU does not count.
Each member is an asyncio task that loops reserve(); loops stop at a count or a deadline, whichever is first.
Phase A also reports CPU: this process's (the bot's side: SQLite works here) and, on PostgreSQL, the server's
(its processes on this machine), so the two backends are compared on all the CPU a reservation costs.
Goal: phase A >= 500 reservations per second.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _databases
import aiohttp
from _bench import FakeEvolinkProcess, backend, figure, goal, header, note, percentile, proc_cpu_seconds, side_by_side
from _databases import PostgresServer

from bot.config import LIMIT_NAMES, SAFE_DEFAULT_LIMITS
from bot.evolink import EvolinkClient
from bot.quota import QuotaExceeded, QuotaService
from bot.tasks import TaskService
from bot.validation import VideoSource
from storage import NewTask, open_storage

GUILD_ID = 424242
CHANNEL_ID = 777
MEMBERS = 50
HIGH_LIMITS: dict[str, int | None] = dict.fromkeys(LIMIT_NAMES, 1_000_000_000)


class Run:
    """Latencies and outcomes of one phase."""

    def __init__(self) -> None:
        self.ok: list[float] = []
        self.refused: list[float] = []
        self.errors = 0
        self.finished_at: list[float] = []
        self.started = 0.0
        self.elapsed = 0.0
        self.bot_cpu = 0.0
        self.server_cpu: float | None = None


async def _members(run: Run, attempt: Callable[[int, int], Awaitable[None]], *, members: int, per_member: int,
                   seconds: float, server_cpu: Callable[[], float | None]) -> None:
    deadline = time.perf_counter() + seconds

    async def member(index: int) -> None:
        user_id = 10_000 + index
        for n in range(per_member):
            if time.perf_counter() >= deadline:
                return
            began = time.perf_counter()
            try:
                await attempt(user_id, n)
            except QuotaExceeded:
                run.refused.append(time.perf_counter() - began)
                continue
            except Exception:
                run.errors += 1
                continue
            now = time.perf_counter()
            run.ok.append(now - began)
            run.finished_at.append(now)

    cpu0, server0 = proc_cpu_seconds(os.getpid()), server_cpu()
    run.started = time.perf_counter()
    await asyncio.gather(*(member(i) for i in range(members)))
    run.elapsed = time.perf_counter() - run.started
    cpu1, server1 = proc_cpu_seconds(os.getpid()), server_cpu()
    run.bot_cpu = cpu1 - cpu0
    run.server_cpu = None if server0 is None or server1 is None else server1 - server0


def _new_task(user_id: int, n: int) -> NewTask:
    return NewTask(guild_id=GUILD_ID, channel_id=CHANNEL_ID, user_id=user_id, source_kind="url",
                   source_url=f"https://example.com/v/{user_id}-{n}.mp4", source_label=f"{user_id}-{n}.mp4",
                   scale=2, created_at=time.time())


def _report_latency(prefix: str, values: list[float]) -> None:
    if not values:  # a short run on a busy machine may end a phase before any such attempt finished
        for pct in ("p50", "p99"):
            figure(f"{prefix} {pct} latency", "none (no such attempt finished within the phase)")
        return
    figure(f"{prefix} p50 latency", percentile(values, 50) * 1000, "ms")
    figure(f"{prefix} p99 latency", percentile(values, 99) * 1000, "ms")


class Databases:
    """A fresh database per phase on the backend being measured, and that backend's server CPU (none for SQLite:
    its work is inside this process)."""

    def __init__(self, name: str, workdir: Path, server: PostgresServer | None) -> None:
        self.name = name
        self.workdir = workdir
        self.server = server

    async def fresh(self, phase: str) -> str:
        if self.name == "postgres":
            assert self.server is not None
            return await self.server.new_database(f"submit_{phase}")
        return f"sqlite:///{self.workdir / f'{phase}.db'}"

    def server_cpu(self) -> float | None:
        return self.server.cpu_seconds() if self.name == "postgres" and self.server is not None else None


async def phase_reserve(databases: Databases, phase: str, *, limits: dict[str, int | None], per_member: int,
                        seconds: float, members: int = MEMBERS) -> Run:
    storage = await open_storage(await databases.fresh(phase), pool_size=_databases.POOL_SIZE)
    quotas = QuotaService(storage, limits)
    run = Run()

    async def attempt(user_id: int, n: int) -> None:
        await quotas.reserve(_new_task(user_id, n), ())

    try:
        await _members(run, attempt, members=members, per_member=per_member, seconds=seconds,
                       server_cpu=databases.server_cpu)
    finally:
        await storage.close()
    return run


async def phase_submit(databases: Databases, *, per_member: int, seconds: float) -> tuple[Run, dict]:
    fake = FakeEvolinkProcess("--estimated-time", "600")
    await fake.start()
    storage = await open_storage(await databases.fresh("c"), pool_size=_databases.POOL_SIZE)
    run = Run()
    try:
        async with aiohttp.ClientSession() as session:
            evolink = EvolinkClient(session, fake.base_url, fake.api_key, request_timeout=30.0)
            quotas = QuotaService(storage, HIGH_LIMITS)
            tasks = TaskService(storage, evolink, quotas, poll_min=5.0, poll_max=60.0)

            async def attempt(user_id: int, n: int) -> None:
                source = VideoSource(kind="url", url=f"https://example.com/v/{user_id}-{n}.mp4",
                                     label=f"{user_id}-{n}.mp4")
                await tasks.submit(guild_id=GUILD_ID, channel_id=CHANNEL_ID, user_id=user_id, source=source,
                                   scale=2)

            await _members(run, attempt, members=MEMBERS, per_member=per_member, seconds=seconds,
                           server_cpu=databases.server_cpu)
        stats = await fake.stats()
    finally:
        await storage.close()
        await fake.stop()
    return run, stats


def _rate_in(run: Run, start: float, end: float) -> float:
    """Reservations per second finished between fractions start..end of the run."""
    lo, hi = run.started + start * run.elapsed, run.started + end * run.elapsed
    count = sum(lo <= t < hi for t in run.finished_at)
    return count / max(1e-9, (end - start) * run.elapsed)


def _report_cpu(prefix: str, run: Run, name: str) -> None:
    """The CPU one reservation costs: this process's and, on PostgreSQL, the server's too (SQLite's is inside
    this process), so the backends compare on all the work, not only the part that happens in the bot."""
    count = max(1, len(run.ok))
    figure(f"{prefix} bot CPU as % of one core", run.bot_cpu / run.elapsed * 100, "%", 1)
    figure(f"{prefix} bot CPU per reservation", run.bot_cpu / count * 1000, "ms", 3)
    if name == "sqlite":
        figure(f"{prefix} database server CPU per reservation", "none (SQLite works inside the bot process)")
        figure(f"{prefix} bot + server CPU per reservation", run.bot_cpu / count * 1000, "ms", 3)
    elif run.server_cpu is None:
        figure(f"{prefix} database server CPU per reservation", "not measured (server not on this machine)")
    else:
        figure(f"{prefix} database server CPU as % of one core", run.server_cpu / run.elapsed * 100, "%", 1)
        figure(f"{prefix} database server CPU per reservation", run.server_cpu / count * 1000, "ms", 3)
        figure(f"{prefix} bot + server CPU per reservation", (run.bot_cpu + run.server_cpu) / count * 1000, "ms", 3)


async def run_phases(databases: Databases, *, seconds_a: float, seconds_b: float, seconds_c: float,
                     per_member: int) -> None:
    name = databases.name
    a = await phase_reserve(databases, "a", limits=HIGH_LIMITS, per_member=per_member, seconds=seconds_a)
    rate = len(a.ok) / a.elapsed
    print(f"-- A: QuotaService.reserve, limits set high (nothing refused) [{name}]")
    figure("A reservations", len(a.ok))
    figure("A refused", len(a.refused))
    figure("A errors", a.errors)
    figure("A reservations per second", rate, "/s", 1)
    figure("A reservations per second, first 10% of the run", _rate_in(a, 0.0, 0.1), "/s", 1)
    figure("A reservations per second, last 10% of the run", _rate_in(a, 0.9, 1.0), "/s", 1)
    _report_latency("A reservation", a.ok)
    _report_cpu("A", a, name)
    goal("A reservations per second", rate, ">=", 500, "/s")

    solo = await phase_reserve(databases, "a1", limits=HIGH_LIMITS, per_member=per_member * MEMBERS,
                               seconds=seconds_b, members=1)
    print(f"-- A1: the same with one member at a time (service time without queueing) [{name}]")
    figure("A1 reservations per second", len(solo.ok) / solo.elapsed, "/s", 1)
    _report_latency("A1 reservation", solo.ok)
    _report_cpu("A1", solo, name)
    if name == "sqlite":
        note("with 50 members in flight, A's latency is mostly waiting for the one aiosqlite connection "
             "(about 50 / rate); A1 shows one reservation's own time")
    else:
        note(f"with 50 members in flight, A's latency is waiting for one of the pool's {_databases.POOL_SIZE} "
             "connections and then for the server's advisory lock (one reservation per server at a time); "
             "A1 shows one reservation's own time")

    b = await phase_reserve(databases, "b", limits=dict(SAFE_DEFAULT_LIMITS), per_member=per_member,
                            seconds=seconds_b)
    print(f"-- B: QuotaService.reserve, shipped default limits (refusals counted apart) [{name}]")
    figure("B reservations", len(b.ok))
    figure("B refused", len(b.refused))
    figure("B errors", b.errors)
    figure("B attempts per second", (len(b.ok) + len(b.refused)) / b.elapsed, "/s", 1)
    _report_latency("B reservation", b.ok)
    _report_latency("B refusal", b.refused)

    c, stats = await phase_submit(databases, per_member=per_member, seconds=seconds_c)
    print(f"-- C: TaskService.submit (reserve + paid POST to the fake Evolink in its own process) [{name}]")
    figure("C submissions", len(c.ok))
    figure("C errors", c.errors)
    figure("C POSTs the fake received", stats.get("submissions", 0))
    figure("C submissions per second", len(c.ok) / c.elapsed, "/s", 1)
    _report_latency("C submission", c.ok)
    note("phase C includes the loopback HTTP POST and the fake's own time to answer it")


async def main_async(full: bool, database: str, postgres_url: str | None, seconds: float | None = None) -> None:
    seconds_a, seconds_b, seconds_c = (20.0, 5.0, 10.0) if full else (2.0, 1.0, 2.0)
    if seconds is not None:  # phase A's length; the others keep their proportion to it
        seconds_a, seconds_b, seconds_c = seconds, seconds_b * seconds / seconds_a, seconds_c * seconds / seconds_a
    per_member = 2000 if full else 200
    names = _databases.backends(database)
    header(f"bench_submit: reservations through the quota check into {' and '.join(names)}",
           "full" if full else "reduced", members=MEMBERS, phase_a_seconds=seconds_a, phase_b_seconds=seconds_b,
           phase_c_seconds=seconds_c, max_attempts_per_member=per_member, database=database)
    async with _databases.databases_for(database, postgres_url) as server:
        for name in names:
            with tempfile.TemporaryDirectory(prefix="bench-submit-") as tmp, backend(name):
                await run_phases(Databases(name, Path(tmp), server), seconds_a=seconds_a,
                                 seconds_b=seconds_b, seconds_c=seconds_c, per_member=per_member)
    side_by_side(names)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="the real size (about 40 s per database)")
    parser.add_argument("--seconds", type=float, help="phase A's length (s); the other phases scale with it")
    _databases.add_arguments(parser)
    args = parser.parse_args()
    asyncio.run(main_async(args.full, args.database, args.postgres_url, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
