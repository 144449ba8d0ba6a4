"""The central app-command error handler: expected failures become short private replies, the rest is logged."""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.text import CONTENT_MAX, clip
from bot.validation import InputError

log = logging.getLogger(__name__)

UNEXPECTED = "Something went wrong on the bot's side. It has been logged; please try again in a minute."


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
        if isinstance(original, InputError):
            await reply_privately(interaction, f"⚠️ {original}")
        elif isinstance(error, app_commands.CheckFailure | app_commands.TransformerError):
            await reply_privately(interaction, f"⚠️ {error}")
        else:
            command = interaction.command.qualified_name if interaction.command else "?"
            log.error("command /%s failed", command, exc_info=original)
            await reply_privately(interaction, UNEXPECTED)


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(ErrorHandler(bot))
