"""Task callbacks for the fake Evolink, as /work/shared/evolink-*.md document them.

When a task with a `callback_url` reaches a final state (completed, failed, cancelled/canceled), the fake POSTs
the task query JSON for it to that URL: 10 s timeout, and on a non-2xx answer or a connection failure up to
3 retries after 1 s, 2 s, 4 s. Unsigned.

Everything runs on loopback, yet Evolink refuses internal callback hosts, so the bot under test is given a
public-looking https URL and `callback_routes` maps its longest matching prefix to the bot's local listener
(standing in for DNS and the operator's TLS-terminating proxy). An unrouted URL fails like an unreachable
host: the fake never reaches for the real network.

Tasks that finish on their own (auto_complete_after, BenchEvolink durations) are advanced by one loop timer
over a heap of completion moments, so a callback fires even if nobody queries the task.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp

from bot.validation import is_public_host
from storage import ACTIVE_STATUSES, UPSTREAM_FINAL_STATUSES

if TYPE_CHECKING:
    from sandbox.fake_evolink import FakeTask

MAX_CALLBACK_URL = 2048
FINAL_STATUSES = frozenset({*UPSTREAM_FINAL_STATUSES, "canceled"})  # the provider spells it both ways
_JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass
class RecordedCallback:
    """One delivery attempt of a task's callback, recorded when it ended."""

    task_id: str
    url: str  # the public callback_url the task was submitted with
    attempt: int  # 1 for the first try, up to 1 + len(callback_retry_delays)
    status: int | None  # the receiver's HTTP status; None when the connection failed or timed out
    error: str | None
    at: float  # time.monotonic() when the attempt started

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


# --- the submit rule ---------------------------------------------------------------------------------------
def callback_url_problem(url: object) -> str | None:
    """The documented callback_url rules; returns the 400 message, or None when the URL is acceptable."""
    if not isinstance(url, str) or not url.startswith("https://") or len(url) > MAX_CALLBACK_URL:
        return "callback_url must be an https URL of at most 2048 characters"
    try:
        host = urlsplit(url).hostname
    except ValueError:
        host = None
    if not host:
        return "callback_url is not a valid URL"
    if is_internal_host(host):
        return "callback_url must not point to an internal address"
    return None


def is_internal_host(host: str) -> bool:
    """Not a public name or address (localhost, private, loopback, link-local, numeric disguises): the bot's
    own check, so the fake refuses exactly what the bot's settings check promises Evolink would refuse."""
    return not is_public_host(host)


