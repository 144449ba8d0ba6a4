"""/quota (server admins) and /usage (everyone): thin wrappers around QuotaService."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.config import LIMIT_NAMES
from bot.i18n import _, t
from bot.quota import MAX_LIMIT_VALUE, MEMBER_LIMITS, EffectiveLimit
from bot.text import clip, figure, fit_embed, fit_lines
from cogs.errors import CheckRefused
from storage import QuotaLogEntry

if TYPE_CHECKING:
    from bot.client import UpscaleBot

log = logging.getLogger(__name__)

LIMIT_CHOICES = [app_commands.Choice(name=name, value=name) for name in LIMIT_NAMES]
MEMBER_LIMIT_CHOICES = [app_commands.Choice(name=name, value=name) for name in MEMBER_LIMITS]
# discord.py asks the translator for every option name and choice name too; marked here for the catalogues.
# Limit names are what admins type and what /quota replies quote: a translation keeps the name and adds words.
_OPTION_NAMES = (_("member"), _("limit"), _("value"), _("role"), _("reason"),
                 _("user_daily_jobs"), _("user_concurrent_jobs"), _("user_monthly_credits"), _("server_daily_jobs"),
                 _("server_monthly_credits"))
# What each limit is, in words: shown beside its name, which stays visible because admins type it.
LIMIT_LABELS = {
    "user_daily_jobs": _("Jobs per member per day"),
    "user_concurrent_jobs": _("Jobs per member at once"),
    "user_monthly_credits": _("Credits per member per month"),
    "server_daily_jobs": _("Jobs in this server per day"),
    "server_monthly_credits": _("Credits in this server per month"),
}
CREDIT_NOTE = _("Credits are known only once the provider accepts a job, so a credit limit stops new jobs once "
                "usage has reached it: each job already being submitted at that moment may go one job past it.")


# The provider's balance is read live for /quota usage, but Discord wants the answer within 3 s: wait this long.
BALANCE_WAIT_SECONDS = 1.5
BALANCE_UNREAD = _("The provider's balance could not be read right now.")
BALANCE_SHARED = _("This is the bot's whole Evolink account, shared by every server using this bot: not this "
                   "server's budget (that is `/quota show`).")


def _guild(interaction: discord.Interaction) -> int:
    """/quota is guild-only and checked, so there is always a guild id here."""
    if interaction.guild_id is None:
        raise CheckRefused(_("/quota works in servers only."))
    return interaction.guild_id


def limit_label(locale: object, name: str) -> str:
    """A limit's name in words, in the reader's language (an unknown name is shown as it is)."""
    return t(locale, LIMIT_LABELS[name]) if name in LIMIT_LABELS else name


def _value(locale: object, value: int | None) -> str:
    return t(locale, _("unlimited")) if value is None else f"{value:,}"


def _source(locale: object, limit: EffectiveLimit) -> str:
    if limit.source.startswith("role:"):
        return t(locale, _("from role {role}"), role=f"<@&{limit.source[5:]}>")
    return t(locale, _("server setting")) if limit.source == "server" else t(locale, _("operator default"))


def log_line(locale: object, entry: QuotaLogEntry) -> str:
    """One audit-log entry in the reader's language: a code rendered from its values, or (rows written before
    codes) the English words as they were stored."""
    params = entry.params
    if entry.code is None:
        text = entry.action or ""
    elif entry.code == "set_limit":
        text = (t(locale, _("set {name} = unlimited"), name=params["name"]) if params["value"] is None
                else t(locale, _("set {name} = {value}"), name=params["name"], value=params["value"]))
    elif entry.code == "role_limit":
        role = f"<@&{params['role_id']}>"
        text = (t(locale, _("role {role}: {name} unset"), role=role, name=params["name"]) if params["value"] is None
                else t(locale, _("role {role}: {name} = {value}"), role=role, name=params["name"],
                       value=params["value"]))
    elif entry.code == "block":
        member = f"<@{params['user_id']}>"
        text = (t(locale, _("blocked {member}: {reason}"), member=member, reason=params["reason"]) if params["reason"]
                else t(locale, _("blocked {member}"), member=member))
    elif entry.code == "unblock":
        text = t(locale, _("unblocked {member}"), member=f"<@{params['user_id']}>")
    elif entry.code == "reset":
        text = t(locale, _("reset usage of {member} ({count} job(s) this month)"), member=f"<@{params['user_id']}>",
                 count=params["count"])
    else:  # a code from a newer version of the bot: say what it is rather than nothing
        text = f"{entry.code} {params}"
    return f"<t:{int(entry.at)}:f> <@{entry.actor_id}>: {clip(text, 150)}"


class QuotaGroup(app_commands.Group, name=_("quota"), description=_("Limit what the bot may spend in this server"),
                 guild_only=True, default_permissions=discord.Permissions(manage_guild=True)):
    def __init__(self, bot: UpscaleBot) -> None:
        super().__init__()
        self.bot = bot

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """Discord's default_permissions is only a hint admins can change: check Manage Server on every call."""
        permissions = interaction.permissions
        if interaction.guild_id is None or not (permissions.manage_guild or permissions.administrator):
            raise CheckRefused(_("You need the Manage Server permission to use /quota."))
        return True

    async def _reply(self, interaction: discord.Interaction, content: str | None = None,
                     embed: discord.Embed | None = None) -> None:
        await interaction.response.send_message(content, embed=None if embed is None else fit_embed(embed),
                                                ephemeral=True, allowed_mentions=discord.AllowedMentions.none())

    @app_commands.command(name=_("show"), description=_("The server's limits, or a member's limits and usage"))
    @app_commands.describe(member=_("A member whose effective limits and usage to show (leave out for the server's)"))
    async def show(self, interaction: discord.Interaction, member: discord.Member | None = None) -> None:
        quotas = self.bot.quotas
        guild_id = _guild(interaction)
        locale = interaction.locale
        if member is None:
            limits = await quotas.server_limits(guild_id)
            lines = [t(locale, _("{label} · `{name}`: **{value}** ({source})"), label=limit_label(locale, name),
                       name=name, value=_value(locale, limit.value), source=_source(locale, limit))
                     for name, limit in limits.items()]
            for role_id, name, value in await quotas.role_limits(guild_id):
                lines.append(t(locale, _("role {role}: `{name}` = **{value}**"), role=f"<@&{role_id}>", name=name,
                               value=f"{value:,}"))
            embed = discord.Embed(title=t(locale, _("Quota limits in this server")),
                                  description=fit_lines(lines, locale))
        else:
            limits = await quotas.member_limits(guild_id, [role.id for role in member.roles])
            usage = await quotas.usage(guild_id, member.id)
            lines = [t(locale, _("{label} · `{name}`: **{used}** used of **{value}** ({source})"),
                       label=limit_label(locale, name), name=name, used=figure(usage.of(name)),
                       value=_value(locale, limit.value), source=_source(locale, limit))
                     for name, limit in limits.items()]
            blocked = await quotas.blocked(guild_id, member.id)
            if blocked is not None:
                lines.insert(0, t(locale, _("⛔ **Blocked**: {reason}"), reason=blocked[0]) if blocked[0]
                             else t(locale, _("⛔ **Blocked**")))
            embed = discord.Embed(title=t(locale, _("Quota of {member}"), member=member.display_name),
                                  description=fit_lines(lines, locale))
        embed.set_footer(text=t(locale, CREDIT_NOTE))
        await self._reply(interaction, embed=embed)

    @app_commands.command(name=_("set"), description=_("Set a server limit"))
    @app_commands.describe(limit=_("Which limit to set"), value=_("The new limit, a whole number (0 stops new jobs)"))
    @app_commands.choices(limit=LIMIT_CHOICES)
    async def set_(self, interaction: discord.Interaction, limit: str,
                   value: app_commands.Range[int, 0, MAX_LIMIT_VALUE]) -> None:
        await self.bot.quotas.set_limit(_guild(interaction), interaction.user.id, limit, value)
        locale = interaction.locale
        await self._reply(interaction, t(locale, _("✅ {label} · `{name}` is now **{value}** in this server."),
                                         label=limit_label(locale, limit), name=limit, value=f"{value:,}"))

    @app_commands.command(name=_("unset"), description=_("Make a server limit unlimited"))
    @app_commands.describe(limit=_("Which limit to make unlimited in this server"))
    @app_commands.choices(limit=LIMIT_CHOICES)
    async def unset(self, interaction: discord.Interaction, limit: str) -> None:
        await self.bot.quotas.clear_limit(_guild(interaction), interaction.user.id, limit)
        locale = interaction.locale
        await self._reply(interaction, t(locale, _("✅ {label} · `{name}` is now **unlimited** in this server."),
                                         label=limit_label(locale, limit), name=limit))

    @app_commands.command(name=_("role"), description=_("Give a role its own member limit"))
    @app_commands.describe(role=_("The role that gets its own limit"), limit=_("Which member limit"),
                           value=_("The limit for members with this role (the most generous role wins)"))
    @app_commands.choices(limit=MEMBER_LIMIT_CHOICES)
    async def role(self, interaction: discord.Interaction, role: discord.Role, limit: str,
                   value: app_commands.Range[int, 0, MAX_LIMIT_VALUE]) -> None:
        await self.bot.quotas.set_role_limit(_guild(interaction), interaction.user.id, role.id, limit,
                                             value)
        locale = interaction.locale
        await self._reply(interaction, t(locale, _("✅ Members with {role} get {label} · `{name}` = **{value}** "
                                                   "(the most generous of their roles wins)."),
                                         role=role.mention, label=limit_label(locale, limit), name=limit,
                                         value=f"{value:,}"))

    @app_commands.command(name=_("role-unset"), description=_("Remove a role's member limit"))
    @app_commands.describe(role=_("The role whose own limit to remove"), limit=_("Which member limit"))
    @app_commands.choices(limit=MEMBER_LIMIT_CHOICES)
    async def role_unset(self, interaction: discord.Interaction, role: discord.Role, limit: str) -> None:
        changed = await self.bot.quotas.set_role_limit(_guild(interaction), interaction.user.id,
                                                       role.id, limit, None)
        message = (_("✅ {role} no longer sets `{name}`.") if changed
                   else _("{role} had no `{name}` of its own; nothing changed."))
        await self._reply(interaction, t(interaction.locale, message, role=role.mention, name=limit))

    @app_commands.command(name=_("block"), description=_("Stop a member from starting jobs"))
    @app_commands.describe(member=_("The member to block"), reason=_("Why (the member sees it when refused)"))
    async def block(self, interaction: discord.Interaction, member: discord.Member,
                    reason: app_commands.Range[str, 1, 200] | None = None) -> None:
        await self.bot.quotas.block(_guild(interaction), interaction.user.id, member.id, reason)
        await self._reply(interaction, t(interaction.locale, _("⛔ {member} can no longer start upscale jobs here."),
                                         member=member.mention))

    @app_commands.command(name=_("unblock"), description=_("Let a blocked member start jobs again"))
    @app_commands.describe(member=_("The member to unblock"))
    async def unblock(self, interaction: discord.Interaction, member: discord.Member) -> None:
        changed = await self.bot.quotas.unblock(_guild(interaction), interaction.user.id, member.id)
        message = _("✅ {member} can start jobs again.") if changed else _("{member} was not blocked; nothing changed.")
        await self._reply(interaction, t(interaction.locale, message, member=member.mention))

    @app_commands.command(name=_("reset"), description=_("Zero a member's usage for today and this month"))
    @app_commands.describe(member=_("The member whose usage to zero"))
    async def reset(self, interaction: discord.Interaction, member: discord.Member) -> None:
        count = await self.bot.quotas.reset_member(_guild(interaction), interaction.user.id, member.id)
        await self._reply(interaction, t(interaction.locale, _(
            "✅ Usage of {member} for today and this month is zeroed ({count} job(s) no longer count for them; "
            "they still count for the server)."), member=member.mention, count=count))

    async def _provider_balance(self, locale: object) -> str:
        """The provider account's balance in words, or a note when it cannot be read: never an error instead of
        the rest of the report."""
        try:
            balance = (await self.bot.credits.read(wait=BALANCE_WAIT_SECONDS)).balance
        except Exception as error:
            log.warning("/quota usage: the Evolink credit balance could not be read (%s)", error)
            return t(locale, BALANCE_UNREAD)
        if balance.unlimited:
            return t(locale, _("**unlimited** credits"))
        return t(locale, _("**{credits}** credits left"), credits=figure(balance.remaining or 0.0))

    @app_commands.command(name=_("usage"), description=_("This server's usage this month and today"))
    async def usage(self, interaction: discord.Interaction) -> None:
        locale = interaction.locale
        report, balance = await asyncio.gather(self.bot.quotas.report(_guild(interaction)),
                                               self._provider_balance(locale))
        top = "\n".join(t(locale, _("{rank}. {member}: {credits} credits, {jobs} job(s)"), rank=i,
                          member=f"<@{user}>", credits=figure(credits), jobs=jobs)
                        for i, (user, jobs, credits) in enumerate(report["top"], 1)) or t(locale, _("nobody yet"))
        description = "\n".join((
            t(locale, _("This month: **{credits}** credits, **{jobs}** job(s)"),
              credits=figure(report["month_credits"]), jobs=report["month_jobs"]),
            t(locale, _("Today: **{jobs}** job(s)"), jobs=report["day_jobs"]),
            t(locale, _("Running now: **{jobs}** job(s)"), jobs=report["active_jobs"])))
        embed = discord.Embed(title=t(locale, _("Upscale usage in this server")), description=description)
        embed.add_field(name=t(locale, _("Top members this month")), value=top, inline=False)
        embed.add_field(name=t(locale, _("Provider credits (the whole bot)")),
                        value=f"{balance}\n{t(locale, BALANCE_SHARED)}", inline=False)
        embed.set_footer(text=t(locale, _("Days and months are UTC. Failed and cancelled jobs are not counted.")))
        await self._reply(interaction, embed=embed)

    @app_commands.command(name=_("log"), description=_("The last 20 quota changes"))
    async def log(self, interaction: discord.Interaction) -> None:
        entries = await self.bot.quotas.log(_guild(interaction))
        locale = interaction.locale
        lines = [log_line(locale, entry) for entry in entries]
        await self._reply(interaction, embed=discord.Embed(
            title=t(locale, _("Quota changes")), description=fit_lines(lines, locale)))


