"""TaskPoller with real SQLite and the fake Evolink: one bad task never stops the loop; bounded concurrency."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bot.config import LIMIT_NAMES
from bot.evolink import EvolinkClient
from bot.poller import TaskPoller
from bot.quota import QuotaService
from bot.tasks import TaskService
from bot.validation import VideoSource
from sandbox.fake_evolink import FakeEvolink
from storage import Storage, TaskRecord, open_storage

pytestmark = pytest.mark.backends("sqlite", "postgres")


class RecordingNotifier:
    """The notifier's edge: records deliveries, and blows up on the tasks it is told to."""

    def __init__(self, storage: Storage, explode_on: set[int]) -> None:
        self.storage = storage
        self.explode_on = explode_on
        self.delivered: list[int] = []
        self.changed = asyncio.Event()

    async def deliver(self, task: TaskRecord) -> bool:
        if task.id in self.explode_on:
            raise RuntimeError("boom")
        await self.storage.update_task(task.id, {"notified_at": time.time(), "next_poll_at": None})
        self.delivered.append(task.id)
        self.changed.set()
        return True

    async def update_card(self, task: TaskRecord) -> None:
        return None


@pytest.fixture
async def parts(storage_url: str) -> AsyncIterator[tuple[Storage, FakeEvolink, EvolinkClient]]:
    storage = await open_storage(storage_url)
    fake = FakeEvolink(estimated_time=1)
    await fake.start()
    async with aiohttp.ClientSession() as session:
        yield storage, fake, EvolinkClient(session, fake.base_url, fake.api_key, backoff_base=0.01)
    await fake.close()
    await storage.close()


async def _submit(service: TaskService, n: int) -> list[TaskRecord]:
    source = VideoSource(kind="url", url="https://example.com/v.mp4", label="example.com/v.mp4")
    return [await service.submit(guild_id=1, channel_id=2, user_id=3, source=source, scale=2) for _ in range(n)]


async def _wait_delivered(notifier: RecordingNotifier, count: int) -> None:
    async def wait() -> None:
        while len(notifier.delivered) < count:
            notifier.changed.clear()
            await notifier.changed.wait()

    await asyncio.wait_for(wait(), 15)


async def test_an_exception_in_one_task_never_stops_the_loop(parts: tuple) -> None:
    storage, fake, client = parts
    service = TaskService(storage, client, QuotaService(storage, dict.fromkeys(LIMIT_NAMES)), poll_min=0.05,
                          poll_max=0.2)
    tasks = await _submit(service, 4)
    notifier = RecordingNotifier(storage, explode_on={tasks[0].id})
    poller = TaskPoller(storage, service, notifier, client, concurrency=2, idle_wait=0.2)  # type: ignore[arg-type]
    for task in tasks:
        fake.complete(task.upstream_id, "https://cdn.evolink.ai/r.mp4")
    poller.start()
    try:
        await _wait_delivered(notifier, 3)
    finally:
        await poller.stop()
    assert sorted(notifier.delivered) == sorted(t.id for t in tasks[1:])
    broken = await storage.get_task(tasks[0].id)
    assert broken is not None and broken.status == "completed" and broken.next_poll_at is not None, \
        "the failing task stays scheduled for another try"


async def test_with_a_single_slot_every_due_task_is_still_handled(parts: tuple) -> None:
    storage, fake, client = parts
    service = TaskService(storage, client, QuotaService(storage, dict.fromkeys(LIMIT_NAMES)), poll_min=0.05,
                          poll_max=0.2)
    tasks = await _submit(service, 3)
    for task in tasks:
        fake.complete(task.upstream_id, "https://cdn.evolink.ai/r.mp4")
    notifier = RecordingNotifier(storage, explode_on=set())
    poller = TaskPoller(storage, service, notifier, client, concurrency=1, idle_wait=0.2)  # type: ignore[arg-type]
    poller.start()
    try:
        await _wait_delivered(notifier, 3)
    finally:
        await poller.stop()
    assert sorted(notifier.delivered) == [t.id for t in tasks]
    assert await storage.next_due_at(owner="test") is None, "nothing left scheduled once everyone was told"


async def test_an_unexpected_error_in_the_post_fails_the_row_and_releases_its_quota(parts: tuple) -> None:
    from bot.tasks import SubmissionFailed

    storage, _, _ = parts

    class BrokenClient:
        async def submit(self, video_url: str, scale: int, callback_url: str | None = None) -> None:
            raise RuntimeError("bug")

    service = TaskService(storage, BrokenClient(), QuotaService(storage, dict.fromkeys(LIMIT_NAMES)),  # type: ignore[arg-type]
                          poll_min=0.05, poll_max=0.2)
    with pytest.raises(SubmissionFailed):
        await _submit(service, 1)
    [task] = await storage.user_tasks(3, 5)
    assert (task.status, task.quota_state, task.next_poll_at) == ("failed", "released", None)


async def test_tasks_falling_due_close_together_are_taken_in_one_scan_and_never_early(parts: tuple) -> None:
    storage, fake, client = parts
    service = TaskService(storage, client, QuotaService(storage, dict.fromkeys(LIMIT_NAMES)), poll_min=0.05,
                          poll_max=0.2)
    tasks = await _submit(service, 3)
    start = time.time()
    due_at = {task.id: start + 0.3 + 0.05 * i for i, task in enumerate(tasks)}
    for task in tasks:
        await storage.update_task(task.id, {"next_poll_at": due_at[task.id]})
        fake.complete(task.upstream_id, "https://cdn.evolink.ai/r.mp4")
    taken: list[tuple[float, list[int]]] = []
    scan = storage.claim_due

    async def recording_scan(now: float, limit: int, **kwargs: Any) -> tuple[list[TaskRecord], int]:
        found, taken_over = await scan(now, limit, **kwargs)
        if found:
            taken.append((time.time(), [t.id for t in found]))
        return found, taken_over

    storage.claim_due = recording_scan  # type: ignore[method-assign]
    notifier = RecordingNotifier(storage, explode_on=set())
    poller = TaskPoller(storage, service, notifier, client, concurrency=8, idle_wait=5.0, slack=0.5)  # type: ignore[arg-type]
    poller.start()
    try:
        await _wait_delivered(notifier, 3)
    finally:
        await poller.stop()
    assert [sorted(ids) for _, ids in taken] == [sorted(due_at)], "one scan took all three"
    assert taken[0][0] >= max(due_at.values()), "none was queried before it was due"
