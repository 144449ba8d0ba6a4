"""Small helpers shared by the end-to-end tests."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from sandbox.offline import Sandbox
from storage import TaskRecord, open_storage

# bot/notifier.py nonce_for: "up<task number>.<created_at><kind>" cut to 25 characters with the kind kept: d (DM),
# c (channel post), k (replacement card); upper case for the minimal message sent after Discord refused the full one.
_NONCE_RE = re.compile(r"up(\d+)(?:\.\d*)?([A-Za-z])")


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


async def start_upscale(box: Sandbox, user_id: str | None = None, *, guild_id: str | None = None,
                        channel_id: str | None = None, **options: Any) -> tuple[Any, str]:
    """Run /upscale as a member (in the sandbox's channel unless told another guild's); wait for the task card;
    return (interaction, upstream task id)."""
    user_id = user_id or box.alice_id
    before = set(box.evolink.tasks)
    interaction = await box.discord.slash("upscale", user_id=user_id, channel_id=channel_id or box.channel_id,
                                          guild_id=guild_id or box.guild_id, options=options)
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


def send_attempts(box: Sandbox, *, accepted_only: bool = False) -> Counter[tuple[int | None, str]]:
    """Message POSTs the fake Discord received, by (task number, nonce kind); (None, "") for posts without one.

    Counting messages is not enough: the fake answers a repeated enforce_nonce with the message it already has,
    so a notifier that sends twice still leaves one message. Every attempt is here, refused ones too (a 429,
    a closed DM), unless `accepted_only`.
    """
    counts: Counter[tuple[int | None, str]] = Counter()
    for request in box.discord.find_requests("POST", r"^/channels/\d+/messages$"):
        if accepted_only and not 200 <= request.status < 300:
            continue
        nonce = request.json.get("nonce") if isinstance(request.json, dict) else None
        match = _NONCE_RE.fullmatch(str(nonce)) if nonce is not None else None
        counts[(int(match[1]), match[2]) if match else (None, "")] += 1
    return counts


async def stored_task(database_url: str, upstream_id: str | None = None, *, user_id: str | int | None = None
                      ) -> TaskRecord:
    """The task as stored, read through the storage layer so it works on every backend (the bot may be another
    process, or dead): by upstream id, or else the member's newest task."""
    store = await open_storage(database_url)
    try:
        if upstream_id is not None:
            task = await store.get_task_by_upstream_id(upstream_id)
        else:
            assert user_id is not None, "give the upstream id or the member"
            task = next(iter(await store.user_tasks(int(user_id), 1)), None)
    finally:
        await store.close()
    assert task is not None, f"no task for {upstream_id or f'member {user_id}'}"
    return task


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


async def start_client(client: Any, token: str) -> Any:
    """Start a discord.py client against the fake Discord and wait until it is ready (every shard it holds);
    return its running task, or raise what stopped it."""
    import asyncio

    task = asyncio.create_task(client.start(token))
    ready = asyncio.create_task(client.wait_until_ready())
    done, _ = await asyncio.wait({task, ready}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    if ready not in done:
        ready.cancel()
        await client.close()
        if task in done:
            task.result()  # re-raise why the client stopped
        raise AssertionError("the client did not become ready")
    return task


async def upscale_to_the_end(box: Sandbox, bot: Any, result: str, user_id: str | None = None,
                             ) -> tuple[Any, str, dict[str, Any], dict[str, Any]]:
    """A member's /upscale of a link, completed upstream with `result`; once the notifier has told them, return
    (the interaction, the upstream id, the channel post that mentions them, their DM)."""
    user_id = user_id or box.alice_id
    watch = DeliveryWatch(bot)
    interaction, task_id = await start_upscale(box, user_id, url="https://example.com/clip.mp4")
    box.evolink.complete(task_id, result)
    await watch.told(task_id)
    [post] = mentions(box, box.channel_id, user_id)
    [dm] = box.discord.dm_messages(user_id)
    return interaction, task_id, post, dm


def metric(exposition: str, name: str, **labels: str) -> float | None:
    """One sample of a Prometheus text exposition (read with prometheus-client's own parser), None when absent: for
    a bot that runs as its own process, /metrics is the only view of its counters."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


# What each SQLite migration after 0003 added, to undo it: tests that start from an older schema rewind a file
# with rewind_sqlite(). A new migration adds its undo here.
_SQLITE_UNDO = {
    4: ("ALTER TABLE tasks DROP COLUMN callback_token",),
    5: ("ALTER TABLE tasks DROP COLUMN lease_owner", "ALTER TABLE tasks DROP COLUMN lease_until",
        "DROP TABLE throttles"),
    6: ("DROP TABLE member_settings",),
    7: ("ALTER TABLE tasks DROP COLUMN locale", "ALTER TABLE tasks DROP COLUMN guild_locale"),
    # An older bot wrote words: new rows keep their code as their words (the NOT NULL of `action` stays dropped).
    8: ("UPDATE quota_log SET action = code WHERE action IS NULL", "ALTER TABLE quota_log DROP COLUMN code",
        "ALTER TABLE quota_log DROP COLUMN params"),
}


def rewind_sqlite(conn: Any, version: int) -> None:
    """Put a SQLite database back to the schema of migration `version` (>= 3), as an older bot left it."""
    for number in sorted(_SQLITE_UNDO, reverse=True):
        if number > version:
            for statement in _SQLITE_UNDO[number]:
                conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {int(version)}")
