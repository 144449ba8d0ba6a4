"""The real EvolinkClient over a real aiohttp session against FakeEvolink on loopback."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.evolink import MODEL, ErrorKind, EvolinkClient, EvolinkError
from sandbox.fake_evolink import FakeEvolink

KEY = "sk-test-SECRET-4f9a2c71d3e8"
VIDEO = "https://media.example.com/clips/cat.mp4"


@pytest.fixture
async def fake() -> AsyncIterator[FakeEvolink]:
    server = FakeEvolink(api_key=KEY, hang_seconds=1.0)
    await server.start()
    yield server
    await server.close()


def make_client(session: aiohttp.ClientSession, base_url: str, **overrides: float) -> EvolinkClient:
    options: dict[str, float] = {"request_timeout": 0.3, "backoff_base": 0.01, "max_retry_wait": 1.0}
    options.update(overrides)
    return EvolinkClient(session, base_url, KEY, **options)  # type: ignore[arg-type]


@pytest.fixture
def client(fake: FakeEvolink, session: aiohttp.ClientSession) -> EvolinkClient:
    return make_client(session, fake.base_url)


async def submit_one(client: EvolinkClient, fake: FakeEvolink) -> str:
    """Create a task and forget the requests that did it, so counts below are the test's own."""
    snap = await client.submit(VIDEO, 2)
    fake.requests.clear()
    return snap.task_id


# --- submit ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1, 2, 4])
async def test_submit_sends_documented_body(client: EvolinkClient, fake: FakeEvolink, scale: int) -> None:
    snap = await client.submit(VIDEO, scale)
    assert [(r.method, r.path, r.status) for r in fake.requests] == [("POST", "/v1/videos/generations", 200)]
    assert fake.requests[0].json == {
        "model": MODEL,
        "video_urls": [VIDEO],
        "model_params": {"upscale_factor": str(scale)},
    }
    assert fake.submissions() == 1
    task = fake.tasks[snap.task_id]
    assert (task.scale, task.video_url) == (str(scale), VIDEO)
    assert snap.task_id.startswith("task-unified-")
    assert (snap.status, snap.progress, snap.estimated_time, snap.credits_reserved) == (
        "pending",
        0,
        600,
        28.8,
    )
    assert snap.created is not None and not snap.final


@pytest.mark.parametrize("scale", [0, 3, 8, True, "2"])
async def test_submit_refuses_bad_scale_without_a_request(
    client: EvolinkClient, fake: FakeEvolink, scale: object
) -> None:
    with pytest.raises(EvolinkError) as info:
        await client.submit(VIDEO, scale)  # type: ignore[arg-type]
    assert info.value.kind is ErrorKind.BAD_REQUEST
    assert fake.requests == []


async def test_submit_input_rejected_upstream(client: EvolinkClient, fake: FakeEvolink) -> None:
    with pytest.raises(EvolinkError) as info:
        await client.submit("https://media.example.com/clip.mov", 2)
    assert (info.value.kind, info.value.status, info.value.code) == (ErrorKind.BAD_REQUEST, 400, "400")
    assert ".mp4" in info.value.message and info.value.request_id
    assert fake.submissions() == 0


@pytest.mark.parametrize(
    ("fault", "status", "kind", "code"),
    [
        ("bad_request", 400, ErrorKind.BAD_REQUEST, "400"),
        ("unauthorized", 401, ErrorKind.AUTH, "401"),
        ("no_credits", 402, ErrorKind.NO_CREDITS, "insufficient_quota"),
        ("forbidden", 403, ErrorKind.FORBIDDEN, "403"),
        ("too_large", 413, ErrorKind.TOO_LARGE, "413"),
        ("rate_limit", 429, ErrorKind.RATE_LIMITED, "rate_limit_exceeded"),
        ("server_error", 503, ErrorKind.SERVER, "503"),
        ("html_error", 502, ErrorKind.SERVER, None),
        ("malformed_json", 200, ErrorKind.MALFORMED, None),
        ("timeout", None, ErrorKind.TIMEOUT, None),
    ],
)
async def test_submit_errors_have_their_kind_and_are_never_retried(
    client: EvolinkClient,
    fake: FakeEvolink,
    fault: str,
    status: int | None,
    kind: ErrorKind,
    code: str | None,
) -> None:
    fake.inject(fault, on="submit", times=5, retry_after=0.01 if fault == "rate_limit" else None)
    with pytest.raises(EvolinkError) as info:
        await client.submit(VIDEO, 2)
    err = info.value
    assert (err.kind, err.status, err.code) == (kind, status, code)
    assert err.retryable == (
        kind in {ErrorKind.RATE_LIMITED, ErrorKind.SERVER, ErrorKind.TIMEOUT, ErrorKind.MALFORMED}
    )
    assert len(fake.requests) == 1  # the paid POST went out exactly once
    # A timed-out submit may still have created (and billed) the task upstream: the caller must know.
    assert fake.submissions() == (1 if fault == "timeout" else 0)
    if status is not None:
        assert err.request_id
    if fault == "rate_limit":
        assert err.retry_after == pytest.approx(0.01)
    assert str(err) and KEY not in str(err)


