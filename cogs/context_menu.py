"""The "Upscale video" message context menu: on a message with an .mp4 attached, offer the scale privately, then
start the job exactly as /upscale does (the same checks, quota, paid POST and task card: cogs.upscale.start_job).

Why a private prompt: a context menu has no options, and the member should see which file will be upscaled and
pick the scale before anything is reserved or paid. The card itself is public, like /upscale's, because only a
normal channel message can still be edited with the bot token once the interaction's token has expired.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.i18n import Phrase, _, t
from bot.text import CONTENT_MAX, clip
from bot.validation import ALLOWED_SCALES, AttachmentInfo, InputError, VideoSource, resolve_source
from cogs.errors import UNEXPECTED, reply_privately
from cogs.upscale import attachment_info, refuse_outside_servers, start_job

if TYPE_CHECKING:
    from bot.client import UpscaleBot

log = logging.getLogger(__name__)

MENU_NAME = _("Upscale video")  # as members see it in their language: menu_name(locale)
DEFAULT_SCALE = 2
PROMPT_SECONDS = 600.0  # the buttons answer for 10 minutes, well inside the prompt's 15-minute token
NO_ATTACHMENT = _("That message has no attachment: {menu} works on a message with an .mp4 video attached. "
                  "For a link, use /upscale url:.")
NOT_YOURS = _("These buttons aren't yours: use {menu} on the message yourself to upscale it.")
ALREADY_STARTED = _("That job is already being started: its task card is in the channel.")


def menu_name(locale: object) -> str:
    """The menu's name as Discord shows it to a member with this locale (the command's own localisation)."""
    return t(locale, MENU_NAME)


def pick_video(attachments: Sequence[AttachmentInfo]) -> tuple[VideoSource, int]:
    """The first attachment that passes /upscale's checks, and how many .mp4 files were considered.

    Refused (InputError, in the validation's own words) when there is none: with no .mp4 at all the reason is the
    first attachment's ("Only .mp4 videos are supported"), else the first .mp4's (too big, not a video, ...).
    """
    if not attachments:
        raise InputError(NO_ATTACHMENT, menu=Phrase(MENU_NAME))
    candidates = [a for a in attachments if a.filename.lower().endswith(".mp4")] or list(attachments[:1])
    first_error: InputError | None = None
    for attachment in candidates:
        try:
            return resolve_source(attachment=attachment, url=None), len(candidates)
        except InputError as error:
            first_error = first_error or error
    assert first_error is not None
    if len(candidates) == 1:
        raise first_error
    raise InputError(_("None of the {count} .mp4 files on that message can be upscaled. The first one: {reason}"),
                     count=len(candidates), reason=first_error)


def shown(label: str) -> str:
    """A file name inside our own bold text: its markdown cannot break the message."""
    return discord.utils.escape_markdown(label)


class ScaleButton(discord.ui.Button["ScalePrompt"]):
    def __init__(self, scale: int) -> None:
        super().__init__(label=f"{scale}×", custom_id=f"upscale-scale:{scale}",
                         style=discord.ButtonStyle.primary if scale == DEFAULT_SCALE else discord.ButtonStyle.secondary)
        self.scale = scale

    async def callback(self, interaction: discord.Interaction) -> None:
        assert self.view is not None
        await self.view.start(interaction, self)


class ScalePrompt(discord.ui.View):
    """The private scale buttons (1, 2, 4 times); only the member who used the menu may press them, and only once."""

    def __init__(self, bot: UpscaleBot, *, origin: discord.Interaction, source: VideoSource, intro: str,
                 timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.bot = bot
        self.origin = origin  # the menu's interaction: its token edits this prompt (an ephemeral message)
        self.owner_id = origin.user.id
        self.source = source
        self.intro = intro
        self.started = False
        for scale in ALLOWED_SCALES:
            self.add_item(ScaleButton(scale))

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        # Discord shows an ephemeral prompt to its member only; checked anyway, as the member's id is what counts.
        if interaction.user.id == self.owner_id:
            return True
        await interaction.response.send_message(t(interaction.locale, NOT_YOURS, menu=menu_name(interaction.locale)),
                                                ephemeral=True)
        return False

    async def start(self, interaction: discord.Interaction, pressed: ScaleButton) -> None:
        received_at = time.monotonic()
        if self.started:  # a double click, or a press that arrived before the buttons were disabled
            await interaction.response.send_message(t(interaction.locale, ALREADY_STARTED), ephemeral=True)
            return
        self.started = True  # set before any await: a second press can never start a second job
        for item in self.children:
            if isinstance(item, discord.ui.Button):
                item.disabled = True
                item.style = discord.ButtonStyle.success if item is pressed else discord.ButtonStyle.secondary
        # The prompt is edited through the menu's token while the press is acknowledged through its own.
        showing = asyncio.create_task(self._show(
            _("⏳ Starting at **{scale}×**: the task card follows in the channel."), scale=pressed.scale))
        try:
            task = await start_job(self.bot, interaction, source=self.source, scale=pressed.scale,
                                   received_at=received_at)
        finally:
            await showing
        if task is None:
            await self._show(_("❌ Not started (the reason is below). Use {menu} again to retry."))
        else:
            await self._show(_("✅ Started at **{scale}×**: the task card is in the channel."), scale=pressed.scale)

    async def on_timeout(self) -> None:
        if self.started:
            return
        for item in self.children:
            if isinstance(item, discord.ui.Button):
                item.disabled = True
        await self._show(_("⌛ These buttons expired. Use {menu} on the message again."))

    async def on_error(self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item[Any]) -> None:
        log.error("the %s scale button failed", MENU_NAME, exc_info=error)
        await reply_privately(interaction, t(interaction.locale, UNEXPECTED))

    async def _show(self, message: str, **values: object) -> None:
        """Edit the private prompt (the intro, then `message` in the member's language); it is only a view of what
        happened, so a failure is logged, never raised."""
        locale = self.origin.locale
        content = f"{self.intro}\n{t(locale, message, menu=menu_name(locale), **values)}"
        try:
            await self.origin.edit_original_response(content=clip(content, CONTENT_MAX), view=self)
        except discord.HTTPException as error:
            log.info("could not edit the %s prompt (%s %s)", MENU_NAME, error.status, error.code)


class ContextMenuCog(commands.Cog):
    """Holds the context menu (discord.py cannot declare one as a cog method, so it is added to the tree here)."""

    def __init__(self, bot: UpscaleBot) -> None:
        self.bot = bot
        self.prompt_seconds = PROMPT_SECONDS
        self.menu = app_commands.ContextMenu(name=app_commands.locale_str(MENU_NAME), callback=self.upscale_video)
        bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    async def upscale_video(self, interaction: discord.Interaction, message: discord.Message) -> None:
        refuse_outside_servers(self.bot, interaction, Phrase(MENU_NAME))
        locale = interaction.locale
        source, considered = pick_video([attachment_info(a) for a in message.attachments])
        intro = (t(locale, _("🎬 **{file}** (the first usable one of {count} .mp4 files)"), file=shown(source.label),
                   count=considered) if considered > 1 else f"🎬 **{shown(source.label)}**")
        view = ScalePrompt(self.bot, origin=interaction, source=source, intro=intro, timeout=self.prompt_seconds)
        minutes = max(1, round(self.prompt_seconds / 60))
        await interaction.response.send_message(
            clip(f"{intro}\n" + t(locale, _("Choose the scale to start the upscale ({scale}× is the usual choice). "
                                             "Only you see this; the buttons work for {minutes} min."),
                                   scale=DEFAULT_SCALE, minutes=minutes), CONTENT_MAX),
            view=view, ephemeral=True, allowed_mentions=discord.AllowedMentions.none())


async def setup(bot: UpscaleBot) -> None:
    await bot.add_cog(ContextMenuCog(bot))
