"""The process's HTTP listener (HTTP_LISTEN): /healthz, /metrics, unknown paths, a port in use; with the real bot
against the loopback fakes."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.client import UpscaleBot
from bot.config import ConfigError
from bot.evolink import EvolinkClient, EvolinkError
from bot.health import HealthCheck, shard_states, stale_after
from bot.metrics import Metrics
from sandbox.fake_evolink import FakeEvolink
from sandbox.offline import SANDBOX_API_KEY, SANDBOX_BOT_TOKEN, Sandbox
from tests.conftest import BotRunner
from tests.helpers import DeliveryWatch, start_upscale, wait_told

RESULT = "https://cdn.evolink.ai/sample/metrics-run.mp4"
REQUIRED = ("upscale_tasks_submitted_total", "upscale_tasks_finished_total", "upscale_upstream_requests_total",
            "upscale_discord_deliveries_total", "upscale_tasks_active", "upscale_poll_lag_seconds",
            "upscale_notify_latency_seconds", "upscale_lease_takeovers_total")


async def get(bot: UpscaleBot, path: str, method: str = "GET") -> tuple[int, str]:
    assert bot.http_listener is not None
    url = f"http://127.0.0.1:{bot.http_listener.port}{path}"
    async with aiohttp.ClientSession() as session, session.request(method, url) as response:
        return response.status, await response.text()


async def healthz(bot: UpscaleBot) -> tuple[int, dict[str, Any]]:
    assert bot.http_listener is not None
    url = f"http://127.0.0.1:{bot.http_listener.port}/healthz"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        text = await response.text()
        for secret in (SANDBOX_BOT_TOKEN, SANDBOX_API_KEY, bot.settings.database_url):
            assert secret not in text, "the health body shows a secret or the database URL"
        return response.status, await response.json()


async def scanned(bot: UpscaleBot) -> None:
    """Wait until discord.py has taken READY (it waits guild_ready_timeout for the guilds after the fake sent it)
    and the poller has finished one more scan (it may still be in its first one)."""
    await asyncio.wait_for(bot.wait_until_ready(), 10)
    poller = bot.poller
    done = asyncio.Event()
    original = poller._tick

    async def tick() -> float:
        try:
            return await original()
        finally:
            done.set()  # the loop records last_run_at right after this returns, before the test resumes

    poller._tick = tick  # type: ignore[method-assign]
    try:
        poller.wake()
        await asyncio.wait_for(done.wait(), 10)
    finally:
        poller._tick = original  # type: ignore[method-assign]


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text exposition (parsed by prometheus-client's own parser), by name and labels."""
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(parsed: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return parsed.get((name, frozenset(labels.items())), 0.0)


async def scrape(bot: UpscaleBot) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    status, text = await get(bot, "/metrics")
    assert status == 200
    return samples(text)


# ---- /healthz -------------------------------------------------------------------------------------------------
@pytest.mark.backends("sqlite", "postgres")
async def test_healthz_is_200_when_connected_with_a_database_and_a_running_poller(bot: UpscaleBot) -> None:
    await scanned(bot)
    status, body = await healthz(bot)
    assert status == 200, body
    assert body["status"] == "ok" and "reasons" not in body
    assert body["shards"] == {"0": "connected"}
    assert body["database"] == "ok"
    assert 0 <= body["poller"]["last_run_seconds_ago"] < body["poller"]["limit_seconds"] == 30


@pytest.mark.backends("sqlite", "postgres")
async def test_healthz_is_503_when_the_database_does_not_answer(bot: UpscaleBot) -> None:
    await scanned(bot)
    await bot.storage.close()
    status, body = await healthz(bot)
    assert status == 503
    assert body["status"] == "unhealthy" and body["database"] != "ok"
    assert any("database" in reason for reason in body["reasons"]), body
    assert body["shards"] == {"0": "connected"}, "only what is wrong is reported"
    status, _ = await get(bot, "/metrics")
    assert status == 200, "metrics still answer (the active-task gauge keeps its last value)"


async def test_healthz_is_503_when_the_gateway_is_disconnected(box: Sandbox, bot: UpscaleBot) -> None:
    await scanned(bot)
    disconnected = asyncio.Event()

    async def on_disconnect() -> None:
        disconnected.set()

    bot.add_listener(on_disconnect)
    await box.discord.close()  # every session dropped, and reconnecting is refused
    await asyncio.wait_for(disconnected.wait(), 10)
    status, body = await healthz(bot)
    assert status == 503
    assert body["shards"] == {"0": "disconnected"}
    assert body["reasons"] == ["Discord gateway shard 0 is not connected (disconnected)"]


async def test_healthz_is_503_when_the_poller_has_not_run_recently(bot: UpscaleBot) -> None:
    await scanned(bot)
    await bot.poller.stop()
    assert bot.http_listener is not None and bot.http_listener.health is not None
    health = bot.http_listener.health
    health.clock = lambda: time.time() + 120  # two minutes later, with the poller still stopped
    status, body = await healthz(bot)
    assert status == 503
    assert body["poller"]["last_run_seconds_ago"] >= 120
    [reason] = body["reasons"]
    assert "task poller last ran" in reason and "more than 30 s" in reason


def test_stale_after_follows_poll_max_with_a_floor() -> None:
    assert stale_after(1.0) == 30.0  # a short POLL_MAX_SECONDS (tests, the sandbox): the floor
    assert stale_after(60.0) == 180.0  # the default: three scans


class _Shard:
    def __init__(self, closed: bool) -> None:
        self.closed = closed

    def is_closed(self) -> bool:
        return self.closed


class _Sharded(discord.AutoShardedClient):
    """An AutoShardedClient holding shards 2 and 3 of 4, shard 3 down; nothing is connected for real."""

    @property
    def shards(self) -> dict[int, Any]:  # type: ignore[override]
        return {2: _Shard(False), 3: _Shard(True)}

    def is_ready(self) -> bool:
        return True


class _NeverRan:
    last_run_at: float | None = None


class _Answers:
    async def ping(self) -> None:
        return None


async def test_an_auto_sharded_bot_reports_each_of_its_shards() -> None:
    client = _Sharded(intents=discord.Intents.none(), shard_ids=[2, 3], shard_count=4)  # never started
    assert shard_states(client) == {"2": "connected", "3": "disconnected"}
    health = HealthCheck(client, _Answers(), _NeverRan(), stale_after=30)  # type: ignore[arg-type]
    healthy, body = await health.check()
    assert not healthy
    assert body["reasons"] == ["Discord gateway shard 3 is not connected (disconnected)",
                               "the task poller has not run yet"]


async def test_a_bot_not_yet_connected_is_unhealthy_not_absent() -> None:
    client = discord.Client(intents=discord.Intents.none())
    assert shard_states(client) == {"0": "not connected yet"}
    await client.close()
    assert shard_states(client) == {"0": "closed"}


# ---- /metrics -------------------------------------------------------------------------------------------------
async def test_metrics_carry_every_required_name_and_count_a_completed_upscale(box: Sandbox, bot: UpscaleBot) -> None:
    status, text = await get(bot, "/metrics")
    assert status == 200
    names = {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}
    for name in REQUIRED:
        assert name in names or f"{name}_count" in names, name
    parsed = samples(text)
    assert value(parsed, "upscale_tasks_submitted_total") == 0
    assert value(parsed, "upscale_tasks_active") == 0

    watch = DeliveryWatch(bot)
    _, task_id = await start_upscale(box, url="https://example.com/clip.mp4")
    assert value(await scrape(bot), "upscale_tasks_active") == 1, "counted from the database when scraped"
    box.evolink.complete(task_id, RESULT)
    await wait_told(box, box.alice_id, RESULT)
    await watch.told(task_id)

    parsed = await scrape(bot)
    assert value(parsed, "upscale_tasks_submitted_total") == 1
    assert value(parsed, "upscale_tasks_finished_total", status="completed") == 1
    assert value(parsed, "upscale_tasks_finished_total", status="failed") == 0
    assert value(parsed, "upscale_tasks_active") == 0
    assert value(parsed, "upscale_upstream_requests_total", endpoint="submit", outcome="ok") == 1
    assert value(parsed, "upscale_upstream_requests_total", endpoint="query", outcome="ok") >= 1
    assert value(parsed, "upscale_discord_deliveries_total", kind="dm", outcome="ok") == 1
    assert value(parsed, "upscale_discord_deliveries_total", kind="channel", outcome="ok") == 1
    assert value(parsed, "upscale_discord_deliveries_total", kind="card_edit", outcome="ok") >= 1
    assert value(parsed, "upscale_notify_latency_seconds_count") == 1
    assert 0 <= value(parsed, "upscale_notify_latency_seconds_sum") < 30
    assert value(parsed, "upscale_poll_lag_seconds_count") >= 1
    assert value(parsed, "upscale_lease_takeovers_total") == 0


async def test_a_refused_dm_is_counted_by_its_outcome(box: Sandbox, bot: UpscaleBot) -> None:
    box.discord.set_dms_open(box.alice_id, False)
    watch = DeliveryWatch(bot)
    _, task_id = await start_upscale(box, url="https://example.com/clip.mp4")
    box.evolink.complete(task_id, RESULT)
    await watch.told(task_id)
    parsed = await scrape(bot)
    assert value(parsed, "upscale_discord_deliveries_total", kind="dm", outcome="dm_closed") == 1
    assert value(parsed, "upscale_discord_deliveries_total", kind="dm", outcome="ok") == 0
    assert value(parsed, "upscale_discord_deliveries_total", kind="channel", outcome="ok") == 1


@pytest.fixture
async def fake_evolink() -> AsyncIterator[FakeEvolink]:
    fake = FakeEvolink(estimated_time=60)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


async def test_upstream_requests_are_counted_per_attempt_with_the_error_kind(fake_evolink: FakeEvolink) -> None:
    metrics = Metrics()
    async with aiohttp.ClientSession() as session:
        client = EvolinkClient(session, fake_evolink.base_url, fake_evolink.api_key, backoff_base=0.001,
                               metrics=metrics)
        task = await client.submit("https://example.com/v.mp4", 2)
        fake_evolink.inject("server_error")
        await client.get_task(task.task_id)  # one 503, retried within the call, then the answer
        fake_evolink.inject("malformed_json")
        with pytest.raises(EvolinkError):
            await client.get_task(task.task_id)
        await client.get_credits()
    parsed = samples(metrics.exposition().decode())
    counted = {labels: number for (name, labels), number in parsed.items()
               if name == "upscale_upstream_requests_total" and number}
    assert counted == {
        frozenset({("endpoint", "submit"), ("outcome", "ok")}): 1,
        frozenset({("endpoint", "query"), ("outcome", "server")}): 1,
        frozenset({("endpoint", "query"), ("outcome", "ok")}): 1,
        frozenset({("endpoint", "query"), ("outcome", "malformed")}): 1,
        frozenset({("endpoint", "credits"), ("outcome", "ok")}): 1,
    }


def test_each_bot_counts_on_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.task_submitted()
    first.lease_taken_over(2)
    assert value(samples(first.exposition().decode()), "upscale_tasks_submitted_total") == 1
    assert value(samples(first.exposition().decode()), "upscale_lease_takeovers_total") == 2
    assert value(samples(second.exposition().decode()), "upscale_tasks_submitted_total") == 0


# ---- the listener itself --------------------------------------------------------------------------------------
async def test_unknown_paths_are_404_and_callbacks_are_off_without_callback_url(bot: UpscaleBot) -> None:
    assert (await get(bot, "/nope"))[0] == 404
    assert (await get(bot, "/evolink/1/some-token", method="POST"))[0] == 404
    assert (await get(bot, "/healthz", method="POST"))[0] == 405


async def test_an_http_listen_port_in_use_stops_start_up_naming_it(bot_runner: BotRunner) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError) as caught:
            await bot_runner.start(http_listen=("127.0.0.1", port))
    assert str(caught.value).startswith(f"HTTP_LISTEN 127.0.0.1:{port} cannot be opened")
