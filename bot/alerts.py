"""Operator alerts: problems only the operator can fix (bad API key, no credits) are posted to a channel.

Every occurrence is logged at ERROR where it happens; the channel gets at most one alert per interval, so an
outage does not flood it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import discord

from bot.evolink import ErrorKind, EvolinkError
from bot.text import clip
from storage import Storage

log = logging.getLogger(__name__)

ALERT_INTERVAL_SECONDS = 600.0

_WHAT_TO_DO = {
    ErrorKind.AUTH: "Evolink refused the API key. Members cannot start upscales until EVOLINK_API_KEY is fixed.",
    ErrorKind.NO_CREDITS: "The Evolink account is out of credits. Members cannot start upscales until it is "
                          "topped up.",
    ErrorKind.FORBIDDEN: "The Evolink API key may not use topaz-video-upscale. Check the key's permissions.",
}


class OperatorAlerts:
    def __init__(self, client: discord.Client, channel_id: int | None, *, storage: Storage | None = None,
                 interval: float = ALERT_INTERVAL_SECONDS, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        # Shared with the other processes of this bot, so the channel gets one alert per interval in all.
        self.storage = storage
        self.channel_id = channel_id
        self.interval = interval
        self.clock = clock
        self._last_sent: float | None = None
        self._pending: set[asyncio.Task[None]] = set()

    def upstream_error(self, error: EvolinkError) -> None:
        """Post an alert for an error the operator must fix, unless one went out within the interval."""
        if error.kind not in _WHAT_TO_DO or self.channel_id is None:
            return
        now = self.clock()
        if self._last_sent is not None and now - self._last_sent < self.interval:
            return  # this process alerted lately: no need to ask the database
        self._last_sent = now
        text = (f"⚠️ **upscale bot needs its operator**: {_WHAT_TO_DO[error.kind]}\n"
                f"Upstream said: {clip(str(error), 300)}")
        task = asyncio.create_task(self._post(text, now))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _post(self, text: str, now: float) -> None:
        assert self.channel_id is not None
        try:
            if self.storage is not None and not await self.storage.take_turn("operator_alert", now, self.interval):
                return  # another process alerted within the interval
        except Exception:
            log.exception("could not check the alert interval in the database; posting the alert anyway")
        await self.send(text)

    async def send(self, text: str) -> bool:
        """Post `text` to ALERT_CHANNEL_ID now, without the interval: for callers that decide themselves when an
        alert is due (the low-credits alert goes out once per crossing). False when not posted."""
        if self.channel_id is None:
            return False
        try:
            await self.client.get_partial_messageable(self.channel_id).send(
                text, allowed_mentions=discord.AllowedMentions.none())
        except (discord.HTTPException, OSError) as error:
            log.warning("could not post an operator alert to channel %s (%s)", self.channel_id, error)
            return False
        return True

    async def close(self) -> None:
        if self._pending:
            await asyncio.wait(self._pending, timeout=5)
