"""TaskPoller: one background loop over the tasks that are due, driven by `next_poll_at` in the database.

Because the schedule lives in the database, tasks in flight when the process stopped are picked up on the
next start. Work on each task runs under a semaphore and inside its own try/except, so one bad task never
stops the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from bot.evolink import ErrorKind, EvolinkClient, EvolinkError
from bot.lifecycle import Lease
from bot.metrics import Metrics
from bot.notifier import Notifier
from bot.tasks import TaskService
from storage import ACTIVE_STATUSES, Storage, TaskRecord

log = logging.getLogger(__name__)


class TaskPoller:
    def __init__(self, storage: Storage, service: TaskService, notifier: Notifier, evolink: EvolinkClient, *,
                 concurrency: int, idle_wait: float, slack: float = 0.0, metrics: Metrics | None = None,
                 clock: Callable[[], float] = time.time, lease: Lease | None = None) -> None:
        self.storage = storage
        self.service = service
        self.notifier = notifier
        self.evolink = evolink
        self.concurrency = concurrency
        self.idle_wait = idle_wait
        # Sleep this much past the next due moment, so tasks falling due close together are taken in one scan
        # (late, never early: a Retry-After is never undercut). Wakes from new work are not delayed.
        self.slack = slack
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.last_run_at: float | None = None  # when a scan last ended without an error (/healthz: poller alive?)
        self.lease = lease or Lease()
        self._wake = asyncio.Event()
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False

    def wake(self) -> None:
        """Look for due work now (a task was submitted, or a slot was freed)."""
        self._wake.set()

    def start(self) -> None:
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._run(), name="task-poller")

    async def stop(self, grace: float = 10.0) -> None:
        """Stop taking work, let in-flight steps finish for up to `grace` seconds, then cancel the rest.

        Whatever is cut short is still due in the database and is redone on the next start.
        """
        # A flag, not only cancel(): in Python 3.11 asyncio.wait_for can swallow a cancel that lands just as
        # the awaited event fires, which would leave the loop running forever.
        self._stopping = True
        self.wake()
        if self._loop_task is not None:
            await asyncio.wait({self._loop_task}, timeout=grace)
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        pending = list(self._in_flight.values())
        if pending:
            await asyncio.wait(pending, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                timeout = await self._tick()
                self.last_run_at = self.clock()
            except Exception:
                log.exception("poller: scanning for due tasks failed; trying again shortly")
                timeout = self.idle_wait
            if self._stopping:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            self._wake.clear()

    async def _tick(self) -> float:
        """Start work on due tasks; return how long to sleep before looking again."""
        now = self.clock()
        free = self.concurrency - len(self._in_flight)
        if free <= 0:
            return self.idle_wait  # every slot is busy: finishing tasks wake us
        due, taken_over = await self.storage.claim_due(now, free, owner=self.lease.owner, lease=self.lease.seconds,
                                                       exclude=tuple(self._in_flight))
        if taken_over:
            log.info("took over %d task(s) from a process whose lease ran out", taken_over)
            self.metrics.lease_taken_over(taken_over)
        for record in due:
            if record.next_poll_at is not None:
                self.metrics.poll_lagged(now - record.next_poll_at)
            self._in_flight[record.id] = asyncio.create_task(self._guarded(record), name=f"task-{record.id}")
        if len(due) == free:
            return self.idle_wait  # more may be due: finishing tasks wake us to take them
        next_at = await self.storage.next_due_at(owner=self.lease.owner, exclude=tuple(self._in_flight))
        if next_at is None:
            return self.idle_wait  # nothing scheduled: a new task or a finishing one wakes us
        if next_at <= now:
            return 0.05  # due work found no free slot this time (or is being picked up): look again soon
        return min(next_at - now + self.slack, self.idle_wait)

    async def _interrupted(self, record: TaskRecord) -> None:
        """A `submitting` row claimed: its window ran out, so the process making its POST died or stalled (claims
        never take a row whose POST may still be sent). Tell the member; the POST is never repeated."""
        updated = await self.service.mark_interrupted(record)
        if updated is not None:
            await self.notifier.deliver(updated)

    async def _guarded(self, record: TaskRecord) -> None:
        try:
            await self.process(record)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("task %s: unexpected error while polling; will retry", record.id)
            with contextlib.suppress(Exception):
                await self.storage.update_task(record.id, {"next_poll_at": self.clock() + self.idle_wait})
        finally:
            self._in_flight.pop(record.id, None)
            # Scan again once half the slots are free (or all work is done), not after every single task.
            if len(self._in_flight) <= self.concurrency // 2:
                self.wake()

    async def process(self, record: TaskRecord) -> None:
        """One step for one task: deliver it if it has ended, else query upstream once."""
        if record.final:
            await self.notifier.deliver(record)
            return
        if record.status == "submitting":
            await self._interrupted(record)
            return
        if record.status not in ACTIVE_STATUSES or not record.upstream_id:
            log.error("task %s: status %r with upstream id %r should not be scheduled; unscheduling",
                      record.id, record.status, record.upstream_id)
            await self.storage.update_task(record.id, {"next_poll_at": None}, {"status": record.status})
            return
        try:
            snapshot = await self.evolink.get_task(record.upstream_id)
        except EvolinkError as error:
            if error.kind == ErrorKind.NOT_FOUND:
                updated = await self.service.mark_expired(record)
            else:
                updated = await self.service.record_poll_error(record, error)
            if updated is not None and updated.final:
                await self.notifier.deliver(updated)
            return
        updated = await self.service.apply_snapshot(record, snapshot)
        if updated is None:
            return
        if updated.final:
            await self.notifier.deliver(updated)
        else:
            await self.notifier.update_card(updated)
