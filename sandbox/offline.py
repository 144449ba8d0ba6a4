"""The offline sandbox: both fakes, the real bot against them, and a scripted member, all on loopback.

`python -m bot` runs this when no DISCORD_TOKEN is configured. It prints the conversation as the member
would see it and exits 0 once the result has been posted in the channel and sent by DM.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.client import UpscaleBot, point_discord_at
from bot.config import Settings
from sandbox.fake_discord import FakeDiscord
from sandbox.fake_evolink import FakeEvolink


@dataclass
class Sandbox:
    """A running fake Discord and fake Evolink with one server, one channel and two members."""

    discord: FakeDiscord
    evolink: FakeEvolink
    guild_id: str
    channel_id: str
    alice_id: str
    bob_id: str

    def settings(self, database_path: str | Path, **overrides: object) -> Settings:
        values: dict[str, object] = {
            "discord_token": self.discord.bot_token,
            "evolink_api_key": self.evolink.api_key,
            "evolink_base_url": self.evolink.base_url,
            "database_url": f"sqlite:///{database_path}",
            "discord_guild_ids": (int(self.guild_id),),
            "discord_api_base_url": self.discord.api_base,
            "discord_gateway_url": self.discord.gateway_url,
            "poll_min_seconds": 0.2,
            "poll_max_seconds": 1.0,
            "card_edit_seconds": 1.0,
            "evolink_timeout_seconds": 2.0,
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    def env(self, database_path: str | Path, **overrides: str) -> dict[str, str]:
        """The same settings as environment variables, for a bot run as its own process."""
        env = {
            "DISCORD_TOKEN": self.discord.bot_token,
            "EVOLINK_API_KEY": self.evolink.api_key,
            "EVOLINK_BASE_URL": self.evolink.base_url,
            "DATABASE_URL": f"sqlite:///{database_path}",
            "DISCORD_GUILD_IDS": self.guild_id,
            "DISCORD_API_BASE_URL": self.discord.api_base,
            "DISCORD_GATEWAY_URL": self.discord.gateway_url,
            "POLL_MIN_SECONDS": "0.2",
            "POLL_MAX_SECONDS": "1",
            "CARD_EDIT_SECONDS": "1",
            "EVOLINK_TIMEOUT_SECONDS": "2",
            "LOG_LEVEL": "INFO",
        }
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


_NAMES: dict[str, str] = {}


def _as_discord_shows(text: str) -> str:
    """Render mentions and <t:...:R> timestamps the way the Discord client would."""

    def timestamp(match: re.Match[str]) -> str:
        delta = int(match.group(1)) - time.time()
        span = f"{round(abs(delta) / 3600)} hours" if abs(delta) >= 5400 else f"{round(abs(delta))} seconds"
        return f"in {span}" if delta >= 0 else f"{span} ago"

    text = re.sub(r"<t:(\d+):R>", timestamp, text)
    return re.sub(r"<@(\d+)>", lambda m: "@" + _NAMES.get(m.group(1), m.group(1)), text)


def _show(who: str, text: str) -> None:
    indent = " " * (len(who) + 2)
    print(f"{who}: " + _as_discord_shows(text).replace("\n", "\n" + indent), flush=True)


def _embed_text(message: dict) -> str:
    parts = []
    for embed in message.get("embeds") or []:
        parts.append(f"[{embed.get('title', '')}]")
        parts.extend(f"{field['name']}: {field['value']}" for field in embed.get("fields", []))
    return "\n".join(parts)


async def run_offline(timeout: float = 60.0) -> int:
    """Run the scripted demo; 0 when the member got the result in the channel and by DM."""
    print("No DISCORD_TOKEN set: running the offline sandbox (fake Discord + fake Evolink on 127.0.0.1).")
    print("Set DISCORD_TOKEN and EVOLINK_API_KEY (see .env.example) to run the real bot.\n")
    with tempfile.TemporaryDirectory(prefix="upscale-sandbox-") as tmp:
        async with sandbox(auto_complete_after=6.0) as box:
            settings = box.settings(Path(tmp) / "sandbox.db", card_edit_seconds=1.5)
            point_discord_at(settings)
            bot = UpscaleBot(settings, guild_ready_timeout=0.1)
            runner = asyncio.create_task(bot.start(settings.discord_token))
            try:
                await asyncio.wait_for(_script(box), timeout)
            except TimeoutError:
                print("\nThe sandbox run did not finish in time.")
                return 1
            finally:
                await bot.close()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await runner
    print("\nDone: the whole flow ran offline. Run the tests with the README's second command.")
    return 0


async def _script(box: Sandbox) -> None:
    fake = box.discord
    _NAMES.update({box.alice_id: "alice", box.bob_id: "bob"})
    await fake.wait_ready()
    video = fake.make_attachment("holiday-clip.mp4", size=12_345_678)
    _show("alice", "/upscale video:holiday-clip.mp4 scale:2")
    interaction = await fake.slash("upscale", user_id=box.alice_id, channel_id=box.channel_id,
                                   guild_id=box.guild_id, options={"video": video, "scale": 2})
    await interaction.wait_ack()
    card = await fake.wait_for(lambda: interaction.original if interaction.original
                               and interaction.original.get("embeds") else None)
    _show("bot (task card)", _embed_text(card))
    shown = _embed_text(card)

    def progressed() -> str | None:
        original = interaction.original or {}
        text = _embed_text(original)
        return text if text != shown else None

    def channel_result() -> dict | None:
        posts = [m for m in fake.channel_messages(box.channel_id) if f"<@{box.alice_id}>" in (m.get("content") or "")]
        return posts[-1] if posts else None

    while channel_result() is None:
        text = await fake.wait_for(lambda: progressed() or channel_result())
        if isinstance(text, str):
            _show("bot (card edited)", text)
            shown = text
    _show("bot (in #video-lab)", channel_result()["content"])  # type: ignore[index]
    dm = await fake.wait_for(lambda: fake.dm_messages(box.alice_id))
    _show("bot (DM to alice)", dm[-1]["content"])
    _show("alice", "/tasks")
    listing = await fake.slash("tasks", user_id=box.alice_id, channel_id=box.channel_id, guild_id=box.guild_id)
    await listing.wait_ack()
    reply = await fake.wait_for(lambda: listing.original)
    _show("bot (only alice sees this)", (reply.get("embeds") or [{}])[0].get("description", ""))