# --- completion timers -------------------------------------------------------------------------------------
class CompletionTimers:
    """(monotonic moment, task id) entries in one heap behind one loop timer: cheap for 10,000 tasks."""

    def __init__(self, on_due: Callable[[list[str]], None]) -> None:
        self._on_due = on_due
        self._heap: list[tuple[float, str]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._handle_at = math.inf

    def __len__(self) -> int:
        return len(self._heap)

    def task_ids(self) -> list[str]:
        return [task_id for _, task_id in self._heap]

    def add(self, moment: float, task_id: str) -> None:
        heapq.heappush(self._heap, (moment, task_id))
        if self._loop is not None and moment < self._handle_at:
            self._arm()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Entries added before start() (preloaded tasks) wait for it."""
        self._loop = loop
        self._arm()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle, self._handle_at, self._loop = None, math.inf, None
        self._heap.clear()

    def _arm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle, self._handle_at = None, math.inf
        if self._heap and self._loop is not None:
            self._handle_at = self._heap[0][0]
            delay = self._handle_at - time.monotonic()  # the loop's clock need not be time.monotonic()
            self._handle = self._loop.call_at(self._loop.time() + delay, self._fire)

    def _fire(self) -> None:
        self._handle, self._handle_at = None, math.inf
        now = time.monotonic()
        due: list[str] = []
        while self._heap and self._heap[0][0] <= now:
            due.append(heapq.heappop(self._heap)[1])
        try:
            if due:
                self._on_due(due)
        finally:
            self._arm()


# --- delivery ----------------------------------------------------------------------------------------------
class CallbackSender:
    """Delivers callbacks over one aiohttp session (made in start(), closed in close()) and records attempts."""

    def __init__(self, routes: Mapping[str, str] | None, retry_delays: tuple[float, ...], timeout: float,
                 on_attempt: Callable[[], None]) -> None:
        self.routes: dict[str, str] = dict(routes or {})
        self.retry_delays = tuple(retry_delays)
        self.timeout = timeout
        self.records: list[RecordedCallback] = []
        self.delivered = 0
        self.in_flight = 0  # deliveries started and not yet ended (retries included)
        self.drop = 0  # the next `drop` attempts fail as if the connection failed
        self._on_attempt = on_attempt
        self._session: aiohttp.ClientSession | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._deferred: list[tuple[str, str, bytes]] = []  # fired while the fake was not running

    @property
    def pending(self) -> int:
        return self.in_flight + len(self._deferred)

    def route(self, url: str) -> str | None:
        """The local URL for a public one: its longest matching route prefix replaced; None if none matches."""
        best = ""
        for public in self.routes:
            rest = url[len(public):]
            if (len(public) > len(best) and url.startswith(public)
                    and (not rest or public.endswith("/") or rest[0] in "/?#")):
                best = public
        return self.routes[best] + url[len(best):] if best else None

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout),
                                                  cookie_jar=aiohttp.DummyCookieJar())
        deferred, self._deferred = self._deferred, []
        for item in deferred:
            self.send(*item)

    async def close(self) -> None:
        """Cancel every delivery (waiting retries included) and close the session; idempotent."""
        running = list(self._running)
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        self._running.clear()
        self._deferred.clear()
        self.in_flight = 0
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def send(self, task_id: str, url: str, body: bytes) -> None:
        """Start delivering one callback (attempts and retries run in their own task)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if self._session is None or loop is None:
            self._deferred.append((task_id, url, body))
            return
        self.in_flight += 1
        task = loop.create_task(self._deliver(task_id, url, body), name=f"fake-evolink-callback:{task_id}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def post(self, url: str, body: bytes) -> int:
        """One POST; returns the status (connection errors and timeouts raise)."""
        if self._session is None:
            raise RuntimeError("the fake Evolink is not running: start() it first")
        async with self._session.post(url, data=body, headers=_JSON_HEADERS) as response:
            await response.read()
            return response.status

    async def _deliver(self, task_id: str, url: str, body: bytes) -> None:
        try:
            for attempt in range(1, len(self.retry_delays) + 2):
                if attempt > 1:
                    await asyncio.sleep(self.retry_delays[attempt - 2])
                if await self._attempt(task_id, url, body, attempt):
                    return
        finally:
            self.in_flight -= 1
            self._on_attempt()

    async def _attempt(self, task_id: str, url: str, body: bytes, attempt: int) -> bool:
        record = RecordedCallback(task_id, url, attempt, None, None, time.monotonic())
        target = self.route(url)
        if self.drop > 0:
            self.drop -= 1
            record.error = "connection failed (dropped by the fake)"
        elif target is None:
            record.error = "connection failed: no callback route for this URL"
        else:
            try:
                record.status = await self.post(target, body)
            except (aiohttp.ClientError, OSError, ValueError) as error:  # TimeoutError is an OSError
                record.error = f"{type(error).__name__}: {error}"[:300]
        if record.delivered:
            self.delivered += 1
        self.records.append(record)
        self._on_attempt()
        return record.delivered


# --- the FakeEvolink side ----------------------------------------------------------------------------------
class CallbackMixin:
    """The callback half of FakeEvolink (which provides tasks, _notify, _render, _auto_advance, ...)."""

    tasks: dict[str, FakeTask]
    auto_complete_after: float | None
    _notify: Callable[[], None]
    _auto_advance: Callable[[FakeTask], None]
    _render: Callable[..., dict[str, Any]]

    def _init_callbacks(self, routes: Mapping[str, str] | None, retry_delays: tuple[float, ...],
                        timeout: float) -> None:
        self.callbacks_enabled = True  # False: final transitions send (and record) nothing, a lost callback
        self._sender = CallbackSender(routes, retry_delays, timeout, self._notify)
        self.callbacks: list[RecordedCallback] = self._sender.records
        self._timers = CompletionTimers(self._timers_due)

    @property
    def callback_routes(self) -> dict[str, str]:
        return self._sender.routes

    @property
    def callbacks_delivered(self) -> int:
        """Attempts answered 2xx."""
        return self._sender.delivered

    @property
    def pending_callbacks(self) -> int:
        """Callbacks still to come: armed completion timers of tasks still running on their own, plus
        deliveries not yet ended (retries included). 0 once closed."""
        armed = {task_id for task_id in self._timers.task_ids()
                 if (task := self.tasks.get(task_id)) is not None and self._completion_moment(task) is not None}
        return len(armed) + self._sender.pending

    @property
    def callbacks_in_flight(self) -> int:
        """Deliveries started and not yet ended, retries included; 0 means every started one is settled."""
        return self._sender.in_flight

    def route_callbacks(self, public_prefix: str, local_prefix: str) -> None:
        self._sender.routes[public_prefix] = local_prefix

    def callbacks_for(self, task_id: str) -> list[RecordedCallback]:
        return [record for record in self.callbacks if record.task_id == task_id]

    def drop_callbacks(self, times: int) -> None:
        """The next `times` attempts fail as if the connection failed (nothing is sent)."""
        self._sender.drop += times

    async def send_callback(self, task_id: str, body: dict[str, Any] | None = None, url: str | None = None) -> int:
        """POST `body` (default: the task's query JSON) once to the task's routed callback URL, or to `url`
        (routed too when a route matches); returns the status. Not recorded, never retried: a forged hint."""
        task = self.tasks.get(task_id)
        public = url if url is not None else (task.callback_url if task is not None else None)
        if public is None:
            raise ValueError(f"task {task_id!r} has no callback_url: pass url=")
        if body is None and task is None:
            raise ValueError(f"unknown task {task_id!r}: pass body=")
        data = json.dumps(body).encode() if body is not None else self._callback_body(task)  # type: ignore[arg-type]
        target = self._sender.route(public) or public
        return await self._sender.post(target, data)

    # --- final transitions and timers --------------------------------------------------------------------
    def _callback_body(self, task: FakeTask) -> bytes:
        """The task query JSON, as a callback carries it (a fault on the current request never alters it)."""
        return json.dumps(self._render(task, advance=False, faults=False)).encode()

    def _task_changed(self, task: FakeTask) -> None:
        self._settled(task)
        self._notify()

    def _settled(self, task: FakeTask) -> None:
        """Called after every state change: fires the callback once per transition into a final state."""
        if task.status not in FINAL_STATUSES:
            task.callback_status = None
            return
        if task.callback_url is None or task.callback_status == task.status:
            return
        task.callback_status = task.status
        if self.callbacks_enabled:
            self._sender.send(task.id, task.callback_url, self._callback_body(task))

    def _completion_moment(self, task: FakeTask) -> float | None:
        """The monotonic moment the task completes by itself, or None (never, or a test drives it)."""
        after = self.auto_complete_after
        if after is None or task.manual or task.status not in ACTIVE_STATUSES:
            return None
        return task.created_at + after

    def _on_created(self, task: FakeTask) -> None:
        """A task was submitted or preloaded: arm its completion timer when a callback will report it."""
        if task.callback_url is not None:
            moment = self._completion_moment(task)
            if moment is not None:
                self._timers.add(moment, task.id)

    def _timers_due(self, task_ids: list[str]) -> None:
        for task_id in task_ids:
            task = self.tasks.get(task_id)
            if task is None or task.manual or task.status not in ACTIVE_STATUSES:
                continue  # a test took it over, or a query already advanced it (and fired)
            self._auto_advance(task)
            if task.status in ACTIVE_STATUSES:  # the timer went off a hair early
                moment = self._completion_moment(task)
                if moment is not None:
                    self._timers.add(max(moment, time.monotonic() + 0.001), task_id)
            self._settled(task)
        self._notify()
