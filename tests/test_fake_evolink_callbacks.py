"""The fake Evolink's task callbacks (sandbox/fake_evolink_callbacks.py) against a tiny loopback receiver.

Waits are on the fake's events (fake.wait_for), never fixed sleeps. "No callback was started" is checked at
once after the state change (deliveries start synchronously), and again after a later callback has settled.
"""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from benchmarks._bench import BenchEvolink
from sandbox.fake_evolink import MODEL, SUBMIT_PATH, TASK_PATH, FakeEvolink

KEY = "sk-test-callbacks"
AUTH = {"Authorization": f"Bearer {KEY}"}
VIDEO = "https://media.example.com/clips/cat.mp4"
PUBLIC = "https://callbacks.example.com/evolink"
DELAYS = (0.05, 0.1, 0.2)


class Receiver:
    """A bot-like callback listener on 127.0.0.1: records every POST and answers `statuses` in turn, then 204."""

    def __init__(self) -> None:
        self.received: list[tuple[str, Any]] = []  # (path, JSON body)
        self.statuses: list[int] = []
        self.base = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.received.append((request.path, await request.json()))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 204)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    listener = Receiver()
    await listener.start()
    yield listener
    await listener.close()


@pytest.fixture
async def fake(receiver: Receiver) -> AsyncIterator[FakeEvolink]:
    server = FakeEvolink(api_key=KEY, callback_routes={PUBLIC: receiver.base + "/local"},
                         callback_retry_delays=DELAYS)
    await server.start()
    yield server
    await server.close()


async def submit(fake: FakeEvolink, session: aiohttp.ClientSession,
                 callback_url: str | None = PUBLIC + "/7/tok") -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {"model": MODEL, "video_urls": [VIDEO]}
    if callback_url is not None:
        body["callback_url"] = callback_url
    async with session.post(fake.base_url + SUBMIT_PATH, json=body, headers=AUTH) as response:
        return response.status, await response.json()


async def submit_id(fake: FakeEvolink, session: aiohttp.ClientSession, callback_url: str | None = PUBLIC + "/7/tok",
                    ) -> str:
    status, body = await submit(fake, session, callback_url)
    assert status == 200, body
    return str(body["id"])


async def query(fake: FakeEvolink, session: aiohttp.ClientSession, task_id: str) -> dict[str, Any]:
    async with session.get(fake.base_url + TASK_PATH + task_id, headers=AUTH) as response:
        assert response.status == 200
        return await response.json()


async def settled(fake: FakeEvolink, task_id: str, attempts: int = 1) -> None:
    """Wait until the task has `attempts` recorded attempts and no delivery is still running."""
    await fake.wait_for(lambda: len(fake.callbacks_for(task_id)) >= attempts and fake.callbacks_in_flight == 0)


# --- firing -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("end", ["complete", "fail", "cancelled", "canceled"])
async def test_fires_once_on_a_final_state_with_the_query_body(
        fake: FakeEvolink, receiver: Receiver, session: aiohttp.ClientSession, end: str) -> None:
    task_id = await submit_id(fake, session, PUBLIC + "/7/tok")
    fake.set_progress(task_id, 50)
    assert fake.callbacks_in_flight == 0  # not final: nothing sent
    if end == "complete":
        fake.complete(task_id)
    elif end == "fail":
        fake.fail(task_id)
    else:
        fake.cancel(task_id, spelling=end)
    await settled(fake, task_id)
    (path, body), = receiver.received
    assert path == "/local/7/tok"  # routed from the public prefix
    assert body == await query(fake, session, task_id)  # the callback body is the task query response
    assert body["status"] == ("completed" if end == "complete" else "failed" if end == "fail" else end)
    assert body["id"] == task_id and body["task_info"] == {"can_cancel": False}
    record, = fake.callbacks_for(task_id)
    assert (record.url, record.attempt, record.status, record.error) == (PUBLIC + "/7/tok", 1, 204, None)
    assert fake.callbacks_delivered == 1 and fake.pending_callbacks == 0
    assert fake.callbacks_in_flight == 0  # the query above, on a final task, started nothing either


async def test_repeated_final_command_does_not_fire_again_but_a_new_final_state_does(
        fake: FakeEvolink, receiver: Receiver, session: aiohttp.ClientSession) -> None:
    task_id = await submit_id(fake, session)
    fake.complete(task_id)
    await settled(fake, task_id)
    fake.complete(task_id, "https://cdn.evolink.ai/sample/other.mp4")  # still completed: no transition
    assert fake.callbacks_in_flight == 0
    fake.fail(task_id)  # completed -> failed is a new final transition
    await settled(fake, task_id, 2)
    assert [body["status"] for _, body in receiver.received] == ["completed", "failed"]
    assert [r.status for r in fake.callbacks_for(task_id)] == [204, 204]


