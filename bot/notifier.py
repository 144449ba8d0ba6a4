"""Tell the member how a task ended, exactly once per channel post and per DM, and keep the card current.

Every step is recorded with a conditional update right after it succeeds, so a restart resumes at the first
step not recorded. Each send carries a nonce derived from the task and the kind of message: if the process
dies after Discord created the message but before we recorded it, the resend on restart returns the same
message instead of a second one (within Discord's nonce window of a few minutes).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from bot.lifecycle import Lease, delivery_delay
from bot.messages import RESULT_LINK_MAX, Outgoing, link_too_long, minimal_outcome, outcome_message, task_card
from bot.messenger import UNKNOWN_MESSAGE, DeliveryError, Messenger
from bot.metrics import Metrics
from storage import Storage, TaskRecord

log = logging.getLogger(__name__)

MAX_DELIVERY_FAILURES = 12
LIVE_CARD = (None, "replaced")  # card_state values of a card that is still edited


def nonce_for(task: TaskRecord, kind: str) -> str:
    """At most 25 characters (Discord's limit), the kind always kept; the creation time keeps ids from a
    recreated database from colliding."""
    return f"up{task.id}.{int(task.created_at)}"[: 25 - len(kind)] + kind


class Notifier:
    def __init__(self, storage: Storage, messenger: Messenger, *, card_edit_seconds: float,
                 metrics: Metrics | None = None,
                 retry_min: float, retry_max: float, clock: Callable[[], float] = time.time,
                 lease: Lease | None = None) -> None:
        self.storage = storage
        self.lease = lease or Lease()
        self.messenger = messenger
        self.card_edit_seconds = card_edit_seconds
        self.retry_min = retry_min
        self.retry_max = retry_max
        self.clock = clock
        self.metrics = metrics or Metrics()
        # Called with the task after the member has been told (tests and metrics watch this).
        self.listeners: list[Callable[[TaskRecord], None]] = []

    async def deliver(self, task: TaskRecord) -> bool:
        """DM, then the channel post (which says if the DM was refused), then the last card edit.

        Returns True when the member has been told; False when Discord failed and a retry is scheduled.
        """
        if task.notified_at is not None:
            return True
        if link_too_long(task) and task.dm_state is None:
            log.warning("task %s: the result link is %d characters, over the %d Discord can show; the member is "
                        "told to ask the operator (the link is in the database: tasks.result_url of id %s)",
                        task.id, len(task.result_url or ""), RESULT_LINK_MAX, task.id)
        try:
            if task.dm_state is None:
                if not await self._still_ours(task):
                    return False
                task.dm_state, task.dm_message_id = await self._send_dm(task)
                await self.storage.update_task(
                    task.id, {"dm_state": task.dm_state, "dm_message_id": task.dm_message_id}, {"dm_state": None})
            if task.channel_state is None and task.guild_id is None:
                # Started in a DM: the DM is the channel, one message is enough.
                task.channel_state = "skipped"
                await self.storage.update_task(task.id, {"channel_state": "skipped"}, {"channel_state": None})
            if task.channel_state is None:
                if not await self._still_ours(task):
                    return False
                task.channel_state, task.channel_message_id = await self._post_in_channel(task)
                await self.storage.update_task(
                    task.id, {"channel_state": task.channel_state, "channel_message_id": task.channel_message_id},
                    {"channel_state": None})
        except DeliveryError as error:
            return await self._retry_later(task, error)
        told_at = self.clock()  # the DM and the channel post are out; the card edit below tells nothing new
        if task.channel_state == "gone" and task.dm_state != "sent":
            log.error("task %s: could not tell user %s at all (channel gone, DM %s)",
                      task.id, task.user_id, task.dm_state)
        await self._final_card(task)
        self.messenger.forget(task.id)
        await self.storage.update_task(task.id, {"notified_at": self.clock(), "next_poll_at": None},
                                       {"notified_at": None})
        log.info("task %s: member told (%s; DM %s, channel %s)", task.id, task.status, task.dm_state,
                 task.channel_state)
        if task.finished_at is not None:  # from the bot seeing the end upstream to the member being told
            self.metrics.member_told(told_at - task.finished_at)
        for listener in self.listeners:
            listener(task)
        return True

    async def _still_ours(self, task: TaskRecord) -> bool:
        """Renew this process's lease right before a send: a process that stalled past its lease must not send
        what the process that took the task over is sending (the nonce would catch it, but only for minutes)."""
        if await self.storage.renew_lease(task.id, self.lease.owner, self.clock() + self.lease.seconds):
            return True
        log.info("task %s: another process took it over; leaving the delivery to it", task.id)
        return False

    async def result_dms(self, user_id: int) -> bool:
        """Whether the member gets results by DM as well as in the channel (on unless they turned it off)."""
        return await self.storage.result_dms(user_id)

    async def set_result_dms(self, user_id: int, enabled: bool) -> None:
        await self.storage.set_result_dms(user_id, enabled)

    async def _send_dm(self, task: TaskRecord) -> tuple[str, int | None]:
        # A job started in a DM is answered there whatever the setting: the DM is its channel.
        if task.guild_id is not None and not await self.storage.result_dms(task.user_id):
            log.info("task %s: user %s turned result DMs off", task.id, task.user_id)
            return "off", None

        async def send(message: Outgoing, nonce: str) -> int:
            return await self.messenger.send_dm(task.user_id, message.content, embed=message.embed, nonce=nonce,
                                                button_url=message.button_url, button_label=message.button_label)

        try:
            return "sent", await self._send_outcome(task, "d", mention=False, send=send)
        except DeliveryError as error:
            if error.kind == "dm_closed":
                log.info("task %s: user %s does not accept DMs", task.id, task.user_id)
                return "refused", None
            if error.kind == "gone" or task.delivery_failures >= MAX_DELIVERY_FAILURES:
                log.warning("task %s: giving up on the DM (%s)", task.id, error)
                return "failed", None
            raise

    async def _post_in_channel(self, task: TaskRecord) -> tuple[str, int | None]:
        async def send(message: Outgoing, nonce: str) -> int:
            return await self.messenger.send_channel(task.channel_id, message.content, embed=message.embed,
                                                     nonce=nonce, mention_user_id=task.user_id,
                                                     button_url=message.button_url,
                                                     button_label=message.button_label)

        try:
            return "sent", await self._send_outcome(task, "c", mention=True, send=send)
        except DeliveryError as error:
            if error.kind != "retry" or task.delivery_failures >= MAX_DELIVERY_FAILURES:
                log.warning("task %s: cannot post in channel %s (%s)", task.id, task.channel_id, error)
                return "gone", None
            raise

    async def _send_outcome(self, task: TaskRecord, kind: str, *, mention: bool,
                            send: Callable[[Outgoing, str], Awaitable[int]]) -> int:
        """The full message; if Discord refuses it as malformed (400), a minimal one with its own nonce."""
        # The channel post reads in the server's language, the DM in the member's.
        locale = (task.guild_locale or task.locale) if mention else task.locale
        full = outcome_message(task, mention=mention, dm_refused=mention and task.dm_state == "refused",
                               locale=locale)
        try:
            return await send(full, nonce_for(task, kind))
        except DeliveryError as error:
            if error.status != 400:
                raise
            log.error("task %s: Discord refused the %s message (%s); sending a minimal one instead",
                      task.id, "DM" if kind == "d" else "channel", error)
        return await send(minimal_outcome(task, mention=mention, locale=locale), nonce_for(task, kind.upper()))

    async def _retry_later(self, task: TaskRecord, error: DeliveryError) -> bool:
        failures = task.delivery_failures + 1
        delay = delivery_delay(failures, minimum=self.retry_min, maximum=self.retry_max)
        log.warning("task %s: delivery failed (%s); retrying in %.1f s", task.id, error, delay)
        await self.storage.update_task(task.id, {"delivery_failures": failures,
                                                 "next_poll_at": self.clock() + delay}, {"notified_at": None})
        return False

    async def _final_card(self, task: TaskRecord) -> None:
        """Best effort: the result is already in the channel and the DM, so a failed card edit is only logged."""
        if task.card_message_id is None or task.card_state not in LIVE_CARD:
            return
        try:
            await self.messenger.edit_card(task.id, task.channel_id, task.card_message_id, task_card(task, task.locale))
        except DeliveryError as error:
            log.info("task %s: final card edit failed (%s)", task.id, error)
        await self.storage.update_task(task.id, {"card_state": "final", "card_edited_at": self.clock(),
                                                 "card_progress": task.progress}, {"card_state": task.card_state})

    async def update_card(self, task: TaskRecord) -> None:
        """Show progress on the card, at most once every `card_edit_seconds` and only when it changed.

        A card deleted while the job runs is replaced by a new one, once; if that goes too, progress is no
        longer shown (the result is still posted and sent by DM).
        """
        if task.card_message_id is None or task.card_state not in LIVE_CARD:
            return
        now = self.clock()
        if task.card_edited_at is not None and now - task.card_edited_at < self.card_edit_seconds:
            return
        if (task.card_progress, task.card_status) == (task.progress, task.status):
            return
        changes: dict[str, object] = {"card_edited_at": now, "card_progress": task.progress,
                                      "card_status": task.status}
        try:
            await self.messenger.edit_card(task.id, task.channel_id, task.card_message_id, task_card(task, task.locale))
        except DeliveryError as error:
            if error.kind != "gone":
                return  # try again at the next change
            if error.code == UNKNOWN_MESSAGE and task.card_state is None:
                self.messenger.forget(task.id)  # the interaction's message is gone; post our own
                try:
                    changes["card_message_id"] = await self.messenger.post_card(
                        task.channel_id, task_card(task, task.locale), nonce=nonce_for(task, "k"))
                    changes["card_state"] = "replaced"
                    log.info("task %s: task card was deleted; posted a new one", task.id)
                except DeliveryError as repost_error:
                    if repost_error.kind != "gone":
                        return
                    changes = {"card_state": "gone"}
            else:
                log.info("task %s: task card is gone (%s); progress is no longer shown", task.id, error)
                changes = {"card_state": "gone"}
        await self.storage.update_task(task.id, changes, {"card_state": task.card_state})
