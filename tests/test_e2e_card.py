"""The task card: progress edits are throttled, and leave the interaction before its token expires."""

from __future__ import annotations

import itertools
import re
from typing import Any

from sandbox.offline import Sandbox
from tests.helpers import DeliveryWatch, embed_text, start_upscale, wait_told

RESULT = "https://cdn.evolink.ai/sample/card.mp4"


def _card_edits(box: Sandbox) -> list[Any]:
    return [r for r in box.discord.requests if r.method == "PATCH" and r.status == 200
            and re.search(r"/messages/(@original|\d+)$", r.path)]


async def test_progress_edits_are_throttled_and_never_use_an_expired_token(box: Sandbox, bot_runner: Any) -> None:
    await bot_runner.start(card_edit_seconds=0.4, interaction_edit_window_seconds=1.5)
    interaction, task_id = await start_upscale(box, url="https://example.com/clip.mp4")
    progress = 0
    # Keep the task moving until the card has been edited with the bot token, i.e. past the edit window.
    while not any(r.path.startswith("/channels/") for r in _card_edits(box)):
        progress += 5
        assert progress < 100, "the card never moved off the interaction"
        box.evolink.set_progress(task_id, progress)
        await box.discord.wait_for(lambda p=progress: f" {p}%" in embed_text(interaction.original), timeout=15)
        if any(r.path.startswith("/channels/") for r in _card_edits(box)):
            box.discord.advance(901)  # the interaction token is now expired at the fake too
    box.evolink.complete(task_id, RESULT)
    await wait_told(box, box.alice_id, RESULT)
    await box.discord.wait_for(lambda: "Completed" in embed_text(interaction.original))

    edits = _card_edits(box)
    progress_edits = edits[:-1]  # the last one is the final card, sent when the task ended
    gaps = [b.at - a.at for a, b in itertools.pairwise(progress_edits)]
    assert gaps and min(gaps) >= 0.4 - 0.05, gaps
    first_channel_edit = next(i for i, r in enumerate(edits) if r.path.startswith("/channels/"))
    assert all(r.path.startswith("/webhooks/") for r in edits[:first_channel_edit])
    assert all(r.path.startswith("/channels/") for r in edits[first_channel_edit:]), "never back to the token"
    assert not [r for r in box.discord.requests if r.status == 401], "no call with an expired token"


async def test_a_deleted_card_is_replaced_once_and_the_result_still_lands(box: Sandbox, bot_runner: Any) -> None:
    bot = await bot_runner.start(card_edit_seconds=0.0, interaction_edit_window_seconds=0.0)
    watch = DeliveryWatch(bot)
    interaction, task_id = await start_upscale(box, url="https://example.com/clip.mp4")
    box.discord.delete_message(box.channel_id, interaction.original["id"])

    def new_cards() -> list[dict]:
        return [m for m in box.discord.channel_messages(box.channel_id)
                if m.get("embeds") and not m.get("_interaction_id") and task_id in embed_text(m)]

    box.evolink.set_progress(task_id, 50)
    [card] = await box.discord.wait_for(new_cards)
    assert "50%" in embed_text(card)
    box.evolink.set_progress(task_id, 60)
    await box.discord.wait_for(lambda: "60%" in embed_text(new_cards()[0]))

    box.discord.delete_message(box.channel_id, card["id"])  # deleted again: stop showing progress
    box.evolink.set_progress(task_id, 70)
    await box.discord.wait_for(lambda: any(r.status == 404 and r.path.endswith(card["id"])
                                           for r in _all_card_patches(box)))
    box.evolink.complete(task_id, RESULT)
    await wait_told(box, box.alice_id, RESULT)
    await watch.told(task_id)
    record = await bot.storage.get_task_by_upstream_id(task_id)
    assert record is not None and record.card_state == "gone"
    assert len(new_cards()) == 0, "replaced once, not again"
    patches_after_gone = [r for r in _all_card_patches(box) if r.path.endswith(card["id"])]
    assert len([r for r in patches_after_gone if r.status == 404]) == 1, "no more edits of a card that is gone"


def _all_card_patches(box: Sandbox) -> list[Any]:
    return [r for r in box.discord.requests if r.method == "PATCH" and r.path.startswith("/channels/")]
