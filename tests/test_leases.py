"""Leases (storage level): processes sharing one PostgreSQL database never work on the same task at once, take
over a dead process's tasks when its lease runs out, and alert the operator once per interval in all."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.config import LIMIT_NAMES
from bot.quota import QuotaService
from storage import NewTask, Storage, open_storage

pytestmark = pytest.mark.backends("postgres")
UNLIMITED = dict.fromkeys(LIMIT_NAMES)


async def _due_tasks(storage: Storage, count: int, now: float) -> list[int]:
    quotas = QuotaService(storage, UNLIMITED)
    ids = []
    for n in range(count):
        task = await quotas.reserve(NewTask(guild_id=1, channel_id=2, user_id=3 + n, source_kind="url",
                                            source_url="https://example.com/v.mp4", source_label="v.mp4", scale=2,
                                            created_at=now), [])
        await storage.update_task(task.id, {"status": "processing", "upstream_id": f"up-{n}", "next_poll_at": now})
        ids.append(task.id)
    return ids


async def test_two_processes_claiming_together_never_get_the_same_task(database_url: str) -> None:
    first, second = await open_storage(database_url), await open_storage(database_url)
    try:
        now = time.time()
        ids = await _due_tasks(first, 100, now)
        # Twenty pollers (ten on each connection pool), each its own owner, all claiming at once.
        claims = await asyncio.gather(*(store.claim_due(now, 7, owner=f"{name}{n}", lease=30)
                                        for n in range(10) for store, name in ((first, "a"), (second, "b"))))
        claimed = [task.id for tasks, _ in claims for task in tasks]
        assert len(claimed) == len(set(claimed)) == 100, "each due task claimed once, none twice"
        assert sorted(claimed) == ids
        assert all(taken_over == 0 for _, taken_over in claims)
    finally:
        await first.close()
        await second.close()


async def test_a_lease_holds_the_task_until_it_runs_out_then_it_is_taken_over(storage: Storage) -> None:
    now = time.time()
    [task_id] = await _due_tasks(storage, 1, now)
    ([claimed], _) = await storage.claim_due(now, 10, owner="a", lease=30)
    assert claimed.lease_owner == "a" and claimed.lease_until == pytest.approx(now + 30)
    assert await storage.claim_due(now + 1, 10, owner="b", lease=30) == ([], 0), "a's lease holds"
    assert await storage.next_due_at(owner="b") == pytest.approx(now + 30), "b wakes when the lease ends"
    assert await storage.next_due_at(owner="a") == pytest.approx(now), "a may take its own task again"
    ([again], taken_over) = await storage.claim_due(now + 31, 10, owner="b", lease=30)
    assert (again.id, again.lease_owner, taken_over) == (task_id, "b", 1)
    assert not await storage.renew_lease(task_id, "a", now + 60), "a lost it: it must not send anything"
    assert await storage.renew_lease(task_id, "b", now + 60)


async def test_a_submitting_row_is_claimed_only_after_its_window(storage: Storage) -> None:
    now = time.time()
    quotas = QuotaService(storage, UNLIMITED)
    task = await quotas.reserve(NewTask(guild_id=1, channel_id=2, user_id=3, source_kind="url",
                                        source_url="https://example.com/v.mp4", source_label="v.mp4", scale=2,
                                        created_at=now, lease_owner="a", lease_until=now + 60,
                                        next_poll_at=now + 60), [])
    for owner in ("a", "b"):  # not even its own process, which may still be sending the POST
        assert await storage.claim_due(now + 59, 10, owner=owner, lease=30) == ([], 0)
    ([claimed], taken_over) = await storage.claim_due(now + 61, 10, owner="b", lease=30)
    assert (claimed.id, claimed.status, taken_over) == (task.id, "submitting", 1)


@pytest.mark.backends("sqlite", "postgres")
async def test_an_alert_is_taken_once_per_interval_across_processes(database_url: str) -> None:
    first, second = await open_storage(database_url), await open_storage(database_url)
    try:
        turns = await asyncio.gather(*(store.take_turn("operator_alert", 1000.0, 600) for store in (first, second)))
        assert sorted(turns) == [False, True]
        assert not await second.take_turn("operator_alert", 1599.0, 600)
        assert await second.take_turn("operator_alert", 1600.0, 600)
        assert await first.take_turn("other", 1600.0, 600), "each name has its own interval"
    finally:
        await first.close()
        await second.close()


async def test_a_lease_that_lapsed_between_two_polls_is_a_hand_off_not_a_take_over(storage: Storage) -> None:
    now = time.time()
    [task_id] = await _due_tasks(storage, 1, now)
    await storage.claim_due(now, 10, owner="a", lease=30)
    await storage.update_task(task_id, {"next_poll_at": now + 40})  # a polled it; next query after its lease
    ([claimed], taken_over) = await storage.claim_due(now + 41, 10, owner="b", lease=30)
    assert (claimed.id, claimed.lease_owner, taken_over) == (task_id, "b", 0)


async def test_a_callback_frees_the_task_for_any_process_at_once(storage: Storage) -> None:
    now = time.time()
    [task_id] = await _due_tasks(storage, 1, now)
    await storage.update_task(task_id, {"callback_token": "tok"})
    await storage.claim_due(now, 10, owner="a", lease=30)
    await storage.update_task(task_id, {"next_poll_at": now + 300})  # a polled it; safety net in 5 minutes
    assert await storage.make_due(task_id, "tok", now + 1) is True  # the callback reached process b
    ([claimed], taken_over) = await storage.claim_due(now + 1, 10, owner="b", lease=30)
    assert (claimed.id, claimed.lease_owner, taken_over) == (task_id, "b", 0), "no wait for a's lease"
