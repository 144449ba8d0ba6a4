"""The task-card throttle: progress edits at most every CARD_EDIT_SECONDS, however often progress changes.

Discord rate-limits edits of one message, and a busy server has many cards. The control case (no throttle)
shows the same progress changes do edit the card, so the throttled case is not passing because nothing edits.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from sandbox.offline import Sandbox
from tests.helpers import DeliveryWatch, embed_text, start_upscale

RESULT = "https://cdn.evolink.ai/sample/throttle.mp4"
STEPS = (10, 20, 30, 40)


def _card_edits(box: Sandbox, since: int) -> list[Any]:
    """Accepted edits of a message (the card, through the interaction or with the bot token) after `since`."""
    return [r for r in box.discord.requests[since:] if r.method == "PATCH" and 200 <= r.status < 300
            and re.search(r"/messages/(@original|\d+)$", r.path)]


@pytest.mark.parametrize(("card_edit_seconds", "progress_edits"), [(3600.0, 0), (0.0, len(STEPS))])
async def test_progress_edits_of_the_card_follow_card_edit_seconds(box: Sandbox, bot_runner: Any,
                                                                   card_edit_seconds: float,
                                                                   progress_edits: int) -> None:
    bot = await bot_runner.start(card_edit_seconds=card_edit_seconds, poll_min_seconds=0.05, poll_max_seconds=0.1)
    watch = DeliveryWatch(bot)
    interaction, task_id = await start_upscale(box, url="https://example.com/clip.mp4")
    since = len(box.discord.requests)  # the card itself is in place: count only what the notifier edits
    for progress in STEPS:
        box.evolink.set_progress(task_id, progress)
        seen = box.evolink.queries(task_id)
        # Query seen+1 returns the new progress; seen+2 starts only after the poller finished with it.
        await box.evolink.wait_for(lambda seen=seen: box.evolink.queries(task_id) >= seen + 2)
    assert len(_card_edits(box, since)) == progress_edits
    if progress_edits:
        assert f"{STEPS[-1]}%" in embed_text(interaction.original)
    else:
        assert "Queued" in embed_text(interaction.original), "the card still shows what it showed at first"

    box.evolink.complete(task_id, RESULT)
    await watch.told(task_id)
    edits = _card_edits(box, since)
    assert len(edits) == progress_edits + 1, "the last card edit, when the task ends, is never throttled"
    assert "Completed" in embed_text(interaction.original)
