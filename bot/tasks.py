"""The task service: write the row, make the one paid POST, and move tasks through their states."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable

from bot.evolink import ErrorKind, EvolinkClient, EvolinkError, TaskSnapshot
from bot.i18n import Phrase, _
from bot.lifecycle import Lease, next_status, poll_delay
from bot.messages import submission_error
from bot.metrics import Metrics
from bot.numbers import whole_number
from bot.quota import QuotaService
from bot.text import clip
from bot.validation import Refusal, VideoSource
from storage import UPSTREAM_FINAL_STATUSES, NewTask, Storage, TaskRecord

log = logging.getLogger(__name__)

# Errors that mean the operator must act (bad key, no credits), not the member.
OPERATOR_ERRORS = frozenset({ErrorKind.AUTH, ErrorKind.NO_CREDITS, ErrorKind.FORBIDDEN})
MAX_UNREADABLE_POLLS = 20


class SubmissionFailed(Refusal):
    """The paid POST did not create a task (the row is already `failed`): why, rendered in the member's language
    by render(); str() is the English."""

    def __init__(self, reason: Phrase, task: TaskRecord) -> None:
        super().__init__(reason.message, **reason.values)
        self.task = task


class TaskService:
    """Creates tasks and applies what upstream says about them, always through conditional updates."""

    def __init__(self, storage: Storage, evolink: EvolinkClient, quotas: QuotaService, *, poll_min: float,
                 poll_max: float, clock: Callable[[], float] = time.time, metrics: Metrics | None = None,
                 on_change: Callable[[], None] = lambda: None,
                 on_operator_error: Callable[[EvolinkError], None] = lambda error: None,
                 callback_url: str | None = None, callback_poll: float = 300.0, lease: Lease | None = None,
                 submit_timeout: float = 30.0) -> None:
        self.storage = storage
        self.evolink = evolink
        self.quotas = quotas
        self.poll_min = poll_min
        self.poll_max = poll_max
        self.clock = clock
        self.metrics = metrics or Metrics()
        self._on_change = on_change
        self._on_operator_error = on_operator_error
        self.callback_url = callback_url  # None: no callbacks, poll on the estimate alone
        self.callback_poll = callback_poll
        self.lease = lease or Lease()
        # How long a `submitting` row stays this process's: the POST's own timeout plus a lease. If the process
        # dies mid-POST, the row falls due after that and whoever claims it tells the member.
        self.submit_window = submit_timeout + self.lease.seconds

    async def submit(self, *, guild_id: int | None, channel_id: int, user_id: int, source: VideoSource,
                     scale: int, role_ids: tuple[int, ...] = ()) -> TaskRecord:
        """reserve() then send(): quota and row in one atomic step, then the one paid POST."""
        task = await self.reserve(guild_id=guild_id, channel_id=channel_id, user_id=user_id, source=source,
                                  scale=scale, role_ids=role_ids)
        return await self.send(task)

    async def reserve(self, *, guild_id: int | None, channel_id: int, user_id: int, source: VideoSource,
                      scale: int, role_ids: tuple[int, ...] = (), locale: str | None = None,
                      guild_locale: str | None = None) -> TaskRecord:
        """Check the quota and write the `submitting` row holding it, as one atomic step (QuotaExceeded if not)."""
        now = self.clock()
        return await self.quotas.reserve(NewTask(
            guild_id=guild_id, channel_id=channel_id, user_id=user_id, source_kind=source.kind,
            source_url=source.url, source_label=source.label, scale=scale, created_at=now,
            callback_token=secrets.token_urlsafe(18) if self.callback_url else None,
            lease_owner=self.lease.owner, lease_until=now + self.submit_window, next_poll_at=now + self.submit_window,
            locale=locale, guild_locale=guild_locale,
        ), role_ids)

    async def abandon(self, task: TaskRecord, reason: str) -> None:
        """Give back a reserved row whose member can no longer be answered (nothing was sent upstream)."""
        await self._close_unsent(task, "abandoned", reason)

    async def _close_unsent(self, task: TaskRecord, error_code: str, message: str) -> None:
        """End a `submitting` row that created nothing upstream: failed, quota released, nothing to deliver
        (the member was answered in the interaction, or cannot be)."""
        now = self.clock()
        await self.storage.update_task(task.id, {
            "status": "failed", "error_code": error_code, "error_message": clip(message, 300), "finished_at": now,
            "notified_at": now, "card_state": "final", "dm_state": "skipped", "channel_state": "skipped",
            "quota_state": "released", "next_poll_at": None,
        }, {"status": "submitting"})

    async def send(self, task: TaskRecord) -> TaskRecord:
        """The one paid POST for a reserved row; records the upstream id. Never retried.

        Raises SubmissionFailed (the row is then `failed` and its quota released).
        """
        # The row must still be ours and still `submitting`: if this process stalled past its window, a poller
        # may already have told the member it was interrupted, and then nothing may be sent.
        now = self.clock()
        if await self.storage.update_task(task.id, {"lease_until": now + self.submit_window,
                                                    "next_poll_at": now + self.submit_window},
                                          {"status": "submitting", "lease_owner": self.lease.owner}) is None:
            log.warning("task %s was taken over before its POST (this process stalled); nothing was sent", task.id)
            raise SubmissionFailed(Phrase(_("The bot was too busy to start this job, so nothing was sent or "
                                            "charged. Please start it again.")), task)
        try:
            snapshot = await self.evolink.submit(task.source_url, task.scale, self._callback_for(task))
        except EvolinkError as error:
            await self._fail_submission(task, error)
            raise SubmissionFailed(submission_error(error), task) from None
        except Exception as unexpected:  # a bug on our side must not leave the row and its quota stuck
            log.exception("task %s: unexpected error during the POST", task.id)
            error = EvolinkError(ErrorKind.UNEXPECTED, f"unexpected {type(unexpected).__name__} during the POST")
            await self._fail_submission(task, error)
            raise SubmissionFailed(submission_error(error), task) from None
        # If we are cancelled mid-POST (shutdown), the row stays `submitting` and is resolved at the next
        # start: we cannot know whether upstream created the task.
        now = self.clock()
        status = next_status("submitting", snapshot.status)
        if status == "submitting":
            status = "pending"
        changes = {
            "status": status,
            "upstream_id": snapshot.task_id,
            "upstream_status": snapshot.status,
            "progress": snapshot.progress or 0,
            "estimated_time": snapshot.estimated_time,
            "credits_reserved": snapshot.credits_reserved,
            "credits_charged": snapshot.credits_reserved or 0.0,
            "submitted_at": now,
            "lease_owner": None,  # the POST is over: any process may poll it now
            "lease_until": None,
            "next_poll_at": now + self._next_query_in(task, elapsed=0, estimated_time=snapshot.estimated_time,
                                                      progress=snapshot.progress or 0, failures=0),
        }
        self.metrics.task_submitted()  # the POST succeeded: upstream has the task (and bills it)
        fresh = await self.storage.update_task(task.id, changes, {"status": "submitting"})
        if fresh is None:
            log.error("task %s left 'submitting' while its POST ran; upstream id %s", task.id, snapshot.task_id)
            fresh = await self.storage.get_task(task.id)
            assert fresh is not None
        log.info("task %s submitted as %s (scale %s, %s credits reserved)", task.id, snapshot.task_id,
                 task.scale, snapshot.credits_reserved)
        self._on_change()
        return fresh

    def _callback_for(self, task: TaskRecord) -> str | None:
        """The URL Evolink calls when this task ends; its token is what makes a callback count."""
        if not (self.callback_url and task.callback_token):
            return None
        return f"{self.callback_url}/{task.id}/{task.callback_token}"

    def _next_query_in(self, task: TaskRecord, *, elapsed: float, estimated_time: float | None, progress: int,
                       failures: int) -> float:
        """Seconds to the next query: on the estimate, or, when a callback will say the task ended, a slow
        safety net (CALLBACK_POLL_SECONDS) for callbacks that never arrive."""
        delay = poll_delay(elapsed=elapsed, estimated_time=estimated_time, progress=progress, failures=failures,
                           minimum=self.poll_min, maximum=self.poll_max)
        if failures == 0 and self._callback_for(task):
            return max(delay, self.callback_poll)
        return delay

    async def hint(self, task_id: int, token: str) -> bool | None:
        """A callback named this task: query it now. The callback's body is never trusted (it is unsigned):
        the poller's own query decides. None if the task or token is unknown; else whether it was made due."""
        made_due = await self.storage.make_due(task_id, token, self.clock())
        if made_due:
            self._on_change()
        return made_due

    async def _fail_submission(self, task: TaskRecord, error: EvolinkError) -> None:
        note = " (the provider may have created it: the POST is never retried)" \
            if error.kind in (ErrorKind.TIMEOUT, ErrorKind.CONNECTION) else ""
        log.log(self._level_for(error), "task %s: submission failed: %s%s", task.id, error, note)
        # The member is told in the interaction reply, so nothing is left to deliver.
        await self._close_unsent(task, f"submit_{error.kind.value}", str(error))

    def _level_for(self, error: EvolinkError) -> int:
        """ERROR, and an operator alert, for what only the operator can fix; WARNING for the rest."""
        if error.kind in OPERATOR_ERRORS:
            self._on_operator_error(error)
            return logging.ERROR
        return logging.WARNING

    async def attach_card(self, task: TaskRecord, message_id: int) -> TaskRecord | None:
        """Remember the task card (as `task` shows it) so progress can be shown on it, also after a restart.

        Returns the row as it is now: the poller may have finished the task while the card was being sent.
        """
        return await self.storage.update_task(task.id, {
            "card_message_id": message_id, "card_edited_at": self.clock(),
            "card_progress": task.progress, "card_status": task.status,
        })

    async def resolve_interrupted_submissions(self) -> list[TaskRecord]:
        """Every row left in `submitting` by a crash, at the start of the only process using the database
        (SQLite). With several processes (PostgreSQL) the poller does it row by row once a row's lease ran out."""
        resolved = [task for task in await self.storage.tasks_with_status("submitting")
                    if await self.mark_interrupted(task) is not None]
        if resolved:
            self._on_change()
        return resolved

    async def mark_interrupted(self, task: TaskRecord) -> TaskRecord | None:
        """A `submitting` row whose process died mid-POST: failed, quota released, the member to be told.

        The POST may or may not have reached upstream; we cannot find out (there is no list endpoint), and
        retrying it could bill twice, so the member is asked to start it again.
        """
        moved = await self._end(task, "failed", "bot_restarted", "interrupted before the provider confirmed the job",
                                quota_state="released")
        if moved is not None:
            log.warning("task %s was interrupted while submitting; marked failed, member will be told", task.id)
        return moved

    async def apply_snapshot(self, task: TaskRecord, snapshot: TaskSnapshot) -> TaskRecord | None:
        """Record a successful query. Returns the updated row, or None if someone else moved it first."""
        now = self.clock()
        status = next_status(task.status, snapshot.status)
        changes: dict[str, object] = {
            "status": status,
            "upstream_status": snapshot.status,
            "poll_failures": 0,
        }
        if snapshot.progress is not None:
            changes["progress"] = 100 if status == "completed" else snapshot.progress
        if snapshot.estimated_time is not None:
            changes["estimated_time"] = snapshot.estimated_time
        if status in UPSTREAM_FINAL_STATUSES:
            changes.update({
                "finished_at": now,
                "result_url": snapshot.result_url if status == "completed" else None,
                "error_code": snapshot.error_code,
                "error_message": snapshot.error_message,
                "credits_used": snapshot.credits_used,
                "next_poll_at": now,  # deliver at once
            })
            if status == "completed":
                if snapshot.credits_used is not None:  # settle to the final charge
                    changes["credits_charged"] = snapshot.credits_used
            else:  # the provider refunds failed and cancelled tasks: give the job and credits back
                changes["quota_state"] = "released"
        else:
            if not snapshot.known and task.upstream_status != snapshot.status:
                log.warning("task %s: unknown upstream status %r; still polling", task.id, snapshot.status)
            unknown_failures = 0 if snapshot.known else task.poll_failures + 1
            if not snapshot.known:
                changes["poll_failures"] = unknown_failures
            elapsed = now - (task.submitted_at or task.created_at)
            changes["next_poll_at"] = now + self._next_query_in(
                task, elapsed=elapsed, estimated_time=snapshot.estimated_time or task.estimated_time,
                progress=int(changes.get("progress", task.progress)), failures=unknown_failures)
            # A callback that arrived while this query ran made the task due again: keep it due.
            return await self.storage.update_task(task.id, changes,
                                                  {"status": task.status, "next_poll_at": task.next_poll_at})
        updated = await self.storage.update_task(task.id, changes, {"status": task.status})
        if updated is not None:
            self.metrics.task_finished(status)
        return updated

    async def mark_expired(self, task: TaskRecord) -> TaskRecord | None:
        """Upstream answered 404 for the task: it is gone; tell the member."""
        return await self._end(task, "expired", "expired", "Task not found or expired")

    async def _end(self, task: TaskRecord, status: str, error_code: str, message: str,
                   **extra: object) -> TaskRecord | None:
        """Move a task to a final status and make it due at once, so the poller tells the member."""
        now = self.clock()
        updated = await self.storage.update_task(task.id, {
            "status": status, "error_code": error_code, "error_message": clip(message, 300), "finished_at": now,
            "next_poll_at": now, **extra,
        }, {"status": task.status})
        if updated is not None and task.status != "submitting":  # counted: tasks that were running upstream
            self.metrics.task_finished(status)
        return updated

    async def record_poll_error(self, task: TaskRecord, error: EvolinkError) -> TaskRecord | None:
        """Back off after a failed query; the task stays where it was.

        Two cases end the task instead, because asking again cannot help: upstream calls the id malformed
        (400), or its answers stayed unreadable for MAX_UNREADABLE_POLLS queries in a row.
        """
        failures = task.poll_failures + 1
        unreadable = error.kind in (ErrorKind.MALFORMED, ErrorKind.UNEXPECTED) and failures >= MAX_UNREADABLE_POLLS
        if error.kind == ErrorKind.BAD_REQUEST or unreadable:
            log.error("task %s: giving up after query error %s", task.id, error)
            return await self._end(task, "failed", "upstream_unreadable", str(error), poll_failures=failures)
        delay = poll_delay(elapsed=0, estimated_time=None, progress=0, failures=failures,
                           minimum=self.poll_min, maximum=self.poll_max)
        if error.retry_after is not None:
            delay = max(delay, error.retry_after)
        log.log(self._level_for(error), "task %s: query failed (%s); retrying in %.1f s", task.id, error, delay)
        await self.storage.update_task(task.id, {"poll_failures": failures, "next_poll_at": self.clock() + delay},
                                       {"status": task.status})
        return None

    async def user_tasks(self, user_id: int, limit: int = 10, prefix: str = "") -> list[TaskRecord]:
        return await self.storage.user_tasks(user_id, limit, prefix)

    async def find_user_task(self, user_id: int, ident: str) -> TaskRecord | None:
        """A member's task by upstream id or by our number (`12` or `#12`); never another member's."""
        ident = ident.strip()
        task: TaskRecord | None = None
        number = whole_number(ident.removeprefix("#"))
        if number is not None:
            task = await self.storage.get_task(number)
        if task is None and ident:
            task = await self.storage.get_task_by_upstream_id(ident[:200])
        if task is None or task.user_id != user_id:
            return None
        return task
