"""End to end: bad input and upstream errors give a clear private reply, and nothing is lost or left pending."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bot.client import UpscaleBot
from sandbox.offline import Sandbox


def _attachment(box: Sandbox, **kwargs: Any) -> dict[str, Any]:
    return box.discord.make_attachment(**kwargs)


BAD_INPUT = [
    # (options, a word the reply must contain)
    ({}, "video"),
    ({"url": "https://example.com/a.mp4", "video": ("clip.mp4", {})}, "either"),
    ({"url": "http://example.com/a.mp4"}, "https"),
    ({"url": "ftp://example.com/a.mp4"}, "https"),
    ({"url": "https://example.com/" + "a" * 2100 + ".mp4"}, "long"),
    ({"url": "https://example.com/video.mov"}, ".mp4"),
    ({"url": "https://example.com/watch?v=clip.mp4"}, ".mp4"),
    ({"url": "https://localhost/a.mp4"}, "localhost"),
    ({"url": "https://media.localhost/a.mp4"}, "localhost"),
    ({"url": "https://127.0.0.1/a.mp4"}, "address"),
    ({"url": "https://10.1.2.3/a.mp4"}, "address"),
    ({"url": "https://172.16.5.4/a.mp4"}, "address"),
    ({"url": "https://192.168.1.10/a.mp4"}, "address"),
    ({"url": "https://169.254.169.254/a.mp4"}, "address"),
    ({"url": "https://0.0.0.0/a.mp4"}, "address"),
    ({"url": "https://[::1]/a.mp4"}, "address"),
    ({"url": "https://user:pass@example.com/a.mp4"}, "password"),
    ({"url": "https://2130706433/a.mp4"}, "domain"),
    ({"video": ("clip.mov", {"content_type": "video/quicktime"})}, ".mp4"),
    ({"video": ("clip.mp4", {"content_type": "image/png"})}, "video"),
    ({"video": ("clip.mp4", {"size": 50_000_001})}, "50 MB"),
    ({"url": "https://example.com/a.mp4", "scale": 3}, "scale"),
]


@pytest.mark.parametrize(("options", "word"), BAD_INPUT, ids=[str(i) for i in range(len(BAD_INPUT))])
async def test_bad_input_gets_a_private_error_and_no_upstream_call(box: Sandbox, bot: UpscaleBot,
                                                                   options: dict[str, Any], word: str) -> None:
    options = dict(options)
    if "video" in options:
        filename, extra = options["video"]
        options["video"] = _attachment(box, filename=filename, **extra)
    interaction = await box.discord.slash("upscale", user_id=box.alice_id, channel_id=box.channel_id,
                                          guild_id=box.guild_id, options=options, strict=False)
    ack = await interaction.wait_ack()
    assert ack["type"] == 4, "answered at once, not deferred"
    assert ack["data"]["flags"] & 64, "the error is private"
    assert word.lower() in ack["data"]["content"].lower()
    assert box.evolink.requests == [], "no upstream call for bad input"
    assert await bot.storage.user_tasks(int(box.alice_id), 10) == []


UPSTREAM_ERRORS = [
    ("bad_request", "refused this video", logging.WARNING),
    ("unauthorized", "misconfigured", logging.ERROR),
    ("no_credits", "out of credits", logging.ERROR),
    ("forbidden", "misconfigured", logging.ERROR),
    ("too_large", "50 MB", logging.WARNING),
    ("rate_limit", "busy", logging.WARNING),
    ("server_error", "trouble", logging.WARNING),
    ("html_error", "trouble", logging.WARNING),
    ("timeout", "did not answer in time", logging.WARNING),
    ("malformed_json", "did not understand", logging.WARNING),
]


@pytest.mark.parametrize(("fault", "words", "level"), UPSTREAM_ERRORS, ids=[f for f, _, _ in UPSTREAM_ERRORS])
async def test_upstream_submission_errors_get_specific_private_replies(
        box: Sandbox, bot_runner: Any, caplog: pytest.LogCaptureFixture, fault: str, words: str,
        level: int) -> None:
    bot = await bot_runner.start(evolink_timeout_seconds=0.5)
    box.evolink.inject(fault, on="submit")
    caplog.set_level(logging.INFO)
    interaction = await box.discord.slash("upscale", user_id=box.alice_id, channel_id=box.channel_id,
                                          guild_id=box.guild_id, options={"url": "https://example.com/a.mp4"})
    assert (await interaction.wait_ack())["type"] == 5
    assert interaction.ack_latency < 3, "acknowledged at once, whatever upstream does"
    reply = await box.discord.wait_for(lambda: next((m for m in interaction.followups if m["flags"] & 64), None))
    assert words in reply["content"]
    assert interaction.original is None, "the public 'thinking' reply was removed"
    posts = [r for r in box.evolink.requests if r.method == "POST"]
    assert len(posts) == 1, "the paid POST is never retried"
    [task] = await bot.storage.user_tasks(int(box.alice_id), 10)
    assert task.status == "failed" and task.next_poll_at is None, "a failed row, not a ghost pending one"
    records = [r for r in caplog.records if r.name == "bot.tasks" and "submission failed" in r.getMessage()]
    assert records and records[0].levelno == level
    assert box.evolink.api_key not in caplog.text