async def test_submit_with_a_rejected_key_is_auth_and_redacted(
    client: EvolinkClient, fake: FakeEvolink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.set_api_key("sk-some-other-key")
    with pytest.raises(EvolinkError) as info:
        await client.submit(VIDEO, 2)
    err = info.value
    assert (err.kind, err.status) == (ErrorKind.AUTH, 401)
    assert "Invalid token" in err.message  # the fake echoed our Authorization header back...
    for text in (str(err), repr(err), err.message, repr(client), caplog.text):
        assert KEY not in text  # ...and the client scrubbed it


async def test_connection_refused(session: aiohttp.ClientSession) -> None:
    gone = FakeEvolink(api_key=KEY)
    await gone.start()
    await gone.close()
    client = make_client(session, gone.base_url)
    with pytest.raises(EvolinkError) as info:
        await client.submit(VIDEO, 2)
    assert info.value.kind is ErrorKind.CONNECTION and info.value.retryable
    with pytest.raises(EvolinkError) as info:
        await client.get_task("task-unified-1-abcdefgh")
    assert info.value.kind is ErrorKind.CONNECTION


# --- get_task -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        ("server_error", 503),
        ("server_error", 502),
        ("server_error", 500),
        ("rate_limit", None),
        ("timeout", None),
        ("html_error", None),
    ],
)
async def test_get_task_retries_transient_failures(
    client: EvolinkClient, fake: FakeEvolink, caplog: pytest.LogCaptureFixture, fault: str, status: int | None
) -> None:
    task_id = await submit_one(client, fake)
    fake.inject(fault, status=status)
    caplog.set_level(logging.DEBUG, logger="bot.evolink")
    snap = await client.get_task(task_id)
    assert snap.status == "pending"
    assert fake.queries(task_id) == 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "retrying in" in warnings[0].getMessage()
    assert f"GET /v1/tasks/{task_id} -> 200" in caplog.text


async def test_get_task_survives_two_different_failures(client: EvolinkClient, fake: FakeEvolink) -> None:
    task_id = await submit_one(client, fake)
    fake.inject("server_error")
    fake.inject("timeout")
    fake.set_progress(task_id, 40)
    snap = await client.get_task(task_id)
    assert (snap.status, snap.progress) == ("processing", 40)
    assert fake.queries(task_id) == 3


@pytest.mark.parametrize("attempts", [1, 3, 4])
async def test_get_task_gives_up_after_query_attempts(
    session: aiohttp.ClientSession, fake: FakeEvolink, attempts: int
) -> None:
    client = make_client(session, fake.base_url, query_attempts=attempts)
    task_id = await submit_one(client, fake)
    fake.inject("server_error", times=10)
    with pytest.raises(EvolinkError) as info:
        await client.get_task(task_id)
    assert (info.value.kind, info.value.status) == (ErrorKind.SERVER, 503)
    assert fake.queries(task_id) == attempts


async def test_get_task_honours_retry_after(client: EvolinkClient, fake: FakeEvolink) -> None:
    task_id = await submit_one(client, fake)
    fake.inject("rate_limit", retry_after=0.2)
    await client.get_task(task_id)
    first, second = fake.requests
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 0.2  # back-off alone would have waited ~0.01 s


