"""Exactly once, counted in send attempts rather than messages.

The fake Discord answers a repeated `enforce_nonce` with the message it already has, so one message per task
cannot tell a notifier that sends once from one that sends twice. These tests count every POST of a message
per (task, kind of message) instead: one DM attempt and one channel attempt per finished task, also across a
SIGKILL and restart. Only the window the README names (a crash between a send and its record) may show a
second attempt, with the same nonce and still one message.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from bot.config import LIMIT_NAMES
from sandbox.offline import Sandbox
from sandbox.process import BotProcess
from tests.helpers import DeliveryWatch, mentions, send_attempts, start_upscale, stored_task, wait_told

pytestmark = pytest.mark.backends("sqlite", "postgres")

RESULT = "https://cdn.evolink.ai/sample/exactly-once.mp4"
UNLIMITED = dict.fromkeys(LIMIT_NAMES)
FAST = {"poll_min_seconds": 0.05, "poll_max_seconds": 0.2}  # query often: the tests wait on events, not the clock
FAST_ENV = {"POLL_MIN_SECONDS": "0.05", "POLL_MAX_SECONDS": "0.2"}


def _once(*task_ids: int) -> Counter[tuple[int | None, str]]:
    """What a correct notifier sends for these tasks: one DM attempt and one channel attempt each, nothing else."""
    return Counter({key: 1 for task_id in task_ids for key in ((task_id, "d"), (task_id, "c"))})


async def _number(bot: Any, upstream_id: str) -> int:
    record = await bot.storage.get_task_by_upstream_id(upstream_id)
    assert record is not None
    return record.id


@pytest.mark.parametrize("end", ["complete", "fail", "expire"])
async def test_each_way_a_task_ends_sends_one_dm_and_one_channel_post(box: Sandbox, bot_runner: Any,
                                                                     end: str) -> None:
    bot = await bot_runner.start(**FAST)
    watch = DeliveryWatch(bot)
    _, task_id = await start_upscale(box, url="https://example.com/clip.mp4")
    {"complete": lambda: box.evolink.complete(task_id, RESULT), "fail": lambda: box.evolink.fail(task_id),
     "expire": lambda: box.evolink.expire(task_id)}[end]()
    await watch.told(task_id)
    assert send_attempts(box) == _once(await _number(bot, task_id))
    assert len(mentions(box, box.channel_id, box.alice_id)) == 1 and len(box.discord.dm_messages(box.alice_id)) == 1


async def test_a_refused_dm_is_tried_once_and_the_channel_post_once(box: Sandbox, bot_runner: Any) -> None:
    bot = await bot_runner.start(**FAST)
    watch = DeliveryWatch(bot)
    box.discord.set_dms_open(box.alice_id, False)
    _, task_id = await start_upscale(box, url="https://example.com/clip.mp4")
    box.evolink.complete(task_id, RESULT)
    await watch.told(task_id)
    number = await _number(bot, task_id)
    assert send_attempts(box) == _once(number), "the 403 50007 is not retried"
    assert send_attempts(box, accepted_only=True) == Counter({(number, "c"): 1})


async def test_several_tasks_ending_together_each_send_once(box: Sandbox, bot_runner: Any) -> None:
    bot = await bot_runner.start(default_limits=UNLIMITED, **FAST)
    watch = DeliveryWatch(bot)
    started = [await start_upscale(box, user_id=user, url=f"https://example.com/clip{i}.mp4")
               for i, user in enumerate((box.alice_id, box.alice_id, box.bob_id, box.bob_id))]
    task_ids = [task_id for _, task_id in started]
    for i, task_id in enumerate(task_ids):
        if i % 2:
            box.evolink.fail(task_id)
        else:
            box.evolink.complete(task_id, RESULT)
    for task_id in task_ids:
        await watch.told(task_id)
    assert send_attempts(box) == _once(*[await _number(bot, task_id) for task_id in task_ids])
    assert len(box.discord.dm_messages(box.alice_id)) == 2 and len(box.discord.dm_messages(box.bob_id)) == 2


# ---- across a SIGKILL and a restart of the bot process -----------------------------------------------------------

async def test_killed_after_the_dm_was_recorded_the_restart_posts_in_the_channel_and_never_dms_again(
        box: Sandbox, bot_process: Callable[..., BotProcess], database_url: str) -> None:
    """The channel POST is refused with a long 429, so discord.py sleeps inside the send: the kill lands after the
    DM was sent and recorded and before any channel message exists."""
    first = bot_process(**FAST_ENV)
    await first.start_connected(box.discord)
    _, task_id = await start_upscale(box, url="https://example.com/clip.mp4")
    channel_posts = rf"^/channels/{box.channel_id}/messages$"
    box.discord.inject("POST", channel_posts, 429, retry_after=60)
    box.evolink.complete(task_id, RESULT)
    await box.discord.wait_for(lambda: any(r.status == 429 for r in box.discord.find_requests("POST", channel_posts)),
                               timeout=30, what="the refused channel post")
    await first.kill()
    row = await stored_task(database_url, task_id)
    assert (row.dm_state, row.channel_state, row.notified_at) == ("sent", None, None), \
        "the DM is recorded as soon as it succeeded, before the channel post"
    assert mentions(box, box.channel_id, box.alice_id) == []

    second = bot_process(**FAST_ENV)
    await second.start_connected(box.discord)
    await wait_told(box, box.alice_id, RESULT)
    number = row.id
    # On PostgreSQL the restarted process takes the task over once the killed one's lease runs out.
    await box.discord.wait_for(lambda: send_attempts(box)[(number, "c")] >= 2, timeout=30)
    assert await second.terminate() == 0, second.output()

    assert send_attempts(box) == Counter({(number, "d"): 1, (number, "c"): 2}), "the DM was not sent again"
    assert send_attempts(box, accepted_only=True) == _once(number)
    assert len(mentions(box, box.channel_id, box.alice_id)) == 1 and len(box.discord.dm_messages(box.alice_id)) == 1
    assert (await stored_task(database_url, task_id)).notified_at is not None


@pytest.mark.parametrize("step", ["d", "c"])
async def test_a_crash_between_a_send_and_its_record_gives_two_attempts_of_one_nonce_and_one_message(
        box: Sandbox, bot_process: Callable[..., BotProcess], database_url: str, step: str) -> None:
    """The README's one window: Discord created the message, the bot died before recording it. The restart sends
    that one message again with the same nonce (2 attempts, 1 message); the other message is sent once."""
    first = bot_process(**FAST_ENV)
    await first.start_connected(box.discord)
    _, task_id = await start_upscale(box, url="https://example.com/clip.mp4")
    target = box.discord.dm_channel_id(box.alice_id) if step == "d" else box.channel_id
    hold = box.discord.hold("POST", rf"^/channels/{target}/messages$")
    box.evolink.complete(task_id, RESULT)
    await box.discord.wait_for(lambda: hold.held == 1, timeout=30, what="the held send")
    await first.kill()
    hold.release()
    row = await stored_task(database_url, task_id)
    assert getattr(row, {"d": "dm_state", "c": "channel_state"}[step]) is None, "killed before the record"

    second = bot_process(**FAST_ENV)
    await second.start_connected(box.discord)
    await wait_told(box, box.alice_id, RESULT)
    number = row.id
    other = "c" if step == "d" else "d"
    # The resend, and the other message: on PostgreSQL after the killed process's lease ran out.
    await box.discord.wait_for(lambda: send_attempts(box)[(number, step)] >= 2
                               and send_attempts(box)[(number, other)] >= 1, timeout=30)
    assert await second.terminate() == 0, second.output()

    attempts = send_attempts(box)
    assert attempts == Counter({(number, step): 2, (number, other): 1}), attempts
    nonces = {r.json["nonce"] for r in box.discord.find_requests("POST", rf"^/channels/{target}/messages$")}
    assert len(nonces) == 1, "the resend carries the same nonce"
    assert len(mentions(box, box.channel_id, box.alice_id)) == 1 and len(box.discord.dm_messages(box.alice_id)) == 1
    told = await stored_task(database_url, task_id)
    assert told.notified_at is not None and (told.dm_state, told.channel_state) == ("sent", "sent")


async def test_a_member_told_before_a_restart_is_not_told_again(
        box: Sandbox, bot_process: Callable[..., BotProcess], database_url: str) -> None:
    first = bot_process(**FAST_ENV)
    await first.start_connected(box.discord)
    _, told = await start_upscale(box, url="https://example.com/clip.mp4")
    box.evolink.complete(told, RESULT)
    await wait_told(box, box.alice_id, RESULT)
    assert await first.terminate() == 0, first.output()  # a clean stop: notified_at is written
    number = (await stored_task(database_url, told)).id

    second = bot_process(**FAST_ENV)
    await second.start_connected(box.discord)
    # Another member's whole job runs on the restarted bot: its poller had every chance to resend.
    _, other = await start_upscale(box, user_id=box.bob_id, url="https://example.com/other.mp4")
    box.evolink.complete(other, RESULT)
    await wait_told(box, box.bob_id, RESULT)
    assert await second.terminate() == 0, second.output()
    assert send_attempts(box) == _once(number, (await stored_task(database_url, other)).id)
