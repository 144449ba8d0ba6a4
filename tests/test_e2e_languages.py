"""End to end: each member reads the bot in their Discord client's language, the public result post is in the
server's, unknown languages get English, and the commands carry Korean localisations Discord accepts.

Korean texts are compared with the catalogue (bot.i18n.t), so the tests say which text appeared, not how it is
worded; a text that stayed English fails them.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from bot.client import UpscaleBot
from bot.i18n import t, translate
from bot.messages import status_label
from sandbox.offline import Sandbox
from tests.helpers import embed_text, stored_task, upscale_to_the_end

pytestmark = pytest.mark.backends("sqlite", "postgres")

EPHEMERAL = 1 << 6
MANAGE_GUILD = 1 << 5
RESULT = "https://cdn.evolink.ai/sample/languages.mp4"
HANGUL = re.compile(r"[\uac00-\ud7a3]")
READY = "{who}your upscale {id} ({scale}×, {source}) is ready:"


def ready_line(locale: str, mention: str, display_id: str) -> str:
    """The first line of a result message, as the catalogue words it in `locale`."""
    return t(locale, READY, who=mention, id=f"`{display_id}`", scale=2, source="example.com/clip.mp4")


async def private(box: Sandbox, name: str, user_id: str, *, subcommand: list[str] | None = None,
                  locale: str | None = None, **options: Any) -> str:
    """Run a command expecting an immediate private answer; return its text (content and embeds)."""
    interaction = await box.discord.slash(name, user_id=user_id, channel_id=box.channel_id, guild_id=box.guild_id,
                                          options=options, subcommand=subcommand, locale=locale)
    ack = await interaction.wait_ack()
    assert ack["type"] == 4 and ack["data"]["flags"] & EPHEMERAL, f"/{name} answers at once, privately"
    return embed_text(ack["data"])


async def test_a_korean_member_in_an_english_server(box: Sandbox, bot: UpscaleBot, database_url: str) -> None:
    box.discord.set_user_locale(box.alice_id, "ko")
    interaction, task_id, post, dm = await upscale_to_the_end(box, bot, RESULT, box.alice_id)
    row = await stored_task(database_url, task_id)
    assert (row.locale, row.guild_locale) == ("ko", "en-US"), "both languages are kept on the task"

    card = embed_text(interaction.original)
    assert status_label("completed", "ko") in card and t("ko", "Status") in card, "the card in her language"
    assert "Status" not in card
    assert dm["content"].startswith(ready_line("ko", "", row.display_id)), "her DM in Korean"
    assert dm["components"][0]["components"][0]["label"] == t("ko", "Download") != "Download"
    assert post["content"].startswith(ready_line("en", f"<@{box.alice_id}> ", row.display_id)), \
        "the public post in the server's language"
    assert not HANGUL.search(post["content"]) and post["components"][0]["components"][0]["label"] == "Download"

    listing = await private(box, "tasks", box.alice_id)
    assert t("ko", "Your recent upscale jobs") in listing and status_label("completed", "ko") in listing
    assert t("ko", "Your recent upscale jobs") != "Your recent upscale jobs"


async def test_a_korean_server_gets_korean_posts_and_an_english_member_english_dms(
        box: Sandbox, bot: UpscaleBot, database_url: str) -> None:
    box.discord.set_guild_locale(box.guild_id, "ko")
    await box.discord.wait_for(lambda: str(bot.get_guild(int(box.guild_id)).preferred_locale) == "ko")
    interaction, task_id, post, dm = await upscale_to_the_end(box, bot, RESULT, box.bob_id)
    row = await stored_task(database_url, task_id)
    assert (row.locale, row.guild_locale) == ("en-US", "ko")
    assert post["content"].startswith(ready_line("ko", f"<@{box.bob_id}> ", row.display_id)), "the post in Korean"
    assert HANGUL.search(post["content"])
    assert dm["content"].startswith(ready_line("en", "", row.display_id)) and not HANGUL.search(dm["content"])
    assert "Completed" in embed_text(interaction.original), "his card in his language"


async def test_a_member_whose_language_has_no_catalogue_reads_english(box: Sandbox, bot: UpscaleBot) -> None:
    box.discord.set_user_locale(box.alice_id, "fr")
    interaction, _, post, dm = await upscale_to_the_end(box, bot, RESULT, box.alice_id)
    assert not HANGUL.search(post["content"])
    assert "Completed" in embed_text(interaction.original)
    assert "is ready" in dm["content"] and not HANGUL.search(dm["content"] + embed_text(interaction.original))
    assert "You have no upscale jobs yet" in await private(box, "tasks", box.bob_id, locale="pt-BR")


async def test_refusals_in_the_members_language(box: Sandbox, bot: UpscaleBot) -> None:
    bad = {"url": "http://example.com/clip.mp4"}
    korean = await private(box, "upscale", box.alice_id, locale="ko", **bad)
    assert korean == "⚠️ " + t("ko", "That link must start with https://."), korean
    english = await private(box, "upscale", box.alice_id, locale="en-GB", **bad)
    assert english == "⚠️ That link must start with https://."
    assert await private(box, "dms", box.alice_id, locale="ko", results="off") == t(
        "ko", "📭 Result DMs are **off**: results come only in the channel where you started the job "
              "(jobs started in a DM with the bot are still answered there).")
    no_admin = await private(box, "quota", box.alice_id, subcommand=["log"], locale="ko")
    assert no_admin == "⚠️ " + t("ko", "You need the Manage Server permission to use /quota.")
    assert f"/{translate('ko', 'quota')}" in no_admin, "the command as her client names it"


async def test_a_quota_refusal_names_the_limit_in_the_members_language(box: Sandbox, bot: UpscaleBot) -> None:
    admin = box.discord.add_member(box.guild_id, "admin", permissions=MANAGE_GUILD)
    await private(box, "quota", admin, subcommand=["set"], limit="user_daily_jobs", value=0)
    interaction = await box.discord.slash("upscale", user_id=box.alice_id, channel_id=box.channel_id,
                                          guild_id=box.guild_id, options={"url": "https://example.com/clip.mp4"},
                                          locale="ko")
    await interaction.wait_ack()
    reply = await box.discord.wait_for(lambda: next(
        (m for m in interaction.followups if m["flags"] & EPHEMERAL), None))
    reset = re.search(r"<t:\d+:R> \(<t:\d+:f>\)", reply["content"])
    assert reset, "Discord renders the reset time in her language and time zone"
    assert reply["content"] == "❌ " + t("ko", "You have started your {value} job(s) for today. You can start "
                                              "another {reset}.", value=0, reset=reset.group(0))
    assert HANGUL.search(reply["content"])


async def test_a_member_option_naming_someone_not_in_the_server(box: Sandbox, bot: UpscaleBot) -> None:
    """discord.py cannot make a Member of someone outside the server: a short private reply in the admin's
    language, not discord.py's "Failed to convert ..."."""
    admin = box.discord.add_member(box.guild_id, "admin", permissions=MANAGE_GUILD)
    elsewhere = box.discord.add_member(box.discord.add_guild("Another Server"), "stranger")
    korean = await private(box, "quota", admin, subcommand=["show"], locale="ko", member=elsewhere)
    assert korean == "⚠️ " + t("ko", "That member is not in this server (any more): choose someone from the list.")
    english = await private(box, "quota", admin, subcommand=["block"], member=elsewhere)
    assert english == "⚠️ That member is not in this server (any more): choose someone from the list."


