"""The central app-command error handler: expected failures become short private replies in the member's language
(their Discord client's, `interaction.locale`), the rest is logged (in English)."""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.i18n import _, t
from bot.quota import QuotaExceeded
from bot.text import CONTENT_MAX, clip
from bot.validation import Refusal

log = logging.getLogger(__name__)

UNEXPECTED = _("Something went wrong on the bot's side. It has been logged; please try again in a minute.")
NOT_A_MEMBER = _("That member is not in this server (any more): choose someone from the list.")
OPTION_UNUSABLE = _("Discord sent an option the bot could not use: choose it again from the list.")
SERVERS_ONLY = _("This command works in servers only.")


class CheckRefused(app_commands.CheckFailure, Refusal):
    """A check of ours failed (the command does not run): CheckRefused(_("..."), **values), told to the member in
    their language like any Refusal. discord.py's own check failures keep its English wording."""


async def reply_privately(interaction: discord.Interaction, content: str) -> None:
    """Answer ephemerally whether or not the interaction was acknowledged yet; never raise."""
    content = clip(content, CONTENT_MAX)
    try:
        if interaction.response.is_done():
            await interaction.followup.send(content, ephemeral=True)
        else:
            await interaction.response.send_message(content, ephemeral=True)
    except discord.HTTPException as error:
        log.warning("could not send an error reply (%s %s)", error.status, error.code)


class ErrorHandler(commands.Cog):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        self._previous = bot.tree.on_error
        bot.tree.on_error = self.on_app_command_error

    async def cog_unload(self) -> None:
        self.bot.tree.on_error = self._previous

    async def on_app_command_error(self, interaction: discord.Interaction,
                                   error: app_commands.AppCommandError) -> None:
        original = getattr(error, "original", error)
        if isinstance(original, QuotaExceeded):
            await reply_privately(interaction, f"❌ {original.render(interaction.locale)}")
        elif isinstance(original, Refusal):  # InputError, CheckRefused
            await reply_privately(interaction, f"⚠️ {original.render(interaction.locale)}")
        elif isinstance(error, app_commands.TransformerError):
            # Discord sent an option discord.py could not turn into what the command takes: in practice a member
            # option naming someone who is not (or no longer) in the server.
            log.info("/%s: option not usable (%s)", interaction.command.qualified_name if interaction.command else "?",
                     error)
            message = (NOT_A_MEMBER if error.type is discord.AppCommandOptionType.user else OPTION_UNUSABLE)
            await reply_privately(interaction, f"⚠️ {t(interaction.locale, message)}")
        elif isinstance(error, app_commands.NoPrivateMessage):
            await reply_privately(interaction, f"⚠️ {t(interaction.locale, SERVERS_ONLY)}")
        elif isinstance(error, app_commands.CheckFailure):
            # Another of discord.py's built-in checks (ours are Refusals, above): its own English wording.
            await reply_privately(interaction, f"⚠️ {error}")
        else:
            command = interaction.command.qualified_name if interaction.command else "?"
            log.error("command /%s failed", command, exc_info=original)
            await reply_privately(interaction, t(interaction.locale, UNEXPECTED))


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(ErrorHandler(bot))
