"""The notifier's way out to Discord: channel posts, DMs and task-card edits through discord.py.

Failures are sorted into three kinds the notifier can act on, so it never needs to know discord.py's
exception types: the member refused DMs, the target is gone (or we may not post there), or try again later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Protocol

import aiohttp
import discord

from bot.metrics import Metrics

log = logging.getLogger(__name__)

DM_CLOSED = 50007
UNKNOWN_MESSAGE = 10008
INVALID_WEBHOOK_TOKEN = 50027


class DeliveryError(Exception):
    """kind: 'dm_closed', 'gone' (will never work: unknown channel/message, no access) or 'retry'."""

    def __init__(self, kind: str, detail: str, code: int = 0, status: int = 0) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.code = code  # Discord's JSON error code, e.g. 10008 for a deleted message
        self.status = status  # the HTTP status, e.g. 400 when Discord refused the message itself


class Messenger(Protocol):
    async def send_dm(self, user_id: int, content: str, *, nonce: str, embed: discord.Embed | None = None,
                      button_url: str | None = None, button_label: str = "Download") -> int: ...

    async def send_channel(self, channel_id: int, content: str, *, nonce: str, mention_user_id: int,
                           embed: discord.Embed | None = None, button_url: str | None = None,
                           button_label: str = "Download") -> int: ...

    async def edit_card(self, task_id: int, channel_id: int, message_id: int, embed: discord.Embed) -> None: ...

    async def post_card(self, channel_id: int, embed: discord.Embed, *, nonce: str) -> int: ...

    def forget(self, task_id: int) -> None: ...


def _classify(error: Exception) -> DeliveryError:
    if isinstance(error, discord.HTTPException):
        detail = f"HTTP {error.status} code {error.code}"
        if error.code == DM_CLOSED:
            return DeliveryError("dm_closed", detail, error.code, error.status)
        if error.status == 429 or error.status >= 500:
            return DeliveryError("retry", detail, error.code, error.status)
        return DeliveryError("gone", detail, error.code, error.status)
    return DeliveryError("retry", type(error).__name__)


def _download_button(url: str | None, label: str = "Download") -> discord.ui.View | None:
    """A link button to the result: it needs no handler, so it keeps working after restarts."""
    if url is None:
        return None
    view = discord.ui.View(timeout=None)
    view.add_item(discord.ui.Button(style=discord.ButtonStyle.link, label=label, emoji="⬇️", url=url))
    return view


_TRANSIENT = (discord.HTTPException, aiohttp.ClientError, asyncio.TimeoutError, OSError)


class DiscordMessenger:
    """Sends with the bot token; edits the card through the interaction only while its token is fresh."""

    def __init__(self, client: discord.Client, *, edit_window: float,
                 clock: Callable[[], float] = time.monotonic, metrics: Metrics | None = None) -> None:
        self._client = client
        self.metrics = metrics or Metrics()
        self._edit_window = edit_window
        self._clock = clock
        self._interactions: dict[int, tuple[discord.Interaction, float]] = {}

    def remember_interaction(self, task_id: int, interaction: discord.Interaction, received_at: float) -> None:
        """Keep the interaction (in memory only: its token is a credential) to edit the card through it."""
        self._interactions[task_id] = (interaction, received_at)

    def forget(self, task_id: int) -> None:
        self._interactions.pop(task_id, None)

    @contextlib.contextmanager
    def _counted(self, kind: str) -> Iterator[None]:
        """Count one send or edit by how it ended: ok, or the DeliveryError's kind (dm_closed, gone, retry)."""
        try:
            yield
        except DeliveryError as error:
            self.metrics.delivery(kind, error.kind)
            raise
        self.metrics.delivery(kind, "ok")

    async def send_dm(self, user_id: int, content: str, *, nonce: str, embed: discord.Embed | None = None,
                      button_url: str | None = None, button_label: str = "Download") -> int:
        with self._counted("dm"):
            try:
                channel = await self._client.create_dm(discord.Object(user_id))
                message = await channel.send(content, embed=embed, nonce=nonce,
                                             view=_download_button(button_url, button_label),
                                             allowed_mentions=discord.AllowedMentions.none())
            except _TRANSIENT as error:
                raise _classify(error) from None
        return message.id

    async def send_channel(self, channel_id: int, content: str, *, nonce: str, mention_user_id: int,
                           embed: discord.Embed | None = None, button_url: str | None = None,
                           button_label: str = "Download") -> int:
        channel = self._client.get_partial_messageable(channel_id)
        # Only the member is pinged, whatever their file name says (@everyone, role mentions).
        mentions = discord.AllowedMentions(everyone=False, roles=False, users=[discord.Object(mention_user_id)],
                                           replied_user=False)
        with self._counted("channel"):
            try:
                message = await channel.send(content, embed=embed, nonce=nonce, allowed_mentions=mentions,
                                             view=_download_button(button_url, button_label))
            except _TRANSIENT as error:
                raise _classify(error) from None
        return message.id

    async def post_card(self, channel_id: int, embed: discord.Embed, *, nonce: str) -> int:
        """A new task card in the channel (the old one was deleted)."""
        with self._counted("card_post"):
            try:
                message = await self._client.get_partial_messageable(channel_id).send(
                    embed=embed, nonce=nonce, allowed_mentions=discord.AllowedMentions.none())
            except _TRANSIENT as error:
                raise _classify(error) from None
        return message.id

    async def edit_card(self, task_id: int, channel_id: int, message_id: int, embed: discord.Embed) -> None:
        with self._counted("card_edit"):
            await self._edit_card(task_id, channel_id, message_id, embed)

    async def _edit_card(self, task_id: int, channel_id: int, message_id: int, embed: discord.Embed) -> None:
        entry = self._interactions.get(task_id)
        if entry is not None:
            interaction, received_at = entry
            if self._clock() - received_at < self._edit_window:
                try:
                    await interaction.edit_original_response(embed=embed)
                    return
                except discord.HTTPException as error:
                    if error.code != INVALID_WEBHOOK_TOKEN:
                        raise _classify(error) from None
                except _TRANSIENT as error:
                    raise _classify(error) from None
            # The token is (nearly) expired: from now on edit with the bot token.
            self.forget(task_id)
        message = self._client.get_partial_messageable(channel_id).get_partial_message(message_id)
        try:
            await message.edit(embed=embed)
        except _TRANSIENT as error:
            raise _classify(error) from None
