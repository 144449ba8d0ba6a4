"""Callbacks as hints, at the service and listener level (SQLite and PostgreSQL, the fake Evolink, real aiohttp)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
import pytest

from bot.callbacks import CallbackHints
from bot.config import LIMIT_NAMES
from bot.evolink import EvolinkClient
from bot.listener import HttpListener
from bot.quota import QuotaService
from bot.tasks import TaskService
from bot.validation import VideoSource
from sandbox.fake_evolink import FakeEvolink
from storage import Storage, TaskRecord

pytestmark = pytest.mark.backends("sqlite", "postgres")  # through the `storage` fixture (tests/conftest.py)

PUBLIC = "https://callbacks.example.com/evolink"
SOURCE = VideoSource(kind="url", url="https://example.com/v.mp4", label="example.com/v.mp4")


class Parts:
    def __init__(self, storage: Storage, fake: FakeEvolink, client: EvolinkClient) -> None:
        self.storage, self.fake, self.client = storage, fake, client
        self.changes = 0

    def service(self, callback_url: str | None = PUBLIC, callback_poll: float = 300.0) -> TaskService:
        quotas = QuotaService(self.storage, dict.fromkeys(LIMIT_NAMES))
        return TaskService(self.storage, self.client, quotas, poll_min=5, poll_max=60, callback_url=callback_url,
                           callback_poll=callback_poll, on_change=self._changed)

    def _changed(self) -> None:
        self.changes += 1


@pytest.fixture
async def parts(storage: Storage) -> AsyncIterator[Parts]:
    fake = FakeEvolink(estimated_time=600)
    await fake.start()
    async with aiohttp.ClientSession() as session:
        yield Parts(storage, fake, EvolinkClient(session, fake.base_url, fake.api_key, backoff_base=0.01))
    await fake.close()


async def _submit(service: TaskService) -> TaskRecord:
    return await service.submit(guild_id=1, channel_id=2, user_id=3, source=SOURCE, scale=2)


async def test_each_task_gets_its_own_callback_url_and_a_safety_net_schedule(parts: Parts) -> None:
    service = parts.service()
    first, second = await _submit(service), await _submit(service)
    assert first.callback_token and second.callback_token and first.callback_token != second.callback_token
    assert len(first.callback_token) >= 24
    sent = parts.fake.tasks[first.upstream_id]  # type: ignore[index]
    assert sent.callback_url == f"{PUBLIC}/{first.id}/{first.callback_token}"
    # With a callback coming, the first query is the safety net, not the estimate's schedule (<= 60 s).
    assert first.next_poll_at is not None and first.next_poll_at - time.time() > 290


async def test_without_callbacks_nothing_changes(parts: Parts) -> None:
    task = await _submit(parts.service(callback_url=None))
    assert task.callback_token is None
    assert parts.fake.tasks[task.upstream_id].callback_url is None  # type: ignore[index]
    assert "callback_url" not in parts.fake.requests[-1].json
    assert task.next_poll_at is not None and task.next_poll_at - time.time() <= 60


async def test_a_task_sent_with_a_callback_is_polled_normally_once_callbacks_are_turned_off(parts: Parts) -> None:
    task = await _submit(parts.service())
    snapshot = await parts.client.get_task(task.upstream_id)  # type: ignore[arg-type]
    updated = await parts.service(callback_url=None).apply_snapshot(task, snapshot)
    assert updated is not None and updated.next_poll_at is not None
    assert updated.next_poll_at - time.time() <= 60, "nobody listens for its callback any more"


async def test_a_hint_makes_a_running_task_due_only_with_its_token(parts: Parts) -> None:
    service = parts.service()
    task = await _submit(service)
    token = task.callback_token
    assert token is not None
    before = parts.changes
    wrong = ("y" if token[0] == "x" else "x") + token[1:]  # differs from the token whatever its first letter
    assert await service.hint(task.id, wrong) is None
    assert await service.hint(task.id + 1000, token) is None
    assert (await parts.storage.get_task(task.id)).next_poll_at == task.next_poll_at  # type: ignore[union-attr]
    assert parts.changes == before, "a refused hint does not wake the poller"

    assert await service.hint(task.id, token) is True
    due = await parts.storage.get_task(task.id)
    assert due is not None and due.next_poll_at is not None and due.next_poll_at <= time.time()
    assert parts.changes == before + 1
    assert await service.hint(task.id, token) is True, "a repeated hint is harmless"
    assert parts.fake.queries(task.upstream_id) == 0, "a hint never queries by itself"


async def test_a_hint_for_an_ended_task_is_accepted_and_changes_nothing(parts: Parts) -> None:
    service = parts.service()
    task = await _submit(service)
    parts.fake.complete(task.upstream_id)  # type: ignore[arg-type]
    ended = await service.apply_snapshot(task, await parts.client.get_task(task.upstream_id))  # type: ignore[arg-type]
    assert ended is not None and ended.status == "completed"
    assert await service.hint(task.id, task.callback_token) is False  # type: ignore[arg-type]
    assert (await parts.storage.get_task(task.id)) == ended


async def test_a_query_in_flight_when_the_hint_lands_does_not_push_the_task_back(parts: Parts) -> None:
    """The poller read the row and queried (still running); the task ends and its callback makes it due;
    then the stale answer is applied. The task must stay due, or the result waits for the safety net."""
    service = parts.service()
    submitted = await _submit(service)
    # The poller took it because it was due (its safety-net query), so its next_poll_at is in the past.
    task = await parts.storage.update_task(submitted.id, {"next_poll_at": time.time() - 1})
    assert task is not None
    stale = await parts.client.get_task(task.upstream_id)  # type: ignore[arg-type]
    assert await service.hint(task.id, task.callback_token) is True  # type: ignore[arg-type]
    assert await service.apply_snapshot(task, stale) is None
    row = await parts.storage.get_task(task.id)
    assert row is not None and row.next_poll_at is not None and row.next_poll_at <= time.time()
    # The poller then reads the row again and its answer is applied as usual.
    assert await service.apply_snapshot(row, stale) is not None


async def test_start_up_brings_forward_the_tasks_that_should_have_ended(parts: Parts) -> None:
    service = parts.service()
    tasks = [await _submit(service) for _ in range(22)]  # estimated_time 600
    now = time.time()
    done, young = tasks[0], tasks[1]
    await parts.storage.update_task(done.id, {"status": "completed", "next_poll_at": None})
    for task in tasks[2:]:  # submitted 590 s ago: expected to end within the 30 s spread
        await parts.storage.update_task(task.id, {"submitted_at": now - 590})
    assert await parts.storage.poll_ending_within(now, 30.0) == 20
    for task in tasks[2:]:
        row = await parts.storage.get_task(task.id)
        assert row is not None and now <= row.next_poll_at <= now + 30.0  # type: ignore[operator]
    assert (await parts.storage.get_task(done.id)).next_poll_at is None  # type: ignore[union-attr]
    kept = await parts.storage.get_task(young.id)
    assert kept is not None and kept.next_poll_at == young.next_poll_at, "a young task keeps its safety net"


async def test_errors_back_off_as_usual_with_callbacks_on(parts: Parts) -> None:
    service = parts.service()
    task = await _submit(service)
    delay = service._next_query_in(task, elapsed=10, estimated_time=600, progress=1, failures=2)
    assert delay == 20, "a failing query is retried on the error back-off, not the 300 s safety net"
    assert service._next_query_in(replace(task, callback_token=None), elapsed=10, estimated_time=600,
                                  progress=1, failures=0) <= 60


@pytest.mark.parametrize(("path", "status"), [
    ("/evolink/{id}/{token}", 204),
    ("/{id}/{token}", 204),  # a proxy that strips the prefix
    ("/evolink/{id}/{token}/", 204),
    ("/evolink/{id}/wrong-token", 404),
    ("/evolink/{id}", 404),
    ("/", 404),
    ("/evolink/abc/{token}", 404),
    ("/evolink/-1/{token}", 404),
    ("/evolink/{id}/" + "t" * 65, 404),
    ("/evolink/99999999999999999999999/{token}", 404),
    ("/evolink/%F0%9F%92%A5/{token}", 404),
])
async def test_the_listener_answers_by_path_and_token(parts: Parts, path: str, status: int) -> None:
    service = parts.service()
    task = await _submit(service)
    hints = CallbackHints(service)
    receiver = HttpListener("127.0.0.1", 0, callbacks=hints)
    await receiver.start()
    try:
        url = f"http://127.0.0.1:{receiver.port}" + path.format(id=task.id, token=task.callback_token)
        async with aiohttp.ClientSession() as session, session.post(url, json={"id": "forged"}) as response:
            assert response.status == status
            assert task.callback_token not in await response.text()
        row = await parts.storage.get_task(task.id)
        assert row is not None and (row.next_poll_at <= time.time()) == (status == 204)  # type: ignore[operator]
        assert (hints.accepted, hints.rejected) == ((1, 0) if status == 204 else (0, 1))
    finally:
        await receiver.close()


async def test_the_listener_refuses_a_get_and_ignores_a_huge_body(parts: Parts) -> None:
    service = parts.service()
    task = await _submit(service)
    hints = CallbackHints(service)
    receiver = HttpListener("127.0.0.1", 0, callbacks=hints)
    await receiver.start()
    try:
        url = f"http://127.0.0.1:{receiver.port}/evolink/{task.id}/{task.callback_token}"
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as response:
                assert response.status == 405
            async with session.post(url, data=b"x" * 300_000) as response:
                assert response.status == 204  # the body is never read, so its size does not matter
    finally:
        await receiver.close()