async def test_the_quota_log_speaks_each_admins_language(box: Sandbox, bot: UpscaleBot) -> None:
    admin = box.discord.add_member(box.guild_id, "admin", permissions=MANAGE_GUILD)
    said = await private(box, "quota", admin, subcommand=["set"], locale="ko", limit="user_daily_jobs", value=3)
    assert said.startswith("✅ ") and HANGUL.search(said) and "`user_daily_jobs`" in said
    await private(box, "quota", admin, subcommand=["block"], locale="ko", member=box.bob_id, reason="스팸")
    korean = await private(box, "quota", admin, subcommand=["log"], locale="ko")
    english = await private(box, "quota", admin, subcommand=["log"], locale="en-US")
    assert t("ko", "set {name} = {value}", name="user_daily_jobs", value=3) in korean
    assert t("ko", "blocked {member}: {reason}", member=f"<@{box.bob_id}>", reason="스팸") in korean
    assert "set user_daily_jobs = 3" in english and f"blocked <@{box.bob_id}>: 스팸" in english
    assert t("ko", "Quota changes") in korean and "Quota changes" in english


async def test_usage_and_quota_reports_in_korean(box: Sandbox, bot: UpscaleBot) -> None:
    admin = box.discord.add_member(box.guild_id, "admin", permissions=MANAGE_GUILD)
    usage = await private(box, "usage", box.alice_id, locale="ko")
    assert t("ko", "Your upscale usage") in usage and t("ko", "Jobs today") in usage
    assert "Jobs today" not in usage and "left of" not in usage
    shown = await private(box, "quota", admin, subcommand=["show"], locale="ko")
    assert t("ko", "Quota limits in this server") in shown and t("ko", "operator default") in shown
    assert "`user_daily_jobs`" in shown and "operator default" not in shown, "limit names stay as admins type them"
    report = await private(box, "quota", admin, subcommand=["usage"], locale="ko")
    assert t("ko", "Upscale usage in this server") in report and t("ko", "nobody yet") in report
    assert t("ko", "Provider credits (the whole bot)") in report and "credits" not in report