async def test_get_task_raises_at_once_when_retry_after_is_too_long(
    client: EvolinkClient, fake: FakeEvolink
) -> None:
    task_id = await submit_one(client, fake)
    fake.inject("rate_limit", retry_after=5)  # the client's max_retry_wait is 1 s
    started = time.monotonic()
    with pytest.raises(EvolinkError) as info:
        await client.get_task(task_id)
    assert info.value.kind is ErrorKind.RATE_LIMITED and info.value.retry_after == 5
    assert time.monotonic() - started < 1.0
    assert fake.queries(task_id) == 1


async def test_get_task_not_found_is_not_retried(client: EvolinkClient, fake: FakeEvolink) -> None:
    task_id = await submit_one(client, fake)
    fake.expire(task_id)
    with pytest.raises(EvolinkError) as info:
        await client.get_task(task_id)
    err = info.value
    assert (err.kind, err.status, err.code, err.message) == (
        ErrorKind.NOT_FOUND,
        404,
        "404",
        "Task not found or expired",
    )
    assert not err.retryable
    assert fake.queries(task_id) == 1
    with pytest.raises(EvolinkError) as info:
        await client.get_task("task-unified-1757169743-zzzzzzzz")
    assert info.value.kind is ErrorKind.NOT_FOUND and fake.queries() == 2


async def test_get_task_malformed_json_is_raised_not_retried(
    client: EvolinkClient, fake: FakeEvolink
) -> None:
    task_id = await submit_one(client, fake)
    fake.inject("malformed_json")
    with pytest.raises(EvolinkError) as info:
        await client.get_task(task_id)
    assert info.value.kind is ErrorKind.MALFORMED and info.value.retryable
    assert fake.queries(task_id) == 1


@pytest.mark.parametrize("task_id", ["", "has space", "../credits", "x" * 201, "a/b"])
async def test_get_task_refuses_bad_ids_without_a_request(
    client: EvolinkClient, fake: FakeEvolink, task_id: str
) -> None:
    with pytest.raises(EvolinkError) as info:
        await client.get_task(task_id)
    assert info.value.kind is ErrorKind.MALFORMED
    assert fake.requests == []


async def test_fault_limited_to_one_task(client: EvolinkClient, fake: FakeEvolink) -> None:
    first = await submit_one(client, fake)
    second = await submit_one(client, fake)
    fake.inject("not_found", task_id=second)
    assert (await client.get_task(first)).task_id == first
    with pytest.raises(EvolinkError) as info:
        await client.get_task(second)
    assert info.value.kind is ErrorKind.NOT_FOUND


async def test_unknown_status_is_kept(client: EvolinkClient, fake: FakeEvolink) -> None:
    task_id = await submit_one(client, fake)
    fake.inject("unknown_status")
    snap = await client.get_task(task_id)
    assert snap.status == "mystery_state" and not snap.known and not snap.final
    fake.set_status(task_id, "queued_for_gpu")
    assert (await client.get_task(task_id)).status == "queued_for_gpu"


@pytest.mark.parametrize("shape", ["results", "result_urls", "result_data"])
async def test_completed_in_every_shape(client: EvolinkClient, fake: FakeEvolink, shape: str) -> None:
    task_id = await submit_one(client, fake)
    url = "https://cdn.evolink.ai/sample/out.mp4"
    fake.complete(task_id, url, shape=shape, credits_used=14.4)
    snap = await client.get_task(task_id)
    assert (snap.status, snap.progress, snap.result_url, snap.credits_used) == ("completed", 100, url, 14.4)
    assert snap.final


async def test_failed_and_cancelled(client: EvolinkClient, fake: FakeEvolink) -> None:
    failed = await submit_one(client, fake)
    fake.fail(failed)
    snap = await client.get_task(failed)
    assert (snap.status, snap.error_code) == ("failed", "video_probe_failed")
    assert snap.error_message and "video duration" in snap.error_message
    cancelled = await submit_one(client, fake)
    fake.cancel(cancelled, spelling="canceled")
    snap = await client.get_task(cancelled)
    assert snap.status == "cancelled" and snap.final