async def test_no_callback_without_callback_url(
        fake: FakeEvolink, receiver: Receiver, session: aiohttp.ClientSession) -> None:
    silent = await submit_id(fake, session, None)
    assert fake.tasks[silent].callback_url is None
    fake.complete(silent)
    assert fake.callbacks_in_flight == 0 and fake.pending_callbacks == 0
    loud = await submit_id(fake, session)
    fake.complete(loud)
    await settled(fake, loud)
    assert [body["id"] for _, body in receiver.received] == [loud]
    assert fake.callbacks_for(silent) == [] and len(fake.callbacks) == 1


async def test_auto_complete_after_fires_without_any_query(receiver: Receiver,
                                                           session: aiohttp.ClientSession) -> None:
    fake = FakeEvolink(api_key=KEY, auto_complete_after=0.2, callback_routes={PUBLIC: receiver.base})
    await fake.start()
    try:
        task_id = await submit_id(fake, session, PUBLIC + "/9/abc")
        assert fake.pending_callbacks == 1  # its completion timer
        await settled(fake, task_id)
        assert fake.queries() == 0
        (path, body), = receiver.received
        assert path == "/9/abc"
        assert (body["status"], body["progress"]) == ("completed", 100)
        assert body["results"] == [f"https://cdn.evolink.ai/sample/{task_id}.mp4"]
        assert body["usage"]["credits_used"] == body["usage"]["credits_reserved"]
        assert fake.callbacks_for(task_id)[0].at - fake.tasks[task_id].created_at >= 0.2
        assert await query(fake, session, task_id) == body
        assert fake.callbacks_in_flight == 0 and fake.pending_callbacks == 0  # the query fired nothing more
    finally:
        await fake.close()


async def test_a_query_that_completes_the_task_fires_once(receiver: Receiver,
                                                          session: aiohttp.ClientSession) -> None:
    fake = FakeEvolink(api_key=KEY, auto_complete_after=0.0, callback_routes={PUBLIC: receiver.base})
    await fake.start()
    try:
        task_id = await submit_id(fake, session)
        assert (await query(fake, session, task_id))["status"] == "completed"  # may beat the timer
        await settled(fake, task_id)
        assert len(receiver.received) == 1 and fake.pending_callbacks == 0
    finally:
        await fake.close()


async def test_a_fault_on_the_completing_query_does_not_reach_the_callback(
        fake: FakeEvolink, receiver: Receiver, session: aiohttp.ClientSession) -> None:
    task_id = await submit_id(fake, session)  # no auto_complete_after yet: no timer, only a query completes it
    fake.auto_complete_after = 0.0
    fake.inject("unknown_status")
    assert (await query(fake, session, task_id))["status"] == "mystery_state"
    await settled(fake, task_id)
    (_, body), = receiver.received
    assert body["status"] == "completed" and body == await query(fake, session, task_id)


# --- routing ----------------------------------------------------------------------------------------------


async def test_longest_prefix_route_added_after_start(receiver: Receiver, session: aiohttp.ClientSession) -> None:
    other = Receiver()
    await other.start()
    fake = FakeEvolink(api_key=KEY, callback_retry_delays=DELAYS,
                       callback_routes={"https://callbacks.example.com": other.base + "/root"})
    await fake.start()
    try:
        fake.route_callbacks(PUBLIC, receiver.base + "/bot")
        assert fake.callback_routes[PUBLIC] == receiver.base + "/bot"
        deep = await submit_id(fake, session, PUBLIC + "/1/tok?x=1")
        sibling = await submit_id(fake, session, "https://callbacks.example.com/evolinkish/2/tok")
        nowhere = await submit_id(fake, session, "https://hooks.example.org/3/tok")
        for task_id in (deep, sibling, nowhere):
            fake.complete(task_id)
        await settled(fake, deep)
        await settled(fake, sibling)
        await settled(fake, nowhere, 4)
        assert [path for path, _ in receiver.received] == ["/bot/1/tok"]
        assert [path for path, _ in other.received] == ["/root/evolinkish/2/tok"]  # not a path-segment match
        unrouted = fake.callbacks_for(nowhere)
        assert [r.status for r in unrouted] == [None] * 4  # unreachable, retried, never sent anywhere
        assert unrouted[0].error is not None and "no callback route" in unrouted[0].error
        assert fake.callbacks_delivered == 2
    finally:
        await fake.close()
        await other.close()


