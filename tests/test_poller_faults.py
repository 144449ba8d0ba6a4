"""TaskPoller under faults, on a clock the test moves: back-off instead of a hot loop, no sleeping on a long
Retry-After, and one bad scan or one bad task never stopping the loop.

The poller, the task service and the notifier run on a manual clock, so "due" changes only when the test
advances it: any query the poller makes while the clock stands still is one the schedule did not allow. The
storage is the real SQLite one, wrapped so every write and scan is a signal to wait on (never a sleep).
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from email.utils import formatdate
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web

from bot.config import LIMIT_NAMES
from bot.evolink import EvolinkClient, TaskSnapshot
from bot.poller import TaskPoller
from bot.quota import QuotaService
from bot.tasks import TaskService
from bot.validation import VideoSource
from sandbox.fake_evolink import FakeEvolink
from storage import Storage, TaskRecord, open_storage

pytestmark = pytest.mark.backends("sqlite", "postgres")

POLL_MIN, POLL_MAX, IDLE_WAIT = 0.1, 0.8, 0.5
RESULT = "https://cdn.evolink.ai/sample/poller-faults.mp4"


def at(moment: float) -> Any:
    """Equal to `moment` up to float rounding (pytest.approx's default relative tolerance is ~30 min here)."""
    return pytest.approx(moment, rel=0, abs=1e-6)


class Clock:
    """Stands still until the test moves it."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class WatchedStorage:
    """The real storage; every write and every scan is a signal, so a test waits on database state.

    `fail_next` makes a scan method raise, like a locked database, the given number of times.
    """

    def __init__(self, inner: Storage) -> None:
        self._inner = inner
        self._changed = asyncio.Event()
        self.scans = 0
        self.fail_next: dict[str, int] = {}
        self.failed_scans = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _signal(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _fail_if_asked(self, name: str) -> None:
        if self.fail_next.get(name, 0) > 0:
            self.fail_next[name] -= 1
            self.failed_scans += 1
            self._signal()
            raise sqlite3.OperationalError("database is locked")

    async def update_task(self, *args: Any, **kwargs: Any) -> TaskRecord | None:
        result = await self._inner.update_task(*args, **kwargs)
        self._signal()
        return result

    async def claim_due(self, *args: Any, **kwargs: Any) -> tuple[list[TaskRecord], int]:
        self._fail_if_asked("claim_due")
        result = await self._inner.claim_due(*args, **kwargs)
        self.scans += 1
        self._signal()
        return result

    async def next_due_at(self, *args: Any, **kwargs: Any) -> float | None:
        self._fail_if_asked("next_due_at")
        return await self._inner.next_due_at(*args, **kwargs)

    async def until(self, predicate: Callable[[], Awaitable[bool] | bool], timeout: float = 10) -> None:
        """Return once predicate() holds, re-checked after every write and scan."""
        async with asyncio.timeout(timeout):
            while True:
                changed = self._changed
                value = predicate()
                if await value if isinstance(value, Awaitable) else value:
                    return
                await changed.wait()


class RecordingNotifier:
    """The notifier's edge: a delivery only marks the row told."""

    def __init__(self, storage: WatchedStorage) -> None:
        self.storage = storage
        self.delivered: list[int] = []

    async def deliver(self, task: TaskRecord) -> bool:
        await self.storage.update_task(task.id, {"notified_at": time.time(), "next_poll_at": None})
        self.delivered.append(task.id)
        return True

    async def update_card(self, task: TaskRecord) -> None:
        return None


class Parts:
    """One poller over real SQLite and the fake Evolink, on a manual clock."""

    def __init__(self, storage: WatchedStorage, fake: FakeEvolink, session: aiohttp.ClientSession,
                 clock: Clock) -> None:
        self.storage = storage
        self.fake = fake
        self.session = session
        self.clock = clock
        self.client = self.make_client(fake.base_url)
        self.service = TaskService(cast(Storage, storage), self.client,
                                   QuotaService(cast(Storage, storage), dict.fromkeys(LIMIT_NAMES), clock=clock),
                                   poll_min=POLL_MIN, poll_max=POLL_MAX, clock=clock)
        self.notifier = RecordingNotifier(storage)
        self.poller: TaskPoller | None = None

    def make_client(self, base_url: str) -> EvolinkClient:
        """The real client with its default max_retry_wait (10 s), quick in-call retries and a short timeout."""
        return EvolinkClient(self.session, base_url, self.fake.api_key, backoff_base=0.01, request_timeout=0.2)

    def start(self, evolink: Any = None) -> TaskPoller:
        self.poller = TaskPoller(cast(Storage, self.storage), self.service, self.notifier,  # type: ignore[arg-type]
                                 evolink or self.client, concurrency=4, idle_wait=IDLE_WAIT, clock=self.clock)
        self.poller.start()
        return self.poller

    async def submit(self, n: int) -> list[TaskRecord]:
        """n running tasks, all due now."""
        source = VideoSource(kind="url", url="https://example.com/v.mp4", label="example.com/v.mp4")
        tasks = [await self.service.submit(guild_id=1, channel_id=2, user_id=3, source=source, scale=2)
                 for _ in range(n)]
        for task in tasks:
            await self.storage.update_task(task.id, {"next_poll_at": self.clock.now})
        return tasks

    async def row(self, task: TaskRecord) -> TaskRecord:
        record = await self.storage.get_task(task.id)
        assert record is not None
        return record

    async def scans_at_the_same_moment(self, count: int = 3) -> None:
        """Make the poller look for due work `count` more times without moving the clock."""
        assert self.poller is not None
        for _ in range(count):
            before = self.storage.scans
            self.poller.wake()
            await self.storage.until(lambda before=before: self.storage.scans > before)

    def advance(self, seconds: float) -> None:
        assert self.poller is not None
        self.clock.now += seconds
        self.poller.wake()


@pytest.fixture
async def parts(storage_url: str) -> AsyncIterator[Parts]:
    inner = await open_storage(storage_url)
    fake = FakeEvolink(estimated_time=8, hang_seconds=2)
    await fake.start()
    built: Parts | None = None
    try:
        async with aiohttp.ClientSession() as session:
            built = Parts(WatchedStorage(inner), fake, session, Clock())
            yield built
            if built.poller is not None:
                await built.poller.stop()
    finally:
        await fake.close()
        await inner.close()


# (fault, HTTP status, queries per poll: 5xx and timeouts are retried inside one call, a malformed body is not)
FAULTS = [("server_error", 500, 3), ("timeout", None, 3), ("malformed_json", None, 1)]


@pytest.mark.parametrize(("fault", "status", "per_poll"), FAULTS, ids=[f[0] for f in FAULTS])
async def test_a_task_whose_queries_fail_backs_off_while_another_task_is_served(
        parts: Parts, fault: str, status: int | None, per_poll: int) -> None:
    sick, healthy = await parts.submit(2)
    rounds = 4
    parts.fake.inject(fault, status=status, task_id=sick.upstream_id, times=rounds * per_poll)
    parts.fake.set_progress(healthy.upstream_id or "", 10)
    parts.start()
    schedule = []
    for failures in range(1, rounds + 1):
        await parts.storage.until(lambda n=failures: _failures_are(parts, sick, n))
        row = await parts.row(sick)
        delay = min(POLL_MAX, POLL_MIN * 2 ** failures)
        assert row.next_poll_at == at(parts.clock.now + delay), f"after failure {failures}"
        schedule.append(round(row.next_poll_at - parts.clock.now, 3))
        assert parts.fake.queries(sick.upstream_id) == failures * per_poll
        await parts.scans_at_the_same_moment()
        assert parts.fake.queries(sick.upstream_id) == failures * per_poll, "not queried again before it is due"
        if failures == 2:
            parts.fake.complete(healthy.upstream_id or "", RESULT)
        parts.advance(delay)
    assert schedule == [0.2, 0.4, 0.8, 0.8], "doubling from POLL_MIN_SECONDS, capped at POLL_MAX_SECONDS"

    await parts.storage.until(lambda: healthy.id in parts.notifier.delivered)
    await parts.storage.until(lambda: _failures_are(parts, sick, 0))  # the fault is over: the next query works
    assert parts.fake.queries(sick.upstream_id) == rounds * per_poll + 1
    assert (await parts.row(sick)).status in ("pending", "processing"), "the failures never ended the task"


async def _failures_are(parts: Parts, task: TaskRecord, n: int) -> bool:
    return (await parts.row(task)).poll_failures == n


class ExplodingEvolink:
    """The real client, except that querying one task raises a bug of ours (not an EvolinkError)."""

    def __init__(self, client: EvolinkClient, explode_on: str) -> None:
        self.client = client
        self.explode_on = explode_on
        self.calls: dict[str, int] = {}

    async def get_task(self, task_id: str) -> TaskSnapshot:
        self.calls[task_id] = self.calls.get(task_id, 0) + 1
        if task_id == self.explode_on:
            raise KeyError("a bug while reading the answer")
        return await self.client.get_task(task_id)


async def test_an_unexpected_error_in_one_task_reschedules_it_instead_of_retrying_at_once(parts: Parts) -> None:
    broken, healthy = await parts.submit(2)
    evolink = ExplodingEvolink(parts.client, broken.upstream_id or "")
    parts.fake.complete(healthy.upstream_id or "", RESULT)
    started_at = parts.clock.now
    parts.start(evolink)
    await parts.storage.until(lambda: healthy.id in parts.notifier.delivered)
    await parts.storage.until(lambda: _next_poll_is(parts, broken, started_at + IDLE_WAIT))
    await parts.scans_at_the_same_moment()
    assert evolink.calls[broken.upstream_id or ""] == 1, "no hot loop on the broken task"

    parts.advance(IDLE_WAIT)
    await parts.storage.until(lambda: _next_poll_is(parts, broken, started_at + 2 * IDLE_WAIT))
    assert evolink.calls[broken.upstream_id or ""] == 2, "tried again once it was due"


async def _next_poll_is(parts: Parts, task: TaskRecord, when: float) -> bool:
    return (await parts.row(task)).next_poll_at == at(when)


@pytest.mark.parametrize("scan", ["claim_due", "next_due_at"])
async def test_a_failed_scan_does_not_stop_the_poller(parts: Parts, scan: str,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    [task] = await parts.submit(1)
    parts.fake.complete(task.upstream_id or "", RESULT)
    if scan == "next_due_at":  # reached only when the first scan finds nothing due
        await parts.storage.update_task(task.id, {"next_poll_at": parts.clock.now + 5})
    parts.storage.fail_next[scan] = 1
    parts.start()
    await parts.storage.until(lambda: parts.storage.failed_scans == 1)
    if scan == "next_due_at":
        parts.advance(5)
    await parts.storage.until(lambda: task.id in parts.notifier.delivered)
    assert "scanning for due tasks failed" in caplog.text


class RetryLaterEvolink:
    """A task endpoint that answers 429 with Retry-After as an HTTP date once, then the task as running."""

    def __init__(self, seconds_ahead: int) -> None:
        self.seconds_ahead = seconds_ahead
        self.queries = 0
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    async def _query(self, request: web.Request) -> web.Response:
        self.queries += 1
        if self.queries == 1:
            when = formatdate(math.floor(time.time()) + self.seconds_ahead, usegmt=True)
            return web.json_response({"error": {"code": "rate_limit_exceeded", "message": "slow down"}},
                                     status=429, headers={"Retry-After": when})
        return web.json_response({"id": request.match_info["task_id"], "status": "processing", "progress": 5})

    async def __aenter__(self) -> RetryLaterEvolink:
        app = web.Application()
        app.router.add_get("/v1/tasks/{task_id}", self._query)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.mark.parametrize("form", ["seconds", "http-date"])
async def test_a_retry_after_over_10_s_is_not_slept_in_the_call_but_becomes_the_schedule(
        parts: Parts, form: str) -> None:
    """EvolinkClient waits at most max_retry_wait (10 s) inside a call; a longer Retry-After goes back to the
    poller, which reschedules the task no earlier than that. The error must be recorded within 5 s: sleeping
    either 30 s or 10 s in the call would miss it."""
    [task] = await parts.submit(1)
    started_at = parts.clock.now
    async with RetryLaterEvolink(seconds_ahead=31) as dated:
        if form == "seconds":
            parts.fake.inject("rate_limit", retry_after=30, task_id=task.upstream_id)
            parts.start()

            def queries() -> int:
                return parts.fake.queries(task.upstream_id)
        else:
            parts.start(parts.make_client(dated.base_url))

            def queries() -> int:
                return dated.queries
        await parts.storage.until(lambda: _failures_are(parts, task, 1), timeout=5)
        assert queries() == 1, "not retried inside the call"
        row = await parts.row(task)
        assert row.next_poll_at is not None
        assert started_at + 30 <= row.next_poll_at <= started_at + 31

        parts.advance(row.next_poll_at - started_at - 0.5)
        await parts.scans_at_the_same_moment()
        assert queries() == 1, "nothing before Retry-After has passed"
        parts.advance(0.5)
        await parts.storage.until(lambda: _failures_are(parts, task, 0))
        assert queries() == 2