async def test_auto_complete(session: aiohttp.ClientSession) -> None:
    for after, status in ((0.0, "completed"), (3600.0, "processing")):
        server = FakeEvolink(api_key=KEY, auto_complete_after=after)
        await server.start()
        try:
            client = make_client(session, server.base_url)
            task_id = (await client.submit(VIDEO, 2)).task_id
            snap = await client.get_task(task_id)
            assert snap.status == status
            if status == "completed":
                assert snap.result_url == f"https://cdn.evolink.ai/sample/{task_id}.mp4"
        finally:
            await server.close()


# --- credits, secrets, the fake itself -------------------------------------------------------------


async def test_get_credits(client: EvolinkClient, fake: FakeEvolink) -> None:
    assert await client.get_credits() == pytest.approx(10_000.0)
    await client.submit(VIDEO, 2)
    assert await client.get_credits() == pytest.approx(10_000.0 - 28.8)
    assert fake.api_key == KEY
    fake.set_api_key("sk-rotated")
    assert fake.api_key == "sk-rotated"
    with pytest.raises(EvolinkError) as info:
        await client.get_credits()
    assert info.value.kind is ErrorKind.AUTH


async def test_api_key_never_leaks(
    client: EvolinkClient, fake: FakeEvolink, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    task_id = await submit_one(client, fake)
    errors: list[EvolinkError] = []
    # times = what one get_task consumes (3 attempts when retried, 1 when not), so none spill over
    for fault, times in (("timeout", 3), ("html_error", 3), ("no_credits", 1), ("malformed_json", 1)):
        fake.inject(fault, times=times)
        with pytest.raises(EvolinkError) as info:
            await client.get_task(task_id)
        errors.append(info.value)
    fake.set_api_key("other")
    for call in (client.get_task(task_id), client.get_credits(), client.submit(VIDEO, 4)):
        with pytest.raises(EvolinkError) as info:
            await call
        errors.append(info.value)
    assert len(errors) == 7
    assert KEY not in repr(client)
    for err in errors:
        assert KEY not in str(err) and KEY not in repr(err) and KEY not in err.message
    assert KEY not in caplog.text
    assert "retrying in" in caplog.text  # the retries were logged (without the key)


async def test_fake_close_does_not_wait_for_held_answers(session: aiohttp.ClientSession) -> None:
    server = FakeEvolink(api_key=KEY, hang_seconds=30)
    await server.start()
    client = make_client(session, server.base_url, query_attempts=1)
    task_id = (await client.submit(VIDEO, 2)).task_id
    server.inject("timeout")
    with pytest.raises(EvolinkError):
        await client.get_task(task_id)
    started = time.monotonic()
    async with asyncio.timeout(5):
        await server.close()
        await server.close()  # idempotent
    assert time.monotonic() - started < 2


async def test_fake_wait_for(client: EvolinkClient, fake: FakeEvolink) -> None:
    task_id = await submit_one(client, fake)
    poll = asyncio.create_task(client.get_task(task_id))
    assert await fake.wait_for(lambda: fake.queries(task_id) >= 1) is True
    await poll
    fake_state = fake.wait_for(lambda: fake.tasks[task_id].status == "completed" and fake.tasks[task_id])
    waiter = asyncio.create_task(fake_state)
    fake.complete(task_id)
    assert (await waiter).id == task_id
    with pytest.raises(TimeoutError):
        await fake.wait_for(lambda: False, timeout=0.05)


async def test_stalled_submissions_leave_connections_for_task_queries(fake: FakeEvolink) -> None:
    """With a pool of 3 connections and 3 POSTs stuck upstream, a query still gets through at once."""
    task_id = None
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=3)) as http:
        client = make_client(http, fake.base_url, request_timeout=5.0, max_concurrent_submits=2)
        task_id = await submit_one(client, fake)
        fake.inject("timeout", on="submit", times=3)
        stuck = [asyncio.create_task(client.submit("https://example.com/a.mp4", 2)) for _ in range(3)]
        await fake.wait_for(lambda: sum(r.method == "POST" for r in fake.requests) >= 3)
        snapshot = await asyncio.wait_for(client.get_task(task_id), 0.8)  # well before the 1 s hang ends
        assert snapshot.task_id == task_id
        assert sum(r.method == "POST" for r in fake.requests) == 3, "the third stuck POST waits for a slot"
        await asyncio.gather(*stuck, return_exceptions=True)