# --- the submit rule --------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/cb", "https://127.0.0.1:8443/cb", "https://10.1.2.3/cb", "https://172.16.0.1/cb",
    "https://172.31.255.254/cb", "https://192.168.1.20/cb", "https://169.254.169.254/latest", "https://0.0.0.0/cb",
    "https://localhost/cb", "https://LOCALHOST:8080/cb", "https://bot.localhost/cb", "https://[::1]/cb",
    "https://[fe80::1]/cb", "https://[fd00::5]/cb", "https://[::ffff:10.0.0.1]/cb", "https://127.1/cb",
    "https://2130706433/cb", "http://callbacks.example.com/cb", "https:///cb", "https://" + "a" * 2040 + ".com/",
    12345,
])
async def test_internal_or_bad_callback_urls_are_refused(
        fake: FakeEvolink, session: aiohttp.ClientSession, url: object) -> None:
    body = {"model": MODEL, "video_urls": [VIDEO], "callback_url": url}
    async with session.post(fake.base_url + SUBMIT_PATH, json=body, headers=AUTH) as response:
        assert response.status == 400
        error = (await response.json())["error"]
    assert error["type"] == "invalid_request_error" and "callback_url" in error["message"]
    assert fake.submissions() == 0 and fake.tasks == {}


@pytest.mark.parametrize("url", [
    PUBLIC + "/1/tok", "https://8.8.8.8/cb", "https://172.32.0.1/cb", "https://[2001:4860:4860::8888]/cb",
    "https://callbacks.example.com:8443/" + "x" * 1900,
])
async def test_public_https_callback_urls_are_accepted(
        fake: FakeEvolink, session: aiohttp.ClientSession, url: str) -> None:
    task_id = await submit_id(fake, session, url)
    assert fake.tasks[task_id].callback_url == url


# --- retries and faults -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("answers", "expected"), [
    ([500] * 10, [500, 500, 500, 500]),
    ([500, 204], [500, 204]),
    ([404, 503, 200], [404, 503, 200]),
])
async def test_retries_after_non_2xx(fake: FakeEvolink, receiver: Receiver, session: aiohttp.ClientSession,
                                     answers: list[int], expected: list[int]) -> None:
    receiver.statuses = list(answers)
    task_id = await submit_id(fake, session)
    fake.complete(task_id)
    await settled(fake, task_id, len(expected))
    records = fake.callbacks_for(task_id)
    assert [r.status for r in records] == expected
    assert [r.attempt for r in records] == list(range(1, len(expected) + 1))
    assert len(receiver.received) == len(expected)
    assert all(body == receiver.received[0][1] for _, body in receiver.received)  # the same body each time
    for before, after, delay in zip(records, records[1:], DELAYS, strict=False):
        assert after.at - before.at >= delay - 0.005
    assert fake.callbacks_delivered == (1 if 200 <= expected[-1] < 300 else 0)


async def test_dropped_attempts_are_connection_failures_and_retried(
        fake: FakeEvolink, receiver: Receiver, session: aiohttp.ClientSession) -> None:
    task_id = await submit_id(fake, session)
    fake.drop_callbacks(2)
    fake.complete(task_id)
    await settled(fake, task_id, 3)
    records = fake.callbacks_for(task_id)
    assert [(r.attempt, r.status) for r in records] == [(1, None), (2, None), (3, 204)]
    assert all(r.error for r in records[:2]) and records[2].error is None
    assert len(receiver.received) == 1


async def test_disabled_callbacks_are_lost(fake: FakeEvolink, receiver: Receiver,
                                           session: aiohttp.ClientSession) -> None:
    lost = await submit_id(fake, session, PUBLIC + "/1/lost")
    fake.callbacks_enabled = False
    fake.complete(lost)
    assert fake.callbacks == [] and fake.callbacks_in_flight == 0 and fake.pending_callbacks == 0
    fake.callbacks_enabled = True
    kept = await submit_id(fake, session, PUBLIC + "/2/kept")
    fake.complete(kept)
    await settled(fake, kept)
    assert [path for path, _ in receiver.received] == ["/local/2/kept"]
    assert fake.callbacks_for(lost) == []  # and re-enabling did not resend it