# /usage: what each member figure is, in words (no limit names: members do not type them).
_MEMBER_FIGURES = (("user_daily_jobs", _("Jobs today"), "day"),
                   ("user_concurrent_jobs", _("Jobs running"), None),
                   ("user_monthly_credits", _("Credits this month"), "month"))
_SERVER_FIGURES = (("server_daily_jobs", _("Server jobs today")),
                   ("server_monthly_credits", _("Server credits this month")))


class QuotaCog(commands.Cog):
    def __init__(self, bot: UpscaleBot) -> None:
        self.bot = bot

    @app_commands.command(name=_("usage"), description=_("Your upscale usage and what is left"))
    async def usage(self, interaction: discord.Interaction) -> None:
        quotas = self.bot.quotas
        locale = interaction.locale
        roles = [role.id for role in getattr(interaction.user, "roles", ())]
        limits = await quotas.member_limits(interaction.guild_id, roles)
        usage = await quotas.usage(interaction.guild_id, interaction.user.id)
        p = quotas.periods()
        lines = []
        for name, label, period in _MEMBER_FIGURES:
            limit = limits[name].value
            used = usage.of(name)
            figures = {"label": t(locale, label), "used": figure(used)}
            if limit is None:
                lines.append(t(locale, _("{label}: **{used}** (no limit)"), **figures))
                continue
            figures.update(left=figure(max(0.0, limit - used)), limit=f"{limit:,}")
            if period is None:
                lines.append(t(locale, _("{label}: **{used}** ({left} left of {limit})"), **figures))
            else:
                resets = p.next_day if period == "day" else p.next_month
                lines.append(t(locale, _("{label}: **{used}** ({left} left of {limit}, resets {reset})"),
                               reset=f"<t:{resets}:R>", **figures))
        for name, label in _SERVER_FIGURES:
            limit = limits[name].value
            if limit is not None:
                lines.append(t(locale, _("{label}: {used} of {limit}"), label=t(locale, label),
                               used=figure(usage.of(name)), limit=f"{limit:,}"))
        await interaction.response.send_message(
            embed=discord.Embed(title=t(locale, _("Your upscale usage")), description="\n".join(lines)),
            ephemeral=True)


async def setup(bot: UpscaleBot) -> None:
    bot.tree.add_command(QuotaGroup(bot))
    await bot.add_cog(QuotaCog(bot))
