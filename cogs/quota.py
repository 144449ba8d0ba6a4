"""/quota (server admins) and /usage (everyone): thin wrappers around QuotaService."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.config import LIMIT_NAMES
from bot.quota import MAX_LIMIT_VALUE, MEMBER_LIMITS, EffectiveLimit
from bot.text import clip, fit_embed, fit_lines

if TYPE_CHECKING:
    from bot.client import UpscaleBot

log = logging.getLogger(__name__)

LIMIT_CHOICES = [app_commands.Choice(name=name, value=name) for name in LIMIT_NAMES]
MEMBER_LIMIT_CHOICES = [app_commands.Choice(name=name, value=name) for name in MEMBER_LIMITS]
CREDIT_NOTE = ("Credits are known only once the provider accepts a job, so a credit limit stops new jobs once "
               "usage has reached it: each job already being submitted at that moment may go one job past it.")


# The provider's balance is read live for /quota usage, but Discord wants the answer within 3 s: wait this long.
BALANCE_WAIT_SECONDS = 1.5
BALANCE_UNREAD = "The provider's balance could not be read right now."
BALANCE_SHARED = ("This is the bot's whole Evolink account, shared by every server using this bot: not this "
                  "server's budget (that is `/quota show`).")


def _guild(interaction: discord.Interaction) -> int:
    """/quota is guild-only and checked, so there is always a guild id here."""
    if interaction.guild_id is None:
        raise app_commands.NoPrivateMessage("/quota works in servers only.")
    return interaction.guild_id


def _value(limit: EffectiveLimit | None, value: int | None = None) -> str:
    value = limit.value if limit is not None else value
    return "unlimited" if value is None else f"{value:,}"


def _source(limit: EffectiveLimit) -> str:
    if limit.source.startswith("role:"):
        return f"from role <@&{limit.source[5:]}>"
    return "server setting" if limit.source == "server" else "operator default"


def _figure(value: float) -> str:
    return f"{value:,.1f}".removesuffix(".0")


class QuotaGroup(app_commands.Group, name="quota", description="Limit what the bot may spend in this server",
                 guild_only=True, default_permissions=discord.Permissions(manage_guild=True)):
    def __init__(self, bot: UpscaleBot) -> None:
        super().__init__()
        self.bot = bot

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """Discord's default_permissions is only a hint admins can change: check Manage Server on every call."""
        permissions = interaction.permissions
        if interaction.guild_id is None or not (permissions.manage_guild or permissions.administrator):
            raise app_commands.CheckFailure("You need the Manage Server permission to use /quota.")
        return True

    async def _reply(self, interaction: discord.Interaction, content: str | None = None,
                     embed: discord.Embed | None = None) -> None:
        await interaction.response.send_message(content, embed=None if embed is None else fit_embed(embed),
                                                ephemeral=True, allowed_mentions=discord.AllowedMentions.none())

    @app_commands.command(name="show", description="The server's limits, or a member's limits and usage")
    @app_commands.describe(member="A member whose effective limits and usage to show (leave out for the server's)")
    async def show(self, interaction: discord.Interaction, member: discord.Member | None = None) -> None:
        quotas = self.bot.quotas
        guild_id = _guild(interaction)
        if member is None:
            limits = await quotas.server_limits(guild_id)
            lines = [f"`{name}`: **{_value(limit)}** ({_source(limit)})" for name, limit in limits.items()]
            for role_id, name, value in await quotas.role_limits(guild_id):
                lines.append(f"role <@&{role_id}>: `{name}` = **{value:,}**")
            embed = discord.Embed(title="Quota limits in this server", description=fit_lines(lines))
        else:
            limits = await quotas.member_limits(guild_id, [role.id for role in member.roles])
            usage = await quotas.usage(guild_id, member.id)
            lines = [f"`{name}`: **{_figure(usage.of(name))}** used of **{_value(limit)}** ({_source(limit)})"
                     for name, limit in limits.items()]
            blocked = await quotas.blocked(guild_id, member.id)
            if blocked is not None:
                lines.insert(0, "⛔ **Blocked**" + (f": {blocked[0]}" if blocked[0] else ""))
            embed = discord.Embed(title=f"Quota of {member.display_name}", description=fit_lines(lines))
        embed.set_footer(text=CREDIT_NOTE)
        await self._reply(interaction, embed=embed)

    @app_commands.command(name="set", description="Set a server limit")
    @app_commands.describe(limit="Which limit to set", value="The new limit, a whole number (0 stops new jobs)")
    @app_commands.choices(limit=LIMIT_CHOICES)
    async def set_(self, interaction: discord.Interaction, limit: str,
                   value: app_commands.Range[int, 0, MAX_LIMIT_VALUE]) -> None:
        await self.bot.quotas.set_limit(_guild(interaction), interaction.user.id, limit, value)
        await self._reply(interaction, f"✅ `{limit}` is now **{value:,}** in this server.")

    @app_commands.command(name="unset", description="Make a server limit unlimited")
    @app_commands.describe(limit="Which limit to make unlimited in this server")
    @app_commands.choices(limit=LIMIT_CHOICES)
    async def unset(self, interaction: discord.Interaction, limit: str) -> None:
        await self.bot.quotas.clear_limit(_guild(interaction), interaction.user.id, limit)
        await self._reply(interaction, f"✅ `{limit}` is now **unlimited** in this server.")

    @app_commands.command(name="role", description="Give a role its own member limit")
    @app_commands.describe(role="The role that gets its own limit", limit="Which member limit",
                           value="The limit for members with this role (the most generous role wins)")
    @app_commands.choices(limit=MEMBER_LIMIT_CHOICES)
    async def role(self, interaction: discord.Interaction, role: discord.Role, limit: str,
                   value: app_commands.Range[int, 0, MAX_LIMIT_VALUE]) -> None:
        await self.bot.quotas.set_role_limit(_guild(interaction), interaction.user.id, role.id, limit,
                                             value)
        await self._reply(interaction, f"✅ Members with {role.mention} get `{limit}` = **{value:,}** "
                                       "(the most generous of their roles wins).")

    @app_commands.command(name="role-unset", description="Remove a role's member limit")
    @app_commands.describe(role="The role whose own limit to remove", limit="Which member limit")
    @app_commands.choices(limit=MEMBER_LIMIT_CHOICES)
    async def role_unset(self, interaction: discord.Interaction, role: discord.Role, limit: str) -> None:
        changed = await self.bot.quotas.set_role_limit(_guild(interaction), interaction.user.id,
                                                       role.id, limit, None)
        await self._reply(interaction, f"✅ {role.mention} no longer sets `{limit}`." if changed
                          else f"{role.mention} had no `{limit}` of its own; nothing changed.")

    @app_commands.command(name="block", description="Stop a member from starting jobs")
    @app_commands.describe(member="The member to block", reason="Why (the member sees it when refused)")
    async def block(self, interaction: discord.Interaction, member: discord.Member,
                    reason: app_commands.Range[str, 1, 200] | None = None) -> None:
        await self.bot.quotas.block(_guild(interaction), interaction.user.id, member.id, reason)
        await self._reply(interaction, f"⛔ {member.mention} can no longer start upscale jobs here.")

    @app_commands.command(name="unblock", description="Let a blocked member start jobs again")
    @app_commands.describe(member="The member to unblock")
    async def unblock(self, interaction: discord.Interaction, member: discord.Member) -> None:
        changed = await self.bot.quotas.unblock(_guild(interaction), interaction.user.id, member.id)
        await self._reply(interaction, f"✅ {member.mention} can start jobs again." if changed
                          else f"{member.mention} was not blocked; nothing changed.")

    @app_commands.command(name="reset", description="Zero a member's usage for today and this month")
    @app_commands.describe(member="The member whose usage to zero")
    async def reset(self, interaction: discord.Interaction, member: discord.Member) -> None:
        count = await self.bot.quotas.reset_member(_guild(interaction), interaction.user.id, member.id)
        await self._reply(interaction, f"✅ Usage of {member.mention} for today and this month is zeroed "
                                       f"({count} job(s) no longer count for them; they still count for the server).")

    async def _provider_balance(self) -> str:
        """The provider account's balance in words, or a note when it cannot be read: never an error instead of
        the rest of the report."""
        try:
            balance = (await self.bot.credits.read(wait=BALANCE_WAIT_SECONDS)).balance
        except Exception as error:
            log.warning("/quota usage: the Evolink credit balance could not be read (%s)", error)
            return BALANCE_UNREAD
        if balance.unlimited:
            return "**unlimited** credits"
        return f"**{_figure(balance.remaining or 0.0)}** credits left"

    @app_commands.command(name="usage", description="This server's usage this month and today")
    async def usage(self, interaction: discord.Interaction) -> None:
        report, balance = await asyncio.gather(self.bot.quotas.report(_guild(interaction)), self._provider_balance())
        top = "\n".join(f"{i}. <@{user}>: {_figure(credits)} credits, {jobs} job(s)"
                        for i, (user, jobs, credits) in enumerate(report["top"], 1)) or "nobody yet"
        embed = discord.Embed(title="Upscale usage in this server", description=(
            f"This month: **{_figure(report['month_credits'])}** credits, **{report['month_jobs']}** job(s)\n"
            f"Today: **{report['day_jobs']}** job(s)\nRunning now: **{report['active_jobs']}** job(s)"))
        embed.add_field(name="Top members this month", value=top, inline=False)
        embed.add_field(name="Provider credits (the whole bot)", value=f"{balance}\n{BALANCE_SHARED}", inline=False)
        embed.set_footer(text="Days and months are UTC. Failed and cancelled jobs are not counted.")
        await self._reply(interaction, embed=embed)

    @app_commands.command(name="log", description="The last 20 quota changes")
    async def log(self, interaction: discord.Interaction) -> None:
        entries = await self.bot.quotas.log(_guild(interaction))
        lines = [f"<t:{int(at)}:f> <@{actor}>: {clip(action, 150)}" for actor, at, action in entries]
        await self._reply(interaction, embed=discord.Embed(title="Quota changes", description=fit_lines(lines)))