async def test_send_callback_forges_a_hint(fake: FakeEvolink, receiver: Receiver,
                                           session: aiohttp.ClientSession) -> None:
    task_id = await submit_id(fake, session, PUBLIC + "/5/tok")
    receiver.statuses = [404]
    forged = {"id": task_id, "status": "completed", "results": ["https://evil.example/x.mp4"]}
    assert await fake.send_callback(task_id, forged) == 404
    assert await fake.send_callback(task_id, url=PUBLIC + "/6/other") == 204
    assert await fake.send_callback("no-such-task", {"x": 1}, url=receiver.base + "/direct") == 204
    assert receiver.received[0] == ("/local/5/tok", forged)
    assert receiver.received[1][0] == "/local/6/other"
    assert receiver.received[1][1] == await query(fake, session, task_id)  # the task's current query JSON
    assert receiver.received[2] == ("/direct", {"x": 1})
    assert fake.callbacks == []  # forged hints are not the fake's own callbacks
    with pytest.raises(ValueError, match="no callback_url"):
        await fake.send_callback(await submit_id(fake, session, None))


# --- BenchEvolink -----------------------------------------------------------------------------------------


async def test_bench_preloaded_tasks_fire_when_their_duration_ends(receiver: Receiver) -> None:
    fake = BenchEvolink(api_key=KEY, callback_routes={PUBLIC: receiver.base}, callback_retry_delays=DELAYS)
    early = fake.preload("task-unified-1-early000", age=0.0, duration=0.15, callback_url=PUBLIC + "/1/a")
    fake.preload("task-unified-1-nocb0000", age=0.0, duration=0.05)  # no callback_url: no timer
    assert fake.pending_callbacks == 1
    await fake.start()  # timers armed before start() wait for it
    try:
        late = fake.preload("task-unified-1-late0000", age=5.0, duration=5.3, callback_url=PUBLIC + "/2/b")
        await settled(fake, early.id)
        await settled(fake, late.id)
        assert sorted(path for path, _ in receiver.received) == ["/1/a", "/2/b"]
        assert all(body["status"] == "completed" for _, body in receiver.received)
        assert fake.queries() == 0 and fake.callbacks_delivered == 2 and fake.pending_callbacks == 0
        for task in (early, late):
            assert fake.callbacks_for(task.id)[0].at >= fake.completion_at[task.id]
    finally:
        await fake.close()


async def test_bench_never_complete_arms_nothing(receiver: Receiver) -> None:
    fake = BenchEvolink(api_key=KEY, never_complete=True, callback_routes={PUBLIC: receiver.base})
    fake.preload("task-unified-1-never000", age=100.0, duration=1.0, callback_url=PUBLIC + "/1/a")
    assert fake.pending_callbacks == 0
    await fake.start()
    await fake.close()
    assert fake.callbacks == []


# --- close ------------------------------------------------------------------------------------------------


def test_close_with_pending_timer_and_retry_leaves_nothing_behind() -> None:
    """Its own loop, closed without cancelling leftovers, so a task close() forgot would be reported."""
    loop = asyncio.new_event_loop()
    problems: list[str] = []
    loop.set_exception_handler(lambda _loop, context: problems.append(str(context.get("message"))))

    async def scenario() -> None:
        listener = Receiver()
        await listener.start()
        listener.statuses = [500] * 10
        fake = FakeEvolink(api_key=KEY, auto_complete_after=3600, callback_routes={PUBLIC: listener.base},
                           callback_retry_delays=(60.0, 60.0, 60.0))
        await fake.start()
        async with aiohttp.ClientSession() as http:
            await submit_id(fake, http)  # an hour-long task: its completion timer stays armed
            retrying = await submit_id(fake, http)
        fake.complete(retrying)
        await fake.wait_for(lambda: fake.callbacks_for(retrying))  # answered 500: a retry waits 60 s
        assert fake.pending_callbacks == 2 and fake.callbacks_in_flight == 1
        await fake.close()
        assert fake.pending_callbacks == 0 and fake.callbacks_in_flight == 0
        await listener.close()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            loop.run_until_complete(scenario())
            leftover = [task for task in asyncio.all_tasks(loop) if not task.done()]
            timers = [handle for handle in getattr(loop, "_scheduled", []) if not handle.cancelled()]
        finally:
            loop.close()
        gc.collect()
    assert leftover == [] and timers == []
    assert problems == []
    assert [str(w.message) for w in caught] == []
