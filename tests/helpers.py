"""Small helpers shared by the end-to-end tests."""

from __future__ import annotations

from typing import Any

from sandbox.offline import Sandbox


def embed_text(message: dict[str, Any] | None) -> str:
    """Everything an embed shows, flattened, for substring assertions."""
    if not message:
        return ""
    parts = [message.get("content") or ""]
    for embed in message.get("embeds") or []:
        parts += [embed.get("title") or "", embed.get("description") or ""]
        parts += [f"{f['name']}: {f['value']}" for f in embed.get("fields", [])]
        parts.append((embed.get("footer") or {}).get("text", ""))
    return "\n".join(parts)


def mentions(box: Sandbox, channel_id: str, user_id: str) -> list[dict[str, Any]]:
    """Messages in the channel that mention the member (the result or failure posts)."""
    return [m for m in box.discord.channel_messages(channel_id) if f"<@{user_id}>" in (m.get("content") or "")]


async def start_upscale(box: Sandbox, user_id: str | None = None, **options: Any) -> tuple[Any, str]:
    """Run /upscale as a member; wait for the task card; return (interaction, upstream task id)."""
    user_id = user_id or box.alice_id
    before = set(box.evolink.tasks)
    interaction = await box.discord.slash("upscale", user_id=user_id, channel_id=box.channel_id,
                                          guild_id=box.guild_id, options=options)
    await interaction.wait_ack()
    task_id = await box.discord.wait_for(lambda: next(iter(set(box.evolink.tasks) - before), None))
    await box.discord.wait_for(lambda: task_id in embed_text(interaction.original))
    return interaction, task_id


async def wait_told(box: Sandbox, user_id: str, text: str, channel_id: str | None = None) -> tuple[dict, dict]:
    """Wait for the channel post and the DM that contain `text`; return both."""
    channel_id = channel_id or box.channel_id
    post = await box.discord.wait_for(
        lambda: next((m for m in mentions(box, channel_id, user_id) if text in m["content"]), None), timeout=30)
    dm = await box.discord.wait_for(
        lambda: next((m for m in box.discord.dm_messages(user_id) if text in m["content"]), None), timeout=30)
    return post, dm


class DeliveryWatch:
    """Records the tasks the bot's notifier has finished telling; await `told(upstream_id)`."""

    def __init__(self, bot: Any) -> None:
        import asyncio

        self.told_ids: list[str | None] = []
        self._changed = asyncio.Event()
        bot.notifier.listeners.append(self._on_told)

    def _on_told(self, task: Any) -> None:
        self.told_ids.append(task.upstream_id)
        self._changed.set()

    async def told(self, upstream_id: str | None, timeout: float = 15) -> None:
        import asyncio

        async def wait() -> None:
            while upstream_id not in self.told_ids:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), timeout)
