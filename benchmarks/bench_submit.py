"""Submissions per second through the quota check into SQLite, from 50 concurrent members.

    python benchmarks/bench_submit.py           # reduced: a few seconds
    python benchmarks/bench_submit.py --full    # 20 s of reservations, then the other phases

Three phases, each on a fresh SQLite file (WAL, as the bot opens it) in a temporary directory:
  A. QuotaService.reserve with every limit set very high (so every check runs and nothing is refused);
  B. the same with the shipped default limits (5 a day and 1 at a time per member, 50 a day per server):
     almost every attempt is refused, and refusals are counted and timed apart from reservations;
  C. TaskService.submit (reserve + the paid POST to the fake Evolink + recording the upstream id), with the
     fake Evolink in its own process so its CPU does not count.
Each member is an asyncio task that loops reserve(); loops stop at a count or a deadline, whichever is first.
Goal: phase A >= 500 reservations per second.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
from _bench import FakeEvolinkProcess, figure, goal, header, note, percentile

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


async def _members(run: Run, attempt: Callable[[int, int], Awaitable[None]], *, members: int, per_member: int,
                   seconds: float) -> None:
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

    run.started = time.perf_counter()
    await asyncio.gather(*(member(i) for i in range(members)))
    run.elapsed = time.perf_counter() - run.started


def _new_task(user_id: int, n: int) -> NewTask:
    return NewTask(guild_id=GUILD_ID, channel_id=CHANNEL_ID, user_id=user_id, source_kind="url",
                   source_url=f"https://example.com/v/{user_id}-{n}.mp4", source_label=f"{user_id}-{n}.mp4",
                   scale=2, created_at=time.time())


def _report_latency(prefix: str, values: list[float]) -> None:
    figure(f"{prefix} p50 latency", percentile(values, 50) * 1000, "ms")
    figure(f"{prefix} p99 latency", percentile(values, 99) * 1000, "ms")


async def phase_reserve(workdir: Path, *, limits: dict[str, int | None], per_member: int, seconds: float,
                        members: int = MEMBERS) -> Run:
    storage = await open_storage(f"sqlite:///{workdir / 'reserve.db'}")
    quotas = QuotaService(storage, limits)
    run = Run()

    async def attempt(user_id: int, n: int) -> None:
        await quotas.reserve(_new_task(user_id, n), ())

    try:
        await _members(run, attempt, members=members, per_member=per_member, seconds=seconds)
    finally:
        await storage.close()
    return run


async def phase_submit(workdir: Path, *, per_member: int, seconds: float) -> tuple[Run, dict]:
    fake = FakeEvolinkProcess("--estimated-time", "600")
    await fake.start()
    storage = await open_storage(f"sqlite:///{workdir / 'submit.db'}")
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

            await _members(run, attempt, members=MEMBERS, per_member=per_member, seconds=seconds)
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


async def main_async(full: bool) -> None:
    seconds_a, seconds_b, seconds_c = (20.0, 5.0, 10.0) if full else (2.0, 1.0, 2.0)
    per_member = 2000 if full else 200
    header("bench_submit: reservations through the quota check into SQLite", "full" if full else "reduced",
           members=MEMBERS, phase_a_seconds=seconds_a, phase_b_seconds=seconds_b, phase_c_seconds=seconds_c,
           max_attempts_per_member=per_member, sqlite="file, WAL, synchronous=NORMAL")
    with tempfile.TemporaryDirectory(prefix="bench-submit-") as tmp:
        workdir = Path(tmp)

        a = await phase_reserve(workdir, limits=HIGH_LIMITS, per_member=per_member, seconds=seconds_a)
        rate = len(a.ok) / a.elapsed
        print("-- A: QuotaService.reserve, limits set high (nothing refused)")
        figure("A reservations", len(a.ok))
        figure("A refused", len(a.refused))
        figure("A errors", a.errors)
        figure("A reservations per second", rate, "/s", 1)
        figure("A reservations per second, first 10% of the run", _rate_in(a, 0.0, 0.1), "/s", 1)
        figure("A reservations per second, last 10% of the run", _rate_in(a, 0.9, 1.0), "/s", 1)
        _report_latency("A reservation", a.ok)
        goal("A reservations per second", rate, ">=", 500, "/s")

        solo_dir = workdir / "solo"
        solo_dir.mkdir()
        solo = await phase_reserve(solo_dir, limits=HIGH_LIMITS, per_member=per_member * MEMBERS,
                                   seconds=seconds_b, members=1)
        print("-- A1: the same with one member at a time (service time without queueing)")
        figure("A1 reservations per second", len(solo.ok) / solo.elapsed, "/s", 1)
        _report_latency("A1 reservation", solo.ok)
        note("with 50 members in flight, A's latency is mostly waiting for the one aiosqlite connection "
             "(about 50 / rate); A1 shows one reservation's own time")

        b_workdir = workdir / "b"
        b_workdir.mkdir()
        b = await phase_reserve(b_workdir, limits=dict(SAFE_DEFAULT_LIMITS), per_member=per_member,
                                seconds=seconds_b)
        print("-- B: QuotaService.reserve, shipped default limits (refusals counted apart)")
        figure("B reservations", len(b.ok))
        figure("B refused", len(b.refused))
        figure("B errors", b.errors)
        figure("B attempts per second", (len(b.ok) + len(b.refused)) / b.elapsed, "/s", 1)
        _report_latency("B reservation", b.ok)
        _report_latency("B refusal", b.refused)

        c_workdir = workdir / "c"
        c_workdir.mkdir()
        c, stats = await phase_submit(c_workdir, per_member=per_member, seconds=seconds_c)
        print("-- C: TaskService.submit (reserve + paid POST to the fake Evolink in its own process)")
        figure("C submissions", len(c.ok))
        figure("C errors", c.errors)
        figure("C POSTs the fake received", stats.get("submissions", 0))
        figure("C submissions per second", len(c.ok) / c.elapsed, "/s", 1)
        _report_latency("C submission", c.ok)
        note("phase C includes the loopback HTTP POST and the fake's own time to answer it")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="the real size (about 40 s)")
    args = parser.parse_args()
    asyncio.run(main_async(args.full))
    return 0


if __name__ == "__main__":
    sys.exit(main())
