"""The provider account's balance: shown to admins in /quota usage (briefly cached, a note instead when it cannot be
read), and the low-credits alert in ALERT_CHANNEL_ID, once per crossing of CREDITS_ALERT_BELOW across checks,
processes and restarts. End to end through the real bot, the fake Discord and the fake Evolink (GET /v1/credits).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from bot.config import LIMIT_NAMES, ConfigError, load_settings
from bot.credits import FLAG
from sandbox.offline import Sandbox
from storage import Storage, open_storage
from tests.conftest import BotRunner
from tests.helpers import embed_text, start_upscale

MANAGE_GUILD = 1 << 5
EPHEMERAL = 1 << 6
UNLIMITED: dict[str, int | None] = dict.fromkeys(LIMIT_NAMES)
NOTE = "The provider's balance could not be read right now."
SHARED = "shared by every server using this bot"
# The background check every 50 ms, so a test sees many checks in well under a second.
WATCHING = {"credits_alert_below": 100.0, "credits_check_seconds": 0.05}


@pytest.fixture
def admin(box: Sandbox) -> str:
    """A member with Manage Server (added before the bot connects)."""
    return box.discord.add_member(box.guild_id, "admin", permissions=MANAGE_GUILD)


@pytest.fixture
def ops(box: Sandbox) -> str:
    """The operator's alert channel."""
    return box.discord.add_channel(box.guild_id, "ops")


async def quota_usage(box: Sandbox, admin: str) -> str:
    """Run /quota usage as an admin; it answers at once and privately; return what the embed shows."""
    interaction = await box.discord.slash("quota", user_id=admin, channel_id=box.channel_id, guild_id=box.guild_id,
                                          subcommand=["usage"])
    ack = await interaction.wait_ack()
    assert ack["type"] == 4 and ack["data"]["flags"] & EPHEMERAL, "/quota usage answers at once, privately"
    return embed_text(ack["data"])


def alerts(box: Sandbox, ops: str) -> list[str]:
    return [m["content"] for m in box.discord.channel_messages(ops)]


async def checks(box: Sandbox, count: int) -> None:
    """Wait until `count` more balance reads reached the fake (each background check makes one, in turn)."""
    target = box.evolink.credit_reads() + count
    await box.evolink.wait_for(lambda: box.evolink.credit_reads() >= target)


def credit_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("credits-") and not t.done()]


# ---- /quota usage ------------------------------------------------------------------------------------------------

async def test_quota_usage_shows_the_provider_balance_as_the_whole_bots_account(
        box: Sandbox, bot_runner: BotRunner, admin: str) -> None:
    await bot_runner.start()
    box.evolink.remaining_credits = 12_345.5
    shown = await quota_usage(box, admin)
    assert "**12,345.5** credits left" in shown
    assert SHARED in shown and "not this server's budget" in shown
    assert "This month:" in shown and "Top members this month" in shown, "the rest of the report is there"
    assert NOTE not in shown


async def test_quota_usage_shows_unlimited(box: Sandbox, bot_runner: BotRunner, admin: str) -> None:
    await bot_runner.start()
    box.evolink.unlimited_credits = True
    shown = await quota_usage(box, admin)
    assert "**unlimited** credits" in shown and "credits left" not in shown and SHARED in shown


BROKEN = [
    pytest.param(lambda fake: fake.inject("server_error", on="credits", status=500), id="500"),
    pytest.param(lambda fake: fake.inject("timeout", on="credits"), id="timeout"),
    pytest.param(lambda fake: fake.inject("malformed_json", on="credits"), id="malformed-json"),
    pytest.param(lambda fake: setattr(fake, "credits_answer", {"data": {"token": {"remaining_credits": "lots"}},
                                                               "success": True}), id="no-number"),
    pytest.param(lambda fake: setattr(fake, "credits_answer", ["not", "an", "object"]), id="not-an-object"),
    pytest.param(lambda fake: fake.inject("unauthorized", on="credits"), id="401"),
]


@pytest.mark.parametrize("break_it", BROKEN)
async def test_quota_usage_says_when_the_balance_cannot_be_read_and_still_shows_the_report(
        box: Sandbox, bot_runner: BotRunner, admin: str, break_it: Any) -> None:
    await bot_runner.start(default_limits=UNLIMITED)
    await start_upscale(box, url="https://example.com/a.mp4")  # something for the report to count
    break_it(box.evolink)
    started = time.monotonic()
    shown = await quota_usage(box, admin)
    assert time.monotonic() - started < 2.5, "a hanging provider does not hold the answer past Discord's 3 s"
    assert NOTE in shown and "credits left" not in shown
    assert SHARED in shown
    assert "This month:" in shown and f"<@{box.alice_id}>" in shown, "the rest of the report is there"
    assert box.evolink.credit_reads() == 1


