"""/dms: a member turns result DMs off or on for themself (results always come in the channel too)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.i18n import _, t

if TYPE_CHECKING:
    from bot.client import UpscaleBot

STATES = [app_commands.Choice(name=_("on"), value="on"), app_commands.Choice(name=_("off"), value="off")]
_OPTION_NAMES = (_("results"),)  # discord.py asks the translator for option names too; marked for the catalogues


class MembersCog(commands.Cog):
    def __init__(self, bot: UpscaleBot) -> None:
        self.bot = bot

    @app_commands.command(name=_("dms"), description=_("Get your upscale results by DM too, or not"))
    @app_commands.describe(results=_("on: results by DM as well as in the channel; off: in the channel only"))
    @app_commands.choices(results=STATES)
    async def dms(self, interaction: discord.Interaction, results: str | None = None) -> None:
        notifier = self.bot.notifier
        user_id = interaction.user.id
        if results is not None:
            await notifier.set_result_dms(user_id, results == "on")
        enabled = await notifier.result_dms(user_id)
        locale = interaction.locale
        if enabled:
            text = t(locale, _("📬 Result DMs are **on**: you get each result by DM as well as in the channel."))
            hint = t(locale, _("`/dms results:off` turns them off."))
        else:
            text = t(locale, _("📭 Result DMs are **off**: results come only in the channel where you started the job "
                               "(jobs started in a DM with the bot are still answered there)."))
            hint = t(locale, _("`/dms results:on` turns them back on."))
        await interaction.response.send_message(f"{text}\n{hint}" if results is None else text, ephemeral=True)


async def setup(bot: UpscaleBot) -> None:
    await bot.add_cog(MembersCog(bot))