async def test_the_context_menu_prompt_in_korean(box: Sandbox, bot: UpscaleBot) -> None:
    message = box.discord.post_user_message(box.channel_id, box.alice_id, "",
                                            attachments=[box.discord.make_attachment("clip.mp4")])
    interaction = await box.discord.message_command("Upscale video", user_id=box.alice_id, channel_id=box.channel_id,
                                                    message=message, guild_id=box.guild_id, locale="ko")
    ack = await interaction.wait_ack()
    content = ack["data"]["content"]
    assert content.startswith("🎬 **clip.mp4**\n") and t(
        "ko", "Choose the scale to start the upscale ({scale}× is the usual choice). Only you see this; the buttons "
              "work for {minutes} min.", scale=2, minutes=10) in content


def _localised(entries: list[dict[str, Any]], where: str) -> list[str]:
    """What lacks a Korean name or description among commands, options and choices (recursively)."""
    missing = []
    for entry in entries:
        path = f"{where}{entry['name']}"
        if translate("ko", entry["name"]) != (entry.get("name_localizations") or {}).get("ko"):
            missing.append(f"{path} name")
        if entry.get("description") and \
                translate("ko", entry["description"]) != (entry.get("description_localizations") or {}).get("ko"):
            missing.append(f"{path} description")
        for choice in entry.get("choices") or []:
            if not (choice.get("name_localizations") or {}).get("ko"):
                missing.append(f"{path} choice {choice['name']}")
        missing += _localised(entry.get("options") or [], f"{path} ")
    return missing


async def test_every_command_option_and_choice_has_a_korean_localisation(box: Sandbox, bot: UpscaleBot) -> None:
    """Synced through the fake, which refuses what Discord refuses (names, lengths, locales): accepted here."""
    synced = box.discord.commands[box.guild_id]
    assert {c["name"] for c in synced} >= {"upscale", "tasks", "task", "usage", "dms", "quota", "Upscale video"}
    assert _localised(synced, "/") == []
    names = {c["name"]: c["name_localizations"]["ko"] for c in synced}
    assert names["upscale"] == t("ko", "upscale") and HANGUL.search(names["upscale"])
    assert HANGUL.search(names["Upscale video"])