async def test_the_balance_is_cached_briefly(box: Sandbox, bot_runner: BotRunner, admin: str) -> None:
    bot = await bot_runner.start()
    now = [1000.0]
    bot.credits.monotonic = lambda: now[0]
    box.evolink.remaining_credits = 700
    assert "**700** credits left" in await quota_usage(box, admin)
    box.evolink.remaining_credits = 650
    now[0] += 30
    assert "**700** credits left" in await quota_usage(box, admin), "within the cache time: the same reading"
    assert box.evolink.credit_reads() == 1
    now[0] += 31
    assert "**650** credits left" in await quota_usage(box, admin), "after it: read again"
    assert box.evolink.credit_reads() == 2


async def test_a_failed_read_is_remembered_briefly_too(box: Sandbox, bot_runner: BotRunner, admin: str) -> None:
    bot = await bot_runner.start()
    now = [1000.0]
    bot.credits.monotonic = lambda: now[0]
    box.evolink.inject("server_error", on="credits", times=5)
    assert NOTE in await quota_usage(box, admin)
    assert NOTE in await quota_usage(box, admin)
    assert box.evolink.credit_reads() == 1, "a burst during an outage makes one request"
    now[0] += 11
    assert NOTE in await quota_usage(box, admin)
    assert box.evolink.credit_reads() == 2


async def test_concurrent_quota_usage_share_one_read(box: Sandbox, bot_runner: BotRunner, admin: str) -> None:
    await bot_runner.start()
    shown = await asyncio.gather(*(quota_usage(box, admin) for _ in range(5)))
    assert all("**10,000** credits left" in text for text in shown)
    assert box.evolink.credit_reads() == 1


# ---- the low-credits alert -----------------------------------------------------------------------------------------

