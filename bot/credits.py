"""The provider account's credit balance: read live for `/quota usage` (briefly cached, so a burst of commands
makes one request), and watched so that ALERT_CHANNEL_ID hears once when it falls below CREDITS_ALERT_BELOW.

The balance is the bot's whole Evolink account, shared by every server using the bot. "Once" holds across
processes and restarts: whether the alert is out is a flag in the database (storage.set_flag), turned on by the
one process that saw the crossing first, and off again (re-armed) only once the balance is seen back at or above
the threshold. Each reading carries the time it was taken, so a process acting on an older reading than one
already applied changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.alerts import OperatorAlerts
from bot.evolink import CreditBalance, ErrorKind, EvolinkClient, EvolinkError
from bot.text import figure
from storage import Storage

log = logging.getLogger(__name__)

FLAG = "credits_low"             # on while the low-credits alert is out (storage.set_flag)
CACHE_SECONDS = 60.0             # a reading this young is reused: /quota usage bursts make one request
FAILURE_CACHE_SECONDS = 10.0     # a failed read is remembered this long: bursts during an outage do not queue up
STOP_GRACE_SECONDS = 5.0         # close() lets an alert being posted finish, at most this long


@dataclass(frozen=True, slots=True)
class Reading:
    balance: CreditBalance
    at: float  # unix time it was read: orders readings across processes


def is_low(balance: CreditBalance, below: float) -> bool:
    return not balance.unlimited and balance.remaining is not None and balance.remaining < below


class CreditWatch:
    """Reads the balance for whoever asks (cached), and with CREDITS_ALERT_BELOW set checks it every
    CREDITS_CHECK_SECONDS and after each paid POST. Never raises out of its background work: errors are logged
    and the next check tries again."""

    def __init__(self, evolink: EvolinkClient, storage: Storage, alerts: OperatorAlerts, *,
                 alert_below: float | None, check_seconds: float, cache_seconds: float = CACHE_SECONDS,
                 failure_cache_seconds: float = FAILURE_CACHE_SECONDS, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.evolink = evolink
        self.storage = storage
        self.alerts = alerts
        self.alert_below = alert_below
        self.check_seconds = check_seconds
        self.cache_seconds = cache_seconds
        self.failure_cache_seconds = failure_cache_seconds
        self.clock = clock
        self.monotonic = monotonic
        self._reading: Reading | None = None
        self._read_at = 0.0                       # monotonic time of _reading
        self._failure: EvolinkError | None = None
        self._failed_at = 0.0
        self._fetch: asyncio.Task[Reading] | None = None  # the one read in flight, shared by every caller
        self._loop: asyncio.Task[None] | None = None
        self._after_submit: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    # --- reading ----------------------------------------------------------------------------------------------
    async def read(self, *, wait: float | None = None, max_age: float | None = None) -> Reading:
        """The balance, reused when younger than `max_age` (default: the cache time). Raises EvolinkError when
        it cannot be read, or not within `wait` seconds (the read goes on for the next caller). Without `max_age`
        a failure of the last few seconds is raised again instead of asking once more."""
        now = self.monotonic()
        age_limit = self.cache_seconds if max_age is None else max_age
        if self._reading is not None and now - self._read_at < age_limit:
            return self._reading
        if max_age is None and self._failure is not None and now - self._failed_at < self.failure_cache_seconds:
            raise self._failure
        fetch = self._fetch
        if fetch is None or fetch.done():
            fetch = self._fetch = asyncio.create_task(self._get(), name="credits-read")
            # Retrieved here, so a read nobody waits for any more never logs "exception was never retrieved".
            fetch.add_done_callback(lambda done: done.cancelled() or done.exception())
        try:
            return await asyncio.wait_for(asyncio.shield(fetch), wait)
        except TimeoutError:
            raise EvolinkError(ErrorKind.TIMEOUT, f"no credit balance within {wait:g} s") from None

    async def _get(self) -> Reading:
        try:
            balance = await self.evolink.get_balance()
        except EvolinkError as error:
            self._failure, self._failed_at = error, self.monotonic()
            raise
        reading = Reading(balance, self.clock())
        self._reading, self._read_at, self._failure = reading, self.monotonic(), None
        return reading

    # --- the low-credits alert --------------------------------------------------------------------------------
    async def check(self, *, fresh: bool = True) -> None:
        """Compare the balance with CREDITS_ALERT_BELOW; post the alert if this process saw the crossing first.
        `fresh` reads the balance now; otherwise a cached reading will do (after a POST: cheap)."""
        below = self.alert_below
        if below is None:
            return
        try:
            reading = await self.read(max_age=0.0 if fresh else None)
        except EvolinkError as error:
            log.log(logging.WARNING if fresh else logging.DEBUG,
                    "could not read the Evolink credit balance (%s); the next check tries again", error)
            return
        balance = reading.balance
        low = is_low(balance, below)
        if not await self.storage.set_flag(FLAG, low, reading.at):
            return  # no crossing, or another process saw it first
        if not low:
            log.info("Evolink credits are back at or above %s (%s): the low-credits alert is re-armed", figure(below),
                     "unlimited" if balance.unlimited else f"{figure(balance.remaining or 0.0)} left")
            return
        text = f"Evolink credits are low: {figure(balance.remaining or 0.0)} left (alert below {figure(below)})"
        log.warning("%s", text)
        await self.alerts.send(f"⚠️ **upscale bot**: {text}. This is the bot's whole Evolink account: top it up "
                               "before it runs out, or members cannot start upscales.")

    def after_submit(self) -> None:
        """A paid POST succeeded: the balance went down, so check it (from the cache when fresh)."""
        if self.alert_below is None or self._stopping.is_set():
            return
        if self._after_submit is not None and not self._after_submit.done():
            return  # one check at a time is enough: it reads the same balance
        self._after_submit = asyncio.create_task(self._check_logged(fresh=False), name="credits-after-submit")

    async def _check_logged(self, *, fresh: bool) -> None:
        try:
            await self.check(fresh=fresh)
        except Exception:
            log.exception("the Evolink credits check failed; the next check tries again")

    # --- the background check ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Check at once (an operator who starts the bot low hears it) and then every CREDITS_CHECK_SECONDS."""
        if self.alert_below is not None and self._loop is None:
            self._stopping.clear()
            self._loop = asyncio.create_task(self._run(), name="credits-check")

    async def _run(self) -> None:
        while not self._stopping.is_set():
            await self._check_logged(fresh=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.check_seconds)

    async def stop(self) -> None:
        """Stop checking: a read in flight is dropped, an alert being posted may finish (a few seconds at most)."""
        self._stopping.set()
        if self._fetch is not None:
            self._fetch.cancel()
        running = [task for task in (self._loop, self._after_submit) if task is not None and not task.done()]
        if running:
            _, late = await asyncio.wait(running, timeout=STOP_GRACE_SECONDS)
            for task in late:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
        self._loop = None
