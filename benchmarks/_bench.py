"""Shared helpers for the benchmark scripts: the machine, percentiles, figure lines, and a fake Evolink whose
tasks take their own time (instead of all finishing after the same `auto_complete_after`).

Every figure is printed as one line ``figure: <name> = <value> [unit]`` and every goal as
``goal: <name> <op> <target>: met|MISSED`` so tests and docs can pick them out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import platform
import random
import socket
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sandbox.fake_discord import FakeDiscord  # noqa: E402
from sandbox.fake_evolink import FakeEvolink, FakeTask  # noqa: E402
from storage import ACTIVE_STATUSES  # noqa: E402

UNLIMITED_ENV = {f"DEFAULT_{name.upper()}": "" for name in
                 ("user_daily_jobs", "user_concurrent_jobs", "user_monthly_credits",
                  "server_daily_jobs", "server_monthly_credits")}


def bot_env(discord: FakeDiscord, guild: str, *, api_key: str, evolink_base_url: str, database: Path | str,
            **settings: str) -> dict[str, str]:
    """The environment of a bot process run against the two fakes, with no quota limits, plus `settings`.
    `database` is a SQLite file, or a DATABASE_URL (str) such as postgresql://..."""
    url = database if isinstance(database, str) else f"sqlite:///{database}"
    return {
        "DISCORD_TOKEN": discord.bot_token, "EVOLINK_API_KEY": api_key, "EVOLINK_BASE_URL": evolink_base_url,
        "DATABASE_URL": url, "DISCORD_GUILD_IDS": guild,
        "DISCORD_API_BASE_URL": discord.api_base, "DISCORD_GATEWAY_URL": discord.gateway_url,
        "LOG_LEVEL": "INFO", "HTTP_LISTEN": "127.0.0.1:0", **UNLIMITED_ENV, **settings,
    }


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for the bot's HTTP listener, HTTP_LISTEN)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- the machine ---------------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count() or 1
    return {"cpu": cpu_model(), "cores": usable, "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "os": f"{platform.system()} {platform.release()}"}


def header(title: str, mode: str, **params: object) -> None:
    info = machine()
    print(f"== {title} ==")
    print(f"machine: cpu={info['cpu']!r} cores={info['cores']} (os.cpu_count={info['cpu_count']}) "
          f"python={info['python']} os={info['os']}")
    print(f"mode: {mode}")
    if params:
        print("params: " + ", ".join(f"{k}={v}" for k, v in params.items()))
    sys.stdout.flush()


# --- figures -------------------------------------------------------------------------------------------
def percentile(values: Iterable[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100); nan for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def notify_latencies(seen: dict[str, float], completion: dict[str, float], durations: dict[str, float],
                     estimated: float) -> tuple[dict[str, float], list[float], list[float], list[float]]:
    """From a job's end upstream (`completion`) to the bot's channel post and DM (`seen["channel:<id>"]`,
    `seen["dm:<id>"]`): the channel latency per job, the DM latencies, and the channel latencies of jobs that ended
    within their estimate and of those that overran it."""
    channel = {tid: seen[f"channel:{tid}"] - at for tid, at in completion.items() if f"channel:{tid}" in seen}
    dm = [seen[f"dm:{tid}"] - at for tid, at in completion.items() if f"dm:{tid}" in seen]
    within = [v for tid, v in channel.items() if durations[tid] <= estimated]
    over = [v for tid, v in channel.items() if durations[tid] > estimated]
    return channel, dm, within, over


def fmt(value: float, digits: int = 2) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


# The backend the figures being printed belong to (set by `backend()`), and every figure printed per backend,
# so a run over both can end with them side by side.
_backend = ""
_recorded: dict[str, dict[str, str]] = {}


@contextlib.contextmanager
def backend(name: str) -> Iterator[None]:
    """Figures and goals printed inside carry ` [name]`, except SQLite's, whose lines keep the names they always
    had (docs and the smoke test look for them); all are kept for `side_by_side()`."""
    global _backend
    previous, _backend = _backend, name
    try:
        yield
    finally:
        _backend = previous


def tagged(name: str) -> str:
    """`name` as printed under the current backend: `A reservations per second [postgres]`."""
    return f"{name} [{_backend}]" if _backend and _backend != "sqlite" else name


def figure(name: str, value: float | int | str, unit: str = "", digits: int = 2) -> None:
    shown = (value if isinstance(value, str) else fmt(value, digits)) + (" " + unit if unit else "")
    if _backend:
        _recorded.setdefault(name, {})[_backend] = shown
    print(f"figure: {tagged(name)} = {shown}", flush=True)


def goal(name: str, value: float, op: str, target: float, unit: str = "") -> bool:
    ok = (not math.isnan(value)) and (value >= target if op == ">=" else value <= target if op == "<="
                                      else value < target if op == "<" else value > target)
    print(f"goal: {tagged(name)} {op} {target:g}{' ' + unit if unit else ''}: {'met' if ok else 'MISSED'} "
          f"(measured {fmt(value)})", flush=True)
    if _backend:
        _recorded.setdefault(f"goal: {name} {op} {target:g}", {})[_backend] = (
            f"{'met' if ok else 'MISSED'} ({fmt(value)})")
    return ok


def side_by_side(backends: Sequence[str]) -> None:
    """Every figure printed under more than one backend, one line each: `compare: <name>: <a> | <b>`, so a
    run over SQLite and PostgreSQL can be read (and pasted into a table) without hunting through its output."""
    if len(backends) < 2:
        return
    print(f"-- side by side, same run, same parameters: {' | '.join(backends)}")
    for name, values in _recorded.items():
        if len(values) > 1:
            print(f"compare: {name}: {' | '.join(values.get(b, '-') for b in backends)}", flush=True)


def note(text: str) -> None:
    print(f"note: {text}", flush=True)


# --- process figures (Linux /proc) ---------------------------------------------------------------------
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a process (its threads included), from /proc/<pid>/stat."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def proc_stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name: [0] state, [1] ppid, [11] utime, [12] stime, [13] cutime,
    [14] cstime (in clock ticks)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2:].split()


def process_tree_cpu_seconds(root: int) -> float:
    """CPU seconds of `root` and its live children, plus the children it has already reaped (its cutime +
    cstime): for a PostgreSQL postmaster that is every server process, including backends that have exited."""
    fields = proc_stat_fields(root)
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            child = proc_stat_fields(int(entry.name))
        except (OSError, ValueError):
            continue  # gone in between
        if int(child[1]) == root:
            ticks += int(child[11]) + int(child[12])
    return ticks / _TICKS


def proc_status_kb(pid: int, key: str) -> int:
    """A `VmRSS`/`VmHWM`-style field of /proc/<pid>/status, in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


# --- a fake Evolink whose tasks take their own time ----------------------------------------------------
class BenchEvolink(FakeEvolink):
    """FakeEvolink where each task runs for its own duration (estimated_time times a random factor), with
    progress rising linearly to 99 until then. `never_complete` keeps every task running (for load tests).

    `completion_at[task_id]` is the monotonic moment the task finished upstream (known from creation). A task
    with a callback_url (submitted, or preloaded with one) has its completion timer armed at creation, so its
    callback fires at that moment whether or not anyone queries it.
    """

    def __init__(self, *, factor_range: tuple[float, float] = (1.0, 1.0), seed: int = 1,
                 never_complete: bool = False, **options: Any) -> None:
        super().__init__(**options)
        self.factor_range = factor_range
        self.never_complete = never_complete
        self._rng = random.Random(seed)
        self.duration: dict[str, float] = {}
        self.completion_at: dict[str, float] = {}

    def preload(self, task_id: str, age: float, duration: float | None = None,
                callback_url: str | None = None) -> FakeTask:
        """A task the bot already knows (its row is written straight to the database), `age` seconds old.
        With `callback_url` (taken as is, not validated) its callback fires when it completes."""
        now = time.monotonic()
        task = FakeTask(id=task_id, video_url="https://example.com/clip.mp4", scale="2", status="processing",
                        created=int(time.time() - age), created_at=now - age,
                        credits_reserved=self.credits_per_task, callback_url=callback_url)
        self.tasks[task_id] = task
        self.duration[task_id] = duration if duration is not None else float(self.estimated_time)
        self.completion_at[task_id] = task.created_at + self.duration[task_id]
        self._on_created(task)
        return task

    def _duration_of(self, task: FakeTask) -> float:
        """The task's duration, drawn at first sight (its creation: see _on_created)."""
        duration = self.duration.get(task.id)
        if duration is None:
            low, high = self.factor_range
            duration = float(self.estimated_time) * self._rng.uniform(low, high)
            self.duration[task.id] = duration
            self.completion_at[task.id] = task.created_at + duration
        return duration

    def _on_created(self, task: FakeTask) -> None:
        # Fix the new task's duration at creation, so its completion moment is known even if never queried.
        self._duration_of(task)
        super()._on_created(task)

    def _completion_moment(self, task: FakeTask) -> float | None:
        if self.never_complete or task.manual or task.status not in ACTIVE_STATUSES:
            return None
        return task.created_at + self._duration_of(task)

    def _auto_advance(self, task: FakeTask) -> None:
        if task.manual or task.status not in ACTIVE_STATUSES:
            return
        duration = self._duration_of(task)
        elapsed = time.monotonic() - task.created_at
        if elapsed >= duration and not self.never_complete:
            task.status, task.progress = "completed", 100
            task.results = [f"https://cdn.evolink.ai/sample/{task.id}.mp4"]
            task.credits_used = task.credits_reserved
        elif elapsed > 0:
            task.status, task.progress = "processing", min(99, int(elapsed / duration * 100))


# --- the fake Evolink as its own process ---------------------------------------------------------------
SERVE_SCRIPT = Path(__file__).resolve().parent / "_serve_fake_evolink.py"


class FakeEvolinkProcess:
    """benchmarks/_serve_fake_evolink.py as a child process, so the fake's CPU is not the bot's."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.proc: asyncio.subprocess.Process | None = None
        self.base_url = ""
        self.api_key = ""
        self.pid = 0

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, str(SERVE_SCRIPT), *self.args, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, limit=2**20)
        info = await self._line(timeout=60)
        self.base_url, self.api_key, self.pid = info["base_url"], info["api_key"], info["pid"]

    async def _line(self, timeout: float = 30) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError("the fake Evolink process exited early")
        return json.loads(line)

    async def stats(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(b"stats\n")
        await self.proc.stdin.drain()
        return await self._line()

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            await asyncio.wait_for(self.proc.wait(), 10)
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            self.proc.kill()
            await self.proc.wait()
