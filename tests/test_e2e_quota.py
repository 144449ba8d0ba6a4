"""End to end: /quota (server admins) and /usage (everyone) through the real bot, the fake Discord and fake Evolink.

Every assertion is on what a member sees (the interaction replies) and on what reached the fake Evolink.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from bot.config import LIMIT_NAMES, SAFE_DEFAULT_LIMITS
from sandbox.offline import Sandbox
from tests.helpers import DeliveryWatch, embed_text, start_upscale, wait_told

pytestmark = pytest.mark.backends("sqlite", "postgres")

UNLIMITED: dict[str, int | None] = dict.fromkeys(LIMIT_NAMES)
MANAGE_GUILD = 1 << 5
EPHEMERAL = 1 << 6
# Quick polling so completed jobs settle fast; nothing here depends on the exact values.
FAST = {"poll_min_seconds": 0.05, "poll_max_seconds": 0.3, "card_edit_seconds": 0.3}
RESULT = "https://cdn.evolink.ai/sample/quota-result.mp4"


@pytest.fixture
def admin(box: Sandbox) -> str:
    """A member with Manage Server (added before the bot connects)."""
    return box.discord.add_member(box.guild_id, "admin", permissions=MANAGE_GUILD)


def posts(box: Sandbox) -> int:
    """Paid submissions that reached the fake Evolink."""
    return len([r for r in box.evolink.requests if r.method == "POST"])


async def quota(box: Sandbox, user_id: str, sub: str, strict: bool = True, permissions: int | None = None,
                **options: Any) -> str:
    """Run /quota <sub> as `user_id`; check the answer is an immediate private reply; return its text."""
    interaction = await box.discord.slash("quota", user_id=user_id, channel_id=box.channel_id,
                                          guild_id=box.guild_id, options=options, subcommand=[sub],
                                          permissions=permissions, strict=strict)
    ack = await interaction.wait_ack()
    assert ack["type"] == 4, f"/quota {sub} answers at once"
    assert ack["data"]["flags"] & EPHEMERAL, f"/quota {sub} answers privately"
    return embed_text(ack["data"])


async def usage(box: Sandbox, user_id: str) -> str:
    interaction = await box.discord.slash("usage", user_id=user_id, channel_id=box.channel_id,
                                          guild_id=box.guild_id)
    ack = await interaction.wait_ack()
    assert ack["type"] == 4 and ack["data"]["flags"] & EPHEMERAL, "/usage is private"
    return embed_text(ack["data"])


async def refused(box: Sandbox, user_id: str, url: str = "https://example.com/clip.mp4") -> str:
    """Run /upscale expecting a refusal: return the private reason; the public 'thinking' reply is gone."""
    interaction = await box.discord.slash("upscale", user_id=user_id, channel_id=box.channel_id,
                                          guild_id=box.guild_id, options={"url": url})
    await interaction.wait_ack()
    reply = await box.discord.wait_for(
        lambda: next((m for m in interaction.followups if m["flags"] & EPHEMERAL), None)
        or ("card" if "Upscale task-" in embed_text(interaction.original) else None))
    assert reply != "card", "the job was started although it should have been refused"
    assert interaction.original is None, "the public deferred reply was removed"
    return reply["content"]


# ---- 1. Manage Server is checked on every subcommand ----------------------------------------------------------

SUBCOMMANDS: list[tuple[str, Any]] = [
    # (subcommand, options given the sandbox and the world built below)
    ("show", lambda box, w: {}),
    ("show", lambda box, w: {"member": box.bob_id}),
    ("set", lambda box, w: {"limit": "user_daily_jobs", "value": 0}),
    ("unset", lambda box, w: {"limit": "user_daily_jobs"}),
    ("role", lambda box, w: {"role": box.guild_id, "limit": "user_daily_jobs", "value": 0}),  # @everyone
    ("role-unset", lambda box, w: {"role": w["patron"], "limit": "user_daily_jobs"}),
    ("block", lambda box, w: {"member": box.alice_id, "reason": "self-inflicted"}),
    ("unblock", lambda box, w: {"member": box.bob_id}),
    ("reset", lambda box, w: {"member": box.alice_id}),
    ("usage", lambda box, w: {}),
    ("log", lambda box, w: {}),
]
NOT_MANAGE_SERVER = [
    pytest.param(0, id="no-permissions"),
    # Manage Channels, Send Messages, Manage Messages, Manage Roles, Moderate Members: powerful, yet not enough.
    pytest.param((1 << 4) | (1 << 11) | (1 << 13) | (1 << 28) | (1 << 40), id="moderator"),
]


@pytest.mark.parametrize("permissions", NOT_MANAGE_SERVER)
@pytest.mark.parametrize(("sub", "options"), SUBCOMMANDS, ids=[f"{s}-{i}" for i, (s, _) in enumerate(SUBCOMMANDS)])
async def test_every_quota_subcommand_needs_manage_server_and_changes_nothing(
        box: Sandbox, bot_runner: Any, admin: str, sub: str, options: Any, permissions: int) -> None:
    world = {"patron": box.discord.add_role(box.guild_id, "patron")}
    await bot_runner.start(default_limits={**UNLIMITED, "user_daily_jobs": 2}, **FAST)
    await quota(box, admin, "block", member=box.bob_id, reason="spam")
    await quota(box, admin, "role", role=world["patron"], limit="user_daily_jobs", value=3)
    await start_upscale(box, url="https://example.com/first.mp4")

    async def state() -> list[str]:
        return [await quota(box, admin, "show"), await quota(box, admin, "show", member=box.alice_id),
                await quota(box, admin, "show", member=box.bob_id), await quota(box, admin, "log")]

    before, posted = await state(), posts(box)
    reply = await quota(box, box.alice_id, sub, permissions=permissions, **options(box, world))
    assert "Manage Server" in reply
    assert "⛔" not in reply and "used of" not in reply and "Quota changes" not in reply, "nothing leaks"
    assert await state() == before, "the refused command changed nothing an admin can see"
    assert "1** used of **2**" in before[1] and "Blocked**: spam" in before[2]
    assert posts(box) == posted
    # Not blocked, no new limit, usage not reset: alice's second job of the day (of 2) still starts.
    await start_upscale(box, url="https://example.com/second.mp4")
    assert "You have started your 2 job(s) for today" in await refused(box, box.alice_id)
    assert posts(box) == posted + 1


async def test_manage_server_is_enough_without_any_other_permission(box: Sandbox, bot_runner: Any) -> None:
    manager = box.discord.add_member(box.guild_id, "manager")
    await bot_runner.start(**FAST)
    assert "Manage Server" in await quota(box, manager, "show")
    assert "Quota limits in this server" in await quota(box, manager, "show", permissions=MANAGE_GUILD)


# ---- 2. /quota set and unset ----------------------------------------------------------------------------------

async def test_set_daily_limit_refuses_the_second_job_and_unset_makes_it_unlimited(
        box: Sandbox, bot_runner: Any, admin: str) -> None:
    await bot_runner.start(default_limits={**UNLIMITED, "user_daily_jobs": 5}, **FAST)
    shown = await quota(box, admin, "show")
    assert "`user_daily_jobs`: **5** (operator default)" in shown
    assert "`user_concurrent_jobs`: **unlimited** (operator default)" in shown

    assert "`user_daily_jobs` is now **1**" in await quota(box, admin, "set", limit="user_daily_jobs", value=1)
    assert "`user_daily_jobs`: **1** (server setting)" in await quota(box, admin, "show")
    await start_upscale(box, url="https://example.com/one.mp4")
    reason = await refused(box, box.alice_id, "https://example.com/two.mp4")
    assert "You have started your 1 job(s) for today" in reason
    assert re.search(r"You can start another <t:\d+:R>", reason), reason
    assert posts(box) == 1, "no second upstream POST"
    assert box.evolink.submissions() == 1
    # The limit is per member: bob still has his job of the day.
    await start_upscale(box, user_id=box.bob_id, url="https://example.com/bob.mp4")

    assert "**unlimited**" in await quota(box, admin, "unset", limit="user_daily_jobs")
    assert "`user_daily_jobs`: **unlimited** (server setting)" in await quota(box, admin, "show")
    for n in range(3):
        await start_upscale(box, url=f"https://example.com/more{n}.mp4")
    assert posts(box) == 5
    assert "Jobs today: **4** (no limit" in await usage(box, box.alice_id)


async def test_a_limit_of_zero_stops_every_job(box: Sandbox, bot_runner: Any, admin: str) -> None:
    await bot_runner.start(default_limits=UNLIMITED, **FAST)
    await quota(box, admin, "set", limit="server_daily_jobs", value=0)
    reason = await refused(box, box.bob_id)
    assert "This server has started its 0 job(s) for today" in reason and "<t:" in reason
    assert posts(box) == 0


# ---- 3. Role overrides --------------------------------------------------------------------------------------

async def test_role_limit_overrides_the_server_limit_for_its_members(box: Sandbox, bot_runner: Any,
                                                                     admin: str) -> None:
    patron = box.discord.add_role(box.guild_id, "patron")
    helper = box.discord.add_role(box.guild_id, "helper")
    carol = box.discord.add_member(box.guild_id, "carol", roles=[helper, patron])
    await bot_runner.start(default_limits={**UNLIMITED, "user_daily_jobs": 10}, **FAST)
    await quota(box, admin, "set", limit="user_daily_jobs", value=1)
    reply = await quota(box, admin, "role", role=patron, limit="user_daily_jobs", value=3)
    assert f"<@&{patron}>" in reply and "**3**" in reply
    await quota(box, admin, "role", role=helper, limit="user_daily_jobs", value=2)
    server = await quota(box, admin, "show")
    assert f"role <@&{patron}>: `user_daily_jobs` = **3**" in server
    assert f"role <@&{helper}>: `user_daily_jobs` = **2**" in server

    for n in range(3):  # the most generous of carol's roles wins
        await start_upscale(box, user_id=carol, url=f"https://example.com/carol{n}.mp4")
    assert "You have started your 3 job(s) for today" in await refused(box, carol)
    await start_upscale(box, user_id=box.bob_id, url="https://example.com/bob.mp4")
    assert "You have started your 1 job(s) for today" in await refused(box, box.bob_id)
    assert posts(box) == 4

    shown = await quota(box, admin, "show", member=carol)
    assert f"`user_daily_jobs`: **3** used of **3** (from role <@&{patron}>)" in shown
    assert "`user_daily_jobs`: **1** used of **1** (server setting)" in await quota(box, admin, "show",
                                                                                    member=box.bob_id)
    carol_usage = await usage(box, carol)
    assert "Jobs today: **3** (0 left of 3" in carol_usage

    assert "no longer sets" in await quota(box, admin, "role-unset", role=patron, limit="user_daily_jobs")
    assert f"`user_daily_jobs`: **3** used of **2** (from role <@&{helper}>)" in await quota(
        box, admin, "show", member=carol)
    await quota(box, admin, "role-unset", role=helper, limit="user_daily_jobs")
    shown = await quota(box, admin, "show", member=carol)
    assert "`user_daily_jobs`: **3** used of **1** (server setting)" in shown
    assert "role <@&" not in await quota(box, admin, "show")
    again = await quota(box, admin, "role-unset", role=patron, limit="user_daily_jobs")
    assert "nothing changed" in again
    assert "You have started your 1 job(s) for today" in await refused(box, carol)
    assert posts(box) == 4


# ---- 4. Blocking --------------------------------------------------------------------------------------------

async def test_block_refuses_jobs_with_the_reason_and_unblock_lets_them_start(box: Sandbox, bot_runner: Any,
                                                                               admin: str) -> None:
    await bot_runner.start(default_limits=UNLIMITED, **FAST)
    reply = await quota(box, admin, "block", member=box.bob_id, reason="spam")
    assert f"<@{box.bob_id}>" in reply and "can no longer start" in reply
    reason = await refused(box, box.bob_id)
    assert "blocked" in reason and "spam" in reason
    assert posts(box) == 0, "no upstream call for a blocked member"
    assert "⛔ **Blocked**: spam" in await quota(box, admin, "show", member=box.bob_id)
    await start_upscale(box, url="https://example.com/alice.mp4")  # others are not affected

    assert "can start jobs again" in await quota(box, admin, "unblock", member=box.bob_id)
    assert "Blocked" not in await quota(box, admin, "show", member=box.bob_id)
    await start_upscale(box, user_id=box.bob_id, url="https://example.com/bob.mp4")
    assert posts(box) == 2
    assert "was not blocked; nothing changed" in await quota(box, admin, "unblock", member=box.bob_id)


async def test_block_without_a_reason(box: Sandbox, bot_runner: Any, admin: str) -> None:
    await bot_runner.start(default_limits=UNLIMITED, **FAST)
    await quota(box, admin, "block", member=box.bob_id)
    reason = await refused(box, box.bob_id)
    assert "You are blocked from starting upscale jobs here." in reason and "()" not in reason
    assert "⛔ **Blocked**\n" in await quota(box, admin, "show", member=box.bob_id) + "\n"
    assert posts(box) == 0


# ---- 5. Reset -----------------------------------------------------------------------------------------------

async def test_reset_zeroes_the_members_day_so_they_can_start_again(box: Sandbox, bot_runner: Any,
                                                                    admin: str) -> None:
    await bot_runner.start(default_limits={**UNLIMITED, "user_daily_jobs": 1}, **FAST)
    await start_upscale(box, url="https://example.com/one.mp4")
    assert "1 job(s) for today" in await refused(box, box.alice_id)
    await start_upscale(box, user_id=box.bob_id, url="https://example.com/bob.mp4")

    reply = await quota(box, admin, "reset", member=box.alice_id)
    assert f"<@{box.alice_id}>" in reply and "(1 job(s) no longer count" in reply
    assert "Jobs today: **0** (1 left of 1" in await usage(box, box.alice_id)
    assert "1 job(s) for today" in await refused(box, box.bob_id), "only alice was reset"
    await start_upscale(box, url="https://example.com/two.mp4")
    assert "1 job(s) for today" in await refused(box, box.alice_id)
    assert posts(box) == 3
    # The server still counts every job.
    assert "Today: **3** job(s)" in await quota(box, admin, "usage")


# ---- 6. Usage figures ---------------------------------------------------------------------------------------

async def test_usage_and_quota_usage_match_the_ledger(box: Sandbox, bot_runner: Any, admin: str) -> None:
    bot = await bot_runner.start(default_limits=dict(SAFE_DEFAULT_LIMITS), **FAST)
    watch = DeliveryWatch(bot)
    empty = await quota(box, admin, "usage")
    assert "This month: **0** credits, **0** job(s)" in empty and "nobody yet" in empty

    for n in range(2):  # alice: two jobs settled at 10 credits each
        _, task_id = await start_upscale(box, url=f"https://example.com/a{n}.mp4")
        box.evolink.complete(task_id, RESULT, credits_used=10.0)
        await watch.told(task_id)
    _, task_id = await start_upscale(box, url="https://example.com/broken.mp4")  # failed: not counted
    box.evolink.fail(task_id)
    await wait_told(box, box.alice_id, "failed")
    await watch.told(task_id)
    _, task_id = await start_upscale(box, user_id=box.bob_id, url="https://example.com/b0.mp4")
    box.evolink.complete(task_id, RESULT, credits_used=5.5)
    await watch.told(task_id)
    await start_upscale(box, user_id=box.bob_id, url="https://example.com/b1.mp4")  # running: 28.8 reserved
    assert "You already have 1 job(s) running" in await refused(box, box.bob_id)
    assert posts(box) == 5

    alice = await usage(box, box.alice_id)
    assert re.search(r"Jobs today: \*\*2\*\* \(3 left of 5, resets <t:\d+:R>\)", alice), alice
    assert "Jobs running: **0** (1 left of 1)" in alice
    assert re.search(r"Credits this month: \*\*20\*\* \(280 left of 300, resets <t:\d+:R>\)", alice), alice
    assert "Server jobs today: 4 of 50" in alice
    assert "Server credits this month: 54.3 of 3,000" in alice
    bob = await usage(box, box.bob_id)
    assert "Jobs today: **2** (3 left of 5" in bob
    assert "Jobs running: **1** (0 left of 1)" in bob
    assert "Credits this month: **34.3** (265.7 left of 300" in bob

    report = await quota(box, admin, "usage")
    assert "This month: **54.3** credits, **4** job(s)" in report
    assert "Today: **4** job(s)" in report
    assert "Running now: **1** job(s)" in report
    top = (f"Top members this month: 1. <@{box.bob_id}>: 34.3 credits, 2 job(s)\n"
           f"2. <@{box.alice_id}>: 20 credits, 2 job(s)\n")
    assert top in report and "3. " not in report, report

    shown = await quota(box, admin, "show", member=box.alice_id)
    assert "`user_daily_jobs`: **2** used of **5** (operator default)" in shown
    assert "`user_monthly_credits`: **20** used of **300** (operator default)" in shown
    assert "`server_monthly_credits`: **54.3** used of **3,000** (operator default)" in shown
    assert "one job past it" in shown, "the credit note is shown"


async def test_usage_with_no_limits_and_no_jobs(box: Sandbox, bot_runner: Any) -> None:
    await bot_runner.start(default_limits=UNLIMITED, **FAST)
    text = await usage(box, box.bob_id)
    assert "Jobs today: **0** (no limit" in text
    assert "Jobs running: **0** (no limit)" in text
    assert "Credits this month: **0** (no limit" in text
    assert "Server" not in text, "server limits are listed only when set"


# ---- 7. Bad values ------------------------------------------------------------------------------------------

BAD_VALUES = [
    pytest.param("set", {"limit": "user_daily_jobs", "value": -1}, "0 to 1,000,000,000", id="set-negative"),
    pytest.param("set", {"limit": "user_daily_jobs", "value": 1_000_000_001}, "0 to 1,000,000,000",
                 id="set-too-large"),
    pytest.param("set", {"limit": "user_weekly_jobs", "value": 3}, "is not one of", id="set-bogus-name"),
    pytest.param("unset", {"limit": "DROP TABLE tasks"}, "is not one of", id="unset-bogus-name"),
    pytest.param("role", {"limit": "user_daily_jobs", "value": -5}, "0 to 1,000,000,000", id="role-negative"),
    pytest.param("role", {"limit": "server_daily_jobs", "value": 3}, "is not one of", id="role-server-limit"),
    pytest.param("role-unset", {"limit": "nonsense"}, "is not one of", id="role-unset-bogus-name"),
]


@pytest.mark.parametrize(("sub", "options", "words"), BAD_VALUES)
async def test_bad_values_are_refused_and_change_nothing(box: Sandbox, bot_runner: Any, admin: str, sub: str,
                                                         options: dict[str, Any], words: str) -> None:
    patron = box.discord.add_role(box.guild_id, "patron")
    await bot_runner.start(default_limits={**UNLIMITED, "user_daily_jobs": 1}, **FAST)
    if sub.startswith("role"):
        options = {"role": patron, **options}
    shown = await quota(box, admin, "show")
    reply = await quota(box, admin, sub, strict=False, **options)
    assert reply.startswith("⚠️") and words in reply
    assert "Something went wrong" not in reply
    assert await quota(box, admin, "show") == shown
    assert "none yet" in await quota(box, admin, "log")
    await start_upscale(box, url="https://example.com/a.mp4")
    assert "1 job(s) for today" in await refused(box, box.alice_id)


# ---- 8. The audit log ---------------------------------------------------------------------------------------

async def test_log_lists_changes_newest_first_with_who_made_them(box: Sandbox, bot_runner: Any,
                                                                 admin: str) -> None:
    other = box.discord.add_member(box.guild_id, "co-admin", permissions=MANAGE_GUILD)
    patron = box.discord.add_role(box.guild_id, "patron")
    await bot_runner.start(default_limits=UNLIMITED, **FAST)
    assert "none yet" in await quota(box, admin, "log")

    await quota(box, admin, "set", limit="user_daily_jobs", value=3)
    await quota(box, other, "role", role=patron, limit="user_concurrent_jobs", value=2)
    await quota(box, admin, "block", member=box.bob_id, reason="spam")
    await quota(box, other, "unblock", member=box.bob_id)
    await quota(box, other, "unblock", member=box.bob_id)  # no-op: not logged
    await quota(box, admin, "role-unset", role=patron, limit="user_daily_jobs")  # no-op: not logged
    await quota(box, admin, "reset", member=box.alice_id)
    await quota(box, other, "unset", limit="user_daily_jobs")
    await quota(box, admin, "show")  # reading is not a change

    text = await quota(box, other, "log")
    entries = re.findall(r"^<t:(\d+):f> <@(\d+)>: (.*)$", text, re.MULTILINE)
    assert [(who, action) for _, who, action in entries] == [
        (other, "set user_daily_jobs = unlimited"),
        (admin, f"reset usage of <@{box.alice_id}> (0 job(s) this month)"),
        (other, f"unblocked <@{box.bob_id}>"),
        (admin, f"blocked <@{box.bob_id}>: spam"),
        (other, f"role <@&{patron}>: user_concurrent_jobs = 2"),
        (admin, "set user_daily_jobs = 3"),
    ]
    stamps = [int(at) for at, _, _ in entries]
    assert stamps == sorted(stamps, reverse=True)


async def test_log_shows_the_last_twenty_changes(box: Sandbox, bot_runner: Any, admin: str) -> None:
    await bot_runner.start(default_limits=UNLIMITED, **FAST)
    for value in range(23):
        await quota(box, admin, "set", limit="server_daily_jobs", value=value)
    text = await quota(box, admin, "log")
    values = [int(v) for v in re.findall(r"set server_daily_jobs = (\d+)$", text, re.MULTILINE)]
    assert values == list(range(22, 2, -1))


# ---- 9. Direct messages -------------------------------------------------------------------------------------

async def _dm_upscale(box: Sandbox, user_id: str) -> Any:
    interaction = await box.discord.slash("upscale", user_id=user_id, channel_id=box.channel_id, guild_id=None,
                                          options={"url": "https://example.com/dm.mp4"})
    await interaction.wait_ack()
    return interaction


async def test_upscale_in_a_dm_is_refused_by_default(box: Sandbox, bot_runner: Any) -> None:
    await bot_runner.start(discord_guild_ids=(), **FAST)
    interaction = await _dm_upscale(box, box.alice_id)
    assert interaction.ack["type"] == 4 and interaction.ack["data"]["flags"] & EPHEMERAL
    assert "works in servers" in interaction.ack["data"]["content"]
    assert box.evolink.requests == []


async def test_upscale_in_a_dm_works_when_allowed(box: Sandbox, bot_runner: Any) -> None:
    bot = await bot_runner.start(discord_guild_ids=(), allow_dm_upscale=True, default_limits=UNLIMITED, **FAST)
    watch = DeliveryWatch(bot)
    interaction = await _dm_upscale(box, box.alice_id)
    assert interaction.ack["type"] == 5
    card = await box.discord.wait_for(lambda: "Upscale task-" in embed_text(interaction.original)
                                      and embed_text(interaction.original))
    [task_id] = box.evolink.tasks
    assert task_id in card and posts(box) == 1
    box.evolink.complete(task_id, RESULT)
    await watch.told(task_id)
    [told] = [m for m in box.discord.dm_messages(box.alice_id) if not m.get("interaction_metadata")]
    assert RESULT in told["content"], "one DM with the result (the DM is the channel: no second post)"
    assert "Completed" in embed_text(interaction.original)


async def test_in_dms_the_member_defaults_apply_per_user_and_usage_works(box: Sandbox, bot_runner: Any) -> None:
    limits = {**UNLIMITED, "user_daily_jobs": 1, "server_daily_jobs": 1}
    await bot_runner.start(discord_guild_ids=(), allow_dm_upscale=True, default_limits=limits, **FAST)
    for user in (box.alice_id, box.bob_id):  # the server-wide limit does not join all DM users together
        interaction = await _dm_upscale(box, user)
        assert interaction.ack["type"] == 5
        await box.discord.wait_for(lambda i=interaction: "Upscale task-" in embed_text(i.original))
    again = await _dm_upscale(box, box.alice_id)
    reply = await box.discord.wait_for(lambda: next((m for m in again.followups if m["flags"] & EPHEMERAL), None))
    assert "1 job(s) for today" in reply["content"]
    assert posts(box) == 2

    interaction = await box.discord.slash("usage", user_id=box.alice_id, channel_id=box.channel_id, guild_id=None)
    ack = await interaction.wait_ack()
    assert ack["data"]["flags"] & EPHEMERAL
    text = embed_text(ack["data"])
    assert "Jobs today: **1** (0 left of 1" in text and "Server" not in text


async def test_a_long_log_still_fits_in_one_discord_message(box: Sandbox, bot_runner: Any, admin: str) -> None:
    await bot_runner.start(default_limits=UNLIMITED, **FAST)
    for _ in range(20):
        await quota(box, admin, "block", member=box.bob_id, reason="x" * 200)
    text = await quota(box, admin, "log")
    assert text.count("blocked <@") == 20 and len(text) < 4096, "each entry is cut short to fit"


async def test_every_synced_option_has_a_real_description(box: Sandbox, bot_runner: Any) -> None:
    """discord.py shows "…" for an option nobody described; admins would see it in Discord's command picker."""
    await bot_runner.start()

    def options(entries: list[dict[str, Any]], path: str) -> list[tuple[str, str]]:
        found = []
        for entry in entries:
            found.append((f"{path}{entry['name']}", entry.get("description", "")))
            found += options(entry.get("options") or [], f"{path}{entry['name']} ")
        return found

    # Slash commands only: Discord requires a context menu's description to be empty.
    described = options([c for c in box.discord.commands[box.guild_id] if c.get("type", 1) == 1], "/")
    assert len(described) > 20
    vague = [name for name, text in described if text.strip() in ("", "…", "...")]
    assert vague == [], f"options without a real description: {vague}"