class QuotaCog(commands.Cog):
    def __init__(self, bot: UpscaleBot) -> None:
        self.bot = bot

    @app_commands.command(name="usage", description="Your upscale usage and what is left")
    async def usage(self, interaction: discord.Interaction) -> None:
        quotas = self.bot.quotas
        roles = [role.id for role in getattr(interaction.user, "roles", ())]
        limits = await quotas.member_limits(interaction.guild_id, roles)
        usage = await quotas.usage(interaction.guild_id, interaction.user.id)
        p = quotas.periods()
        lines = []
        for name, label, resets in (("user_daily_jobs", "Jobs today", p.next_day),
                                    ("user_concurrent_jobs", "Jobs running", None),
                                    ("user_monthly_credits", "Credits this month", p.next_month)):
            limit = limits[name].value
            used = usage.of(name)
            left = "no limit" if limit is None else f"{_figure(max(0.0, limit - used))} left of {limit:,}"
            when = f", resets <t:{resets}:R>" if resets and limit is not None else ""
            lines.append(f"{label}: **{_figure(used)}** ({left}{when})")
        for name, label in (("server_daily_jobs", "Server jobs today"),
                            ("server_monthly_credits", "Server credits this month")):
            limit = limits[name].value
            if limit is not None:
                lines.append(f"{label}: {_figure(usage.of(name))} of {limit:,}")
        await interaction.response.send_message(
            embed=discord.Embed(title="Your upscale usage", description="\n".join(lines)), ephemeral=True)


async def setup(bot: UpscaleBot) -> None:
    bot.tree.add_command(QuotaGroup(bot))
    await bot.add_cog(QuotaCog(bot))
