"""/upscale, /tasks and /task: parse the member's input, call the task service, render the reply.

`start_job` (acknowledge and reserve at once, the one paid POST, the task card) is shared with the "Upscale video"
context menu (cogs/context_menu.py), so both start a job the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.i18n import Phrase, _, t
from bot.messages import status_label, task_card, task_list
from bot.quota import QuotaExceeded
from bot.tasks import SubmissionFailed
from bot.text import CHOICE_MAX, CONTENT_MAX, clip
from bot.validation import AttachmentInfo, InputError, VideoSource, resolve_source, validate_scale

if TYPE_CHECKING:
    from bot.client import UpscaleBot
    from storage import TaskRecord

log = logging.getLogger(__name__)

SCALE_CHOICES = [
    app_commands.Choice(name=_("1× (enhance, same size)"), value=1),
    app_commands.Choice(name=_("2× (default)"), value=2),
    app_commands.Choice(name=_("4×"), value=4),
]


def refuse_outside_servers(bot: UpscaleBot, interaction: discord.Interaction, command: Phrase) -> None:
    """The DM rule of every way to start a job: in a DM only when the operator allows it (ALLOW_DM_UPSCALE).
    `command` is how the member knows the command (its name in their language)."""
    if interaction.guild_id is None and not bot.settings.allow_dm_upscale:
        raise InputError(_("{command} works in servers: run it in a server channel where the bot is."),
                         command=command)


def attachment_info(attachment: discord.Attachment) -> AttachmentInfo:
    """What the validation reads of a Discord attachment (the same fields whichever command brought it)."""
    return AttachmentInfo(filename=attachment.filename, content_type=attachment.content_type, size=attachment.size,
                          url=attachment.url)


async def start_job(bot: UpscaleBot, interaction: discord.Interaction, *, source: VideoSource, scale: int,
                    received_at: float) -> TaskRecord | None:
    """Start a validated job from an interaction not yet acknowledged (/upscale, or a scale button of the
    "Upscale video" menu): acknowledge and reserve the quota at once, make the one paid POST, and show the task
    card as the interaction's public original response, which the messenger edits through the interaction's token
    while it is fresh and with the bot token after.

    Returns the task, or None when the quota or the POST refused it (the member was told privately).
    """
    # Acknowledge and reserve at the same time: the defer answers Discord within its 3 s whatever the
    # database or Evolink do, and the row is written at once, so a crash right after the acknowledgement
    # still leaves a row that the next start resolves (the member is then told to try again).
    role_ids = tuple(role.id for role in getattr(interaction.user, "roles", ()))
    deferring = asyncio.create_task(interaction.response.defer(thinking=True))
    reserving = asyncio.create_task(bot.tasks.reserve(
        guild_id=interaction.guild_id, channel_id=interaction.channel_id or 0, user_id=interaction.user.id,
        source=source, scale=scale, role_ids=role_ids, locale=str(interaction.locale),
        guild_locale=str(interaction.guild_locale) if interaction.guild_locale else None))
    await asyncio.wait({deferring, reserving})
    if deferring.exception() is not None:
        if reserving.exception() is None:
            await bot.tasks.abandon(reserving.result(), "the interaction could not be acknowledged")
        raise deferring.exception()  # type: ignore[misc]
    try:
        task = await bot.tasks.send(await reserving)
    except (SubmissionFailed, QuotaExceeded) as failure:
        # The deferred reply is public; drop it so the reason can be private.
        try:
            await interaction.delete_original_response()
        except discord.HTTPException as error:
            log.info("could not delete the deferred reply (%s)", error.code)
        await interaction.followup.send(clip(f"❌ {failure.render(interaction.locale)}", CONTENT_MAX), ephemeral=True)
        return None
    bot.messenger.remember_interaction(task.id, interaction, received_at)
    message = await interaction.edit_original_response(embed=task_card(task, interaction.locale))
    latest = await bot.tasks.attach_card(task, message.id)
    if latest is not None and latest.notified_at is not None:
        # The poller told the member while the card was being sent: show the end state on it too.
        await interaction.edit_original_response(embed=task_card(latest, interaction.locale))
    return latest or task


class UpscaleCog(commands.Cog):
    def __init__(self, bot: UpscaleBot) -> None:
        self.bot = bot

    @app_commands.command(name=_("upscale"), description=_("Upscale a video (.mp4, up to 50 MB) with Topaz"))
    @app_commands.describe(video=_("An .mp4 file to upscale"), url=_("Or an https link to an .mp4 file"),
                           scale=_("How much larger (default 2×)"))
    @app_commands.rename(video=_("video"), url=_("url"), scale=_("scale"))
    @app_commands.choices(scale=SCALE_CHOICES)
    async def upscale(self, interaction: discord.Interaction, video: discord.Attachment | None = None,
                      url: str | None = None, scale: int = 2) -> None:
        received_at = time.monotonic()
        refuse_outside_servers(self.bot, interaction, Phrase(_("/upscale")))
        # Validation is on the text alone and takes microseconds, so an error can still be a private reply.
        source = resolve_source(attachment=None if video is None else attachment_info(video), url=url)
        scale = validate_scale(scale)
        await start_job(self.bot, interaction, source=source, scale=scale, received_at=received_at)

    @app_commands.command(name=_("tasks"), description=_("Your recent upscale jobs"))
    async def tasks(self, interaction: discord.Interaction) -> None:
        locale = interaction.locale
        records = await self.bot.tasks.user_tasks(interaction.user.id, limit=10)
        if not records:
            await interaction.response.send_message(
                t(locale, _("You have no upscale jobs yet. Start one with /upscale.")), ephemeral=True)
            return
        embed = discord.Embed(title=t(locale, _("Your recent upscale jobs")), description=task_list(records, locale))
        embed.set_footer(text=t(locale, _("Result links expire 24 hours after completion. /task id:<id> shows one "
                                          "job.")))
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @app_commands.command(name=_("task"), description=_("Show one of your upscale jobs"))
    @app_commands.describe(id=_("The task id (from /tasks or the task card)"))
    @app_commands.rename(id=_("id"))
    async def task(self, interaction: discord.Interaction, id: app_commands.Range[str, 1, 200]) -> None:
        record = await self.bot.tasks.find_user_task(interaction.user.id, id)
        if record is None:
            await interaction.response.send_message(
                t(interaction.locale, _("None of your jobs has that id. /tasks lists your recent jobs.")),
                ephemeral=True)
            return
        await interaction.response.send_message(embed=task_card(record, interaction.locale), ephemeral=True)

    @task.autocomplete("id")
    async def task_id_autocomplete(self, interaction: discord.Interaction,
                                   current: str) -> list[app_commands.Choice[str]]:
        records = await self.bot.tasks.user_tasks(interaction.user.id, limit=25, prefix=current.strip())
        # Discord refuses a choice over 100 characters; our own number stands in for a longer upstream id.
        return [
            app_commands.Choice(name=clip(f"{task.display_id} · {status_label(task.status, interaction.locale)} · "
                                          f"{task.scale}×", CHOICE_MAX),
                                value=task.display_id if len(task.display_id) <= CHOICE_MAX else f"#{task.id}")
            for task in records
        ]


async def setup(bot: UpscaleBot) -> None:
    await bot.add_cog(UpscaleCog(bot))