async def test_one_alert_per_crossing_across_checks_and_a_restart(
        box: Sandbox, bot_runner: BotRunner, ops: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.credits")
    box.evolink.remaining_credits = 500
    await bot_runner.start(alert_channel_id=int(ops), **WATCHING)
    await checks(box, 3)
    assert alerts(box, ops) == []

    box.evolink.remaining_credits = 50
    [alert] = await box.discord.wait_for(lambda: alerts(box, ops))
    assert "Evolink credits are low: 50 left (alert below 100)" in alert
    await checks(box, 10)
    assert len(alerts(box, ops)) == 1, "one alert, not one per check"
    assert [r.levelname for r in caplog.records
            if r.name == "bot.credits" and "credits are low: 50 left" in r.getMessage()] == ["WARNING"]

    # A restart while the balance is still low does not alert again: the database remembers the alert is out.
    await bot_runner.stop()
    await bot_runner.start(alert_channel_id=int(ops), **WATCHING)
    await checks(box, 10)
    assert len(alerts(box, ops)) == 1

    box.evolink.remaining_credits = 500
    await checks(box, 5)
    assert "the low-credits alert is re-armed" in caplog.text
    assert len(alerts(box, ops)) == 1
    box.evolink.remaining_credits = 40
    second = await box.discord.wait_for(lambda: (found := alerts(box, ops))[1:] and found[1])
    assert "Evolink credits are low: 40 left (alert below 100)" in second
    await checks(box, 10)
    assert len(alerts(box, ops)) == 2


@pytest.mark.backends("postgres")
async def test_two_bots_on_one_database_alert_once_per_crossing(box: Sandbox, database_url: str, ops: str) -> None:
    """Each bot reads the balance on its own; the flag in the database lets only the first that saw a crossing
    post it. Two bots on shards 0 and 1 of 2, as two processes would run."""
    runners = [BotRunner(box, database_url), BotRunner(box, database_url)]
    box.evolink.remaining_credits = 500
    try:
        for shard, runner in enumerate(runners):
            await runner.start(alert_channel_id=int(ops), discord_shard_count=2, discord_shard_ids=(shard,),
                               **WATCHING)
        await checks(box, 6)
        box.evolink.remaining_credits = 50
        await box.discord.wait_for(lambda: alerts(box, ops))
        await checks(box, 20)
        assert len(alerts(box, ops)) == 1
        box.evolink.remaining_credits = 500
        await checks(box, 10)
        box.evolink.remaining_credits = 40
        await box.discord.wait_for(lambda: alerts(box, ops)[1:])
        await checks(box, 20)
    finally:
        for runner in runners:
            await runner.stop()
    found = alerts(box, ops)
    assert len(found) == 2, found
    assert "50 left" in found[0] and "40 left" in found[1]


async def test_no_checks_and_no_alert_without_a_threshold(box: Sandbox, bot_runner: BotRunner, ops: str) -> None:
    box.evolink.remaining_credits = 5
    bot = await bot_runner.start(alert_channel_id=int(ops), default_limits=UNLIMITED)
    assert bot.settings.credits_alert_below is None
    await start_upscale(box, url="https://example.com/a.mp4")
    assert box.evolink.credit_reads() == 0, "nothing to watch for: the balance is not even read"
    assert credit_tasks() == []
    assert alerts(box, ops) == []


async def test_a_paid_post_checks_the_balance_from_the_cache_when_fresh(
        box: Sandbox, bot_runner: BotRunner, ops: str) -> None:
    box.evolink.remaining_credits = 120
    bot = await bot_runner.start(alert_channel_id=int(ops), default_limits=UNLIMITED,
                                 credits_alert_below=100.0, credits_check_seconds=3600.0)
    assert (await bot.credits.read()).balance.remaining == 120  # the check at start-up
    await start_upscale(box, url="https://example.com/a.mp4")  # 28.8 credits: 91.2 left
    assert box.evolink.credit_reads() == 1, "the reading at start-up is fresh: reused, no second request"
    assert alerts(box, ops) == []

    bot.credits.cache_seconds = 0  # the reading is now stale: the next POST reads the balance again
    await start_upscale(box, url="https://example.com/b.mp4")  # 62.4 left
    [alert] = await box.discord.wait_for(lambda: alerts(box, ops))
    assert "Evolink credits are low: 62.4 left (alert below 100)" in alert
    assert box.evolink.credit_reads() == 2


async def test_unlimited_never_alerts(box: Sandbox, bot_runner: BotRunner, ops: str) -> None:
    box.evolink.remaining_credits, box.evolink.unlimited_credits = 0, True
    await bot_runner.start(alert_channel_id=int(ops), **WATCHING)
    await checks(box, 5)
    assert alerts(box, ops) == []


async def test_the_check_survives_errors_and_stops_on_close(
        box: Sandbox, bot_runner: BotRunner, ops: str, caplog: pytest.LogCaptureFixture) -> None:
    box.evolink.remaining_credits = 500
    box.evolink.inject("server_error", on="credits", times=2)  # a provider outage: logged, tried again
    bot = await bot_runner.start(alert_channel_id=int(ops), **WATCHING)
    real_set_flag = bot.storage.set_flag
    failures = [RuntimeError("database hiccup")]

    async def flaky_set_flag(name: str, on: bool, at: float) -> bool:
        if on and failures:  # the first check that finds the balance low meets a database error
            raise failures.pop()
        return await real_set_flag(name, on, at)

    bot.storage.set_flag = flaky_set_flag  # type: ignore[method-assign]
    box.evolink.remaining_credits = 50
    [alert] = await box.discord.wait_for(lambda: alerts(box, ops))
    assert "50 left" in alert
    assert not failures, "the check met the exception and went on"
    assert "the Evolink credits check failed" in caplog.text and "database hiccup" in caplog.text
    assert "could not read the Evolink credit balance" in caplog.text

    # Closing while a read hangs: the read is dropped at once, and nothing keeps running.
    box.evolink.inject("timeout", on="credits", times=1000)
    await checks(box, 1)
    async with asyncio.timeout(1.0):
        await bot.credits.stop()
    assert credit_tasks() == []
    await bot_runner.stop()
    assert credit_tasks() == []
    assert len(alerts(box, ops)) == 1


# ---- the flag in the database, and the settings ---------------------------------------------------------------------

@pytest.mark.backends("sqlite", "postgres")
async def test_set_flag_turns_over_once_and_ignores_older_readings(storage: Storage, storage_url: str) -> None:
    assert not await storage.set_flag(FLAG, False, 100.0), "flags start off"
    assert await storage.set_flag(FLAG, True, 110.0)
    assert not await storage.set_flag(FLAG, True, 120.0), "already on"
    assert not await storage.set_flag(FLAG, False, 115.0), "a reading older than the newest applied (120)"
    assert await storage.set_flag(FLAG, False, 130.0)
    assert not await storage.set_flag(FLAG, True, 125.0), "older than the re-arm"
    assert await storage.set_flag(FLAG, True, 140.0)

    # Several connections (processes) seeing the same crossing together: exactly one turns the flag over.
    others = [await open_storage(storage_url) for _ in range(3)]
    try:
        assert await storage.set_flag("other", False, 150.0) is False
        results = await asyncio.gather(*(store.set_flag("other", True, 160.0 + n) for n, store in enumerate(others)),
                                       storage.set_flag("other", True, 160.5))
        assert sum(results) == 1, results
    finally:
        for store in others:
            await store.close()


def test_credit_settings_are_validated() -> None:
    base = {"DISCORD_TOKEN": "t", "EVOLINK_API_KEY": "k"}
    settings = load_settings(base, dotenv_path=None)
    assert (settings.credits_alert_below, settings.credits_check_seconds) == (None, 600.0)
    settings = load_settings({**base, "CREDITS_ALERT_BELOW": "250.5", "CREDITS_CHECK_SECONDS": "60"}, dotenv_path=None)
    assert (settings.credits_alert_below, settings.credits_check_seconds) == (250.5, 60.0)
    assert load_settings({**base, "CREDITS_ALERT_BELOW": ""}, dotenv_path=None).credits_alert_below is None
    for name, raw in (("CREDITS_ALERT_BELOW", "lots"), ("CREDITS_ALERT_BELOW", "-1"), ("CREDITS_ALERT_BELOW", "nan"),
                      ("CREDITS_CHECK_SECONDS", "0.5"), ("CREDITS_CHECK_SECONDS", "ten")):
        with pytest.raises(ConfigError, match=name):
            load_settings({**base, name: raw}, dotenv_path=None)
