"""The offline sandbox: both fakes, the real bot against them, and scripted members, all on loopback.

`python -m bot` runs this when no credentials are configured. It prints the conversation as the members see
it (an admin sets a daily limit, a member's job runs to the end, a second job is refused) and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.client import UpscaleBot, point_discord_at
from bot.config import Settings
from sandbox.fake_discord import FakeDiscord
from sandbox.fake_evolink import FakeEvolink
from sandbox.offline_view import Transcript


def database_url(database: str | Path) -> str:
    """A DATABASE_URL as given (sqlite:..., postgres...), else the SQLite file at that path (tests, benchmarks)."""
    if isinstance(database, str) and database.startswith(("sqlite:", "postgres")):
        return database
    return f"sqlite:///{database}"


@dataclass
class Sandbox:
    """A running fake Discord and fake Evolink with one server, one channel and two members."""

    discord: FakeDiscord
    evolink: FakeEvolink
    guild_id: str
    channel_id: str
    alice_id: str
    bob_id: str

    def settings(self, database: str | Path, **overrides: object) -> Settings:
        """Settings for the real bot against these fakes; `database` is a DATABASE_URL or a SQLite file's path."""
        values: dict[str, object] = {
            "discord_token": self.discord.bot_token,
            "evolink_api_key": self.evolink.api_key,
            "evolink_base_url": self.evolink.base_url,
            "database_url": database_url(database),
            "discord_guild_ids": (int(self.guild_id),),
            "discord_api_base_url": self.discord.api_base,
            "discord_gateway_url": self.discord.gateway_url,
            "poll_min_seconds": 0.2,
            "poll_max_seconds": 0.3,  # tests wait for the next query after an upstream change: keep it short
            "card_edit_seconds": 1.0,
            "evolink_timeout_seconds": 2.0,
            "lease_seconds": 2.0,  # a killed process's tasks are taken over within seconds, not half a minute
            "http_listen": ("127.0.0.1", 0),  # any free port: bots running side by side never collide
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    def env(self, database: str | Path, **overrides: str) -> dict[str, str]:
        """The same settings as environment variables, for a bot run as its own process."""
        env = {
            "DISCORD_TOKEN": self.discord.bot_token,
            "EVOLINK_API_KEY": self.evolink.api_key,
            "EVOLINK_BASE_URL": self.evolink.base_url,
            "DATABASE_URL": database_url(database),
            "DISCORD_GUILD_IDS": self.guild_id,
            "DISCORD_API_BASE_URL": self.discord.api_base,
            "DISCORD_GATEWAY_URL": self.discord.gateway_url,
            "POLL_MIN_SECONDS": "0.2",
            "POLL_MAX_SECONDS": "1",
            "CARD_EDIT_SECONDS": "1",
            "EVOLINK_TIMEOUT_SECONDS": "2",
            "LEASE_SECONDS": "2",
            "LOG_LEVEL": "INFO",
        }
        if "CALLBACK_LISTEN" not in overrides:  # the older name, which must not disagree with HTTP_LISTEN
            env["HTTP_LISTEN"] = "127.0.0.1:0"  # any free port: bots running side by side never collide
        env.update(overrides)
        return env


# Distinctive stand-ins for the real secrets, so tests can prove they never reach a log.
SANDBOX_BOT_TOKEN = "MTE5ODc2NTQzMjE.sandbox-bot-token.Zq7Xw3"
SANDBOX_API_KEY = "sk-sandbox-evolink-7f3c9a1e5b"


@contextlib.asynccontextmanager
async def sandbox(*, auto_complete_after: float | None = None, evolink_options: dict[str, Any] | None = None,
                  **discord_options: object) -> AsyncIterator[Sandbox]:
    discord_options.setdefault("bot_token", SANDBOX_BOT_TOKEN)
    fake_discord = FakeDiscord(**discord_options)  # type: ignore[arg-type]
    fake_evolink = FakeEvolink(api_key=SANDBOX_API_KEY, auto_complete_after=auto_complete_after,
                               **{"estimated_time": 8, **(evolink_options or {})})
    await fake_discord.start()
    await fake_evolink.start()
    try:
        guild = fake_discord.add_guild("Sandbox Server")
        channel = fake_discord.add_channel(guild, "video-lab")
        alice = fake_discord.add_member(guild, "alice")
        bob = fake_discord.add_member(guild, "bob")
        yield Sandbox(fake_discord, fake_evolink, guild, channel, alice, bob)
    finally:
        await fake_discord.close()
        await fake_evolink.close()


MANAGE_GUILD = 1 << 5  # the Manage Server permission bit


async def run_offline(timeout: float = 60.0, *, inspect: Callable[[Sandbox], None] | None = None) -> int:
    """Run the scripted demo; 0 when it ran to the end. `inspect` sees the fakes before they close (tests)."""
    print("No credentials configured: running the offline sandbox (a fake Discord and a fake Evolink on 127.0.0.1).")
    print("To run the real bot, set DISCORD_TOKEN and EVOLINK_API_KEY (see .env.example).\n")
    with tempfile.TemporaryDirectory(prefix="upscale-sandbox-") as tmp:
        async with sandbox(auto_complete_after=5.0) as box:
            settings = box.settings(Path(tmp) / "sandbox.db", card_edit_seconds=1.5)
            point_discord_at(settings)
            bot = UpscaleBot(settings, guild_ready_timeout=0.1)
            runner = asyncio.create_task(bot.start(settings.discord_token))
            try:
                await asyncio.wait_for(_script(box), timeout)
            except TimeoutError as error:
                print(f"\nThe sandbox run did not finish in time: {error or f'{timeout:g} s passed'}")
                return 1
            finally:
                await bot.close()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await runner
            if inspect is not None:
                inspect(box)
    print("\nDone: the whole flow ran offline. Run the tests with the README's second command.")
    return 0


async def _script(box: Sandbox) -> None:
    """carol (an admin) sets a daily limit of one job; alice upscales a video, then is refused a second one; bob,
    whose Discord is in Korean, reads his usage in Korean."""
    fake = box.discord
    carol = fake.add_member(box.guild_id, "carol", permissions=MANAGE_GUILD)
    names = {box.alice_id: "alice", box.bob_id: "bob", carol: "carol"}
    channels = {box.channel_id: "in #video-lab", fake.dm_channel_id(box.alice_id): "DM to alice"}
    view = Transcript(fake, names, channels, lambda: [url for t in box.evolink.tasks.values() for url in t.results])
    where = {"channel_id": box.channel_id, "guild_id": box.guild_id}
    print("Sandbox Server, channel #video-lab: alice is a member; carol has Manage Server.\n")
    await fake.wait_ready()

    limit = await fake.slash("quota", user_id=carol, subcommand=["set"], **where,
                             options={"limit": "user_daily_jobs", "value": 1})
    view.command("carol", "/quota set limit:user_daily_jobs value:1", limit)
    await view.until(lambda: limit.ack)

    video = fake.make_attachment("holiday-clip.mp4", size=12_345_678)
    job = await fake.slash("upscale", user_id=box.alice_id, **where, options={"video": video, "scale": 2})
    view.command("alice", "/upscale video:holiday-clip.mp4 scale:2", job)

    def told_and_card_final() -> bool:
        posted = any(f"<@{box.alice_id}>" in (m.get("content") or "") for m in fake.channel_messages(box.channel_id))
        status = {f["name"]: f["value"] for e in (job.original or {}).get("embeds") or [] for f in e["fields"]}
        return posted and bool(fake.dm_messages(box.alice_id)) and "Completed" in status.get("Status", "")

    await view.until(told_and_card_final)

    listing = await fake.slash("tasks", user_id=box.alice_id, **where)
    view.command("alice", "/tasks", listing)
    await view.until(lambda: listing.original)

    again = await fake.slash("upscale", user_id=box.alice_id, **where,
                             options={"video": fake.make_attachment("another-clip.mp4")})
    view.command("alice", "/upscale video:another-clip.mp4", again)
    await view.until(lambda: again.followups or (again.original or {}).get("content"))

    fake.set_user_locale(box.bob_id, "ko")  # each member reads the bot in their Discord's language
    usage = await fake.slash("usage", user_id=box.bob_id, **where)
    view.command("bob", "/사용량   (his Discord is in Korean: /usage)", usage)
    await view.until(lambda: usage.ack)
