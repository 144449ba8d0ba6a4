"""A member's file name is quoted in the result post and the DM; it must not ping anyone.

A file or link named "@everyone <@&role> @here <@other>.mp4" ends up in the text the bot posts. Only
allowed_mentions decides what Discord pings, so the posts must permit the member's own mention and nothing else.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from sandbox.fake_discord_rules import compute_mentions
from sandbox.offline import Sandbox
from tests.helpers import DeliveryWatch, start_upscale

RESULT = "https://cdn.evolink.ai/sample/mentions.mp4"


def _sent(box: Sandbox, kind: str) -> Any:
    """The one accepted POST of this kind of message (nonce ending in d or c)."""
    [request] = [r for r in box.discord.find_requests("POST", r"^/channels/\d+/messages$")
                 if 200 <= r.status < 300 and str((r.json or {}).get("nonce", "")).endswith(kind)]
    return request


def _stored(box: Sandbox, channel_id: str, content: str) -> dict[str, Any]:
    [message] = [m for m in box.discord.channel_messages(channel_id) if m["content"] == content]
    return message


@pytest.mark.parametrize("source", ["attachment", "url"])
async def test_a_hostile_file_name_pings_only_the_member(box: Sandbox, bot_runner: Any, source: str) -> None:
    bot = await bot_runner.start(poll_min_seconds=0.05, poll_max_seconds=0.2)
    watch = DeliveryWatch(bot)
    role = box.discord.add_role(box.guild_id, "moderators")
    if source == "attachment":
        name = f"@everyone <@&{role}> @here <@{box.bob_id}>.mp4"
        # The CDN link is percent-encoded, as Discord serves it; the file name is shown as the member gave it.
        video = box.discord.make_attachment(name, url=f"https://cdn.discordapp.com/attachments/1/2/{quote(name)}")
        _, task_id = await start_upscale(box, video=video)
        box.evolink.complete(task_id, RESULT)
    else:
        _, task_id = await start_upscale(box, url=f"https://v.io/@everyone%20%3C@&{role}%3E%20@here.mp4")
        box.evolink.fail(task_id)
    await watch.told(task_id)

    post, dm = _sent(box, "c"), _sent(box, "d")
    content = post.json["content"]
    unguarded = compute_mentions(content, None, known_user=lambda user_id: True, guild_roles={role})
    assert unguarded.everyone and unguarded.roles == [role], "the post quotes the hostile name (else no proof)"

    allowed = post.json.get("allowed_mentions")
    assert allowed is not None, "the channel post carries allowed_mentions"
    assert allowed.get("parse") == [], "no @everyone/@here, no role or user parsed from the text"
    assert [str(u) for u in allowed.get("users") or []] == [box.alice_id], "only the member"
    assert not allowed.get("roles")
    stored = _stored(box, box.channel_id, content)
    assert stored["mention_everyone"] is False and stored["mention_roles"] == []
    assert [u["id"] for u in stored["mentions"]] == [box.alice_id]

    dm_allowed = dm.json.get("allowed_mentions")
    assert dm_allowed is not None, "the DM carries allowed_mentions"
    assert dm_allowed.get("parse") == [] and not dm_allowed.get("roles")
    assert {str(u) for u in dm_allowed.get("users") or []} <= {box.alice_id}
    dm_stored = _stored(box, box.discord.dm_channel_id(box.alice_id), dm.json["content"])
    assert dm_stored["mention_everyone"] is False and dm_stored["mention_roles"] == []
    assert {u["id"] for u in dm_stored["mentions"]} <= {box.alice_id}
