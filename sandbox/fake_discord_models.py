"""Data model and payload builders for the loopback fake Discord (`sandbox.fake_discord`).

Kept apart from the server so the shapes Discord sends (users, members, channels, messages,
attachments) live in one place and can be checked against discord.py's parsers.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

DISCORD_EPOCH_MS = 1_420_070_400_000
API_PREFIX = "/api/v10"
EPHEMERAL = 1 << 6
LOADING = 1 << 7
# What @everyone may do in a fresh server: view, send, embed, attach, read history, add reactions,
# use application commands. Members get this plus their roles and their own extra bits.
DEFAULT_EVERYONE_PERMISSIONS = (
    (1 << 6) | (1 << 10) | (1 << 11) | (1 << 14) | (1 << 15) | (1 << 16) | (1 << 31)
)

_last_snowflake = 0


def snowflake(shard: tuple[int, int] | None = None) -> str:
    """A new, strictly increasing Discord-style snowflake (timestamp in the high bits) as a string.

    With `shard=(shard_id, shard_count)` the id lands on that gateway shard, (id >> 22) % count == shard_id:
    the timestamp is moved forward to the next millisecond that fits (less than `count` ms ahead), so
    tests can place guilds on chosen shards without retrying against the clock.
    """
    global _last_snowflake
    value = max((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22, _last_snowflake + 1)
    if shard is not None:
        shard_id, count = shard
        if not 0 <= shard_id < count:
            raise AssertionError(f"shard {shard_id} is not one of {count} shards")
        skip = (shard_id - (value >> 22)) % count
        if skip:
            value = ((value >> 22) + skip) << 22
    _last_snowflake = value
    return str(value)


def shard_of(guild_id: str | int, shard_count: int) -> int:
    """The gateway shard Discord routes a guild's events to: (guild_id >> 22) % shard_count."""
    return (int(guild_id) >> 22) % shard_count


def iso_now() -> str:
    """Discord's ISO-8601 timestamp format."""
    return datetime.now(UTC).isoformat()


def json_body(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def flatten_errors(errors: dict[str, Any], prefix: str = "") -> list[str]:
    """Discord's nested `errors` as "path: message" lines (the way discord.py words them), for readable failures."""
    lines: list[str] = []
    for key, value in errors.items():
        if key == "_errors":
            lines.append(f"{prefix or '(body)'}: " + " ".join(e.get("message", "") for e in value))
        elif isinstance(value, dict):
            lines.extend(flatten_errors(value, f"{prefix}.{key}" if prefix else key))
    return lines


class DiscordError(Exception):
    """An error answer from the fake, rendered as Discord's JSON error body.

    `errors` is Discord's nested form-error tree (50035 Invalid Form Body), naming the offending path.
    """

    def __init__(self, status: int, code: int, message: str, *, retry_after: float | None = None,
                 errors: dict[str, Any] | None = None) -> None:
        detail = "; ".join(flatten_errors(errors)) if errors else ""
        super().__init__(f"{status} {code} {message}" + (f" ({detail})" if detail else ""))
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.errors = errors

    def body(self) -> dict[str, Any]:
        if self.status == 429:
            return {"message": self.message, "retry_after": self.retry_after or 0.0, "global": False}
        if self.errors:
            return {"message": self.message, "code": self.code, "errors": self.errors}
        return {"message": self.message, "code": self.code}


def invalid_form_body(errors: dict[str, Any]) -> DiscordError:
    """Discord's answer to a body that breaks its documented rules: 400, code 50035, with the paths."""
    return DiscordError(400, 50035, "Invalid Form Body", errors=errors)


def unknown_channel() -> DiscordError:
    return DiscordError(404, 10003, "Unknown Channel")


def unknown_message() -> DiscordError:
    return DiscordError(404, 10008, "Unknown Message")


def unknown_webhook() -> DiscordError:
    return DiscordError(404, 10015, "Unknown Webhook")


def unknown_interaction() -> DiscordError:
    return DiscordError(404, 10062, "Unknown interaction")


@dataclass
class RecordedRequest:
    """One REST request as the fake saw it (the Authorization header is never stored)."""

    method: str
    path: str  # without the /api/v10 prefix
    query: dict[str, str]
    json: Any
    status: int
    at: float  # the fake's clock (time.monotonic() plus any FakeDiscord.advance())
    files: list[dict[str, Any]] = field(default_factory=list)  # {name, filename, size, content_type}

    def __str__(self) -> str:
        return f"{self.method} {self.path} -> {self.status}"


@dataclass
class Injection:
    method: str
    path_regex: str
    error: DiscordError
    times: int


@dataclass
class Hold:
    """Requests that are carried out but whose answer is held back: a client that dies meanwhile never
    learns that its message was created (the crash window between sending and recording)."""

    method: str
    path_regex: str
    times: int
    held: int = 0
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        self.released.set()


@dataclass
class User:
    id: str
    username: str
    bot: bool = False
    dms_open: bool = True
    locale: str = "en-US"  # the member's client language: `locale` in every interaction they send

    def payload(self) -> dict[str, Any]:
        return {
            "id": self.id, "username": self.username, "discriminator": "0", "global_name": None,
            "avatar": None, "bot": self.bot, "public_flags": 0,
        }


@dataclass
class Role:
    id: str
    guild_id: str
    name: str
    permissions: int
    position: int

    def payload(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "permissions": str(self.permissions), "position": self.position,
            "color": 0, "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False, "icon": None, "unicode_emoji": None, "managed": False, "mentionable": False,
            "flags": 0,
        }


@dataclass
class Member:
    user_id: str
    roles: list[str]
    permissions: int  # extra bits granted to this member on top of @everyone and roles
    joined_at: str = field(default_factory=iso_now)


@dataclass
class Channel:
    id: str
    type: int  # 0 guild text, 1 DM
    name: str | None
    guild_id: str | None = None
    recipient_id: str | None = None
    position: int = 0
    deleted: bool = False
    message_ids: list[str] = field(default_factory=list)


@dataclass
class Guild:
    id: str
    name: str
    owner_id: str
    preferred_locale: str = "en-US"  # the server's: `guild_locale` in interactions, `preferred_locale` in payloads
    channel_ids: list[str] = field(default_factory=list)
    role_ids: list[str] = field(default_factory=list)
    members: dict[str, Member] = field(default_factory=dict)


def channel_payload(channel: Channel, users: dict[str, User]) -> dict[str, Any]:
    if channel.type == 1:
        recipient = users[channel.recipient_id or ""]
        return {"id": channel.id, "type": 1, "last_message_id": None, "flags": 0,
                "recipients": [recipient.payload()]}
    return {
        "id": channel.id, "type": channel.type, "guild_id": channel.guild_id, "name": channel.name,
        "position": channel.position, "parent_id": None, "topic": None, "nsfw": False,
        "permission_overwrites": [], "rate_limit_per_user": 0, "last_message_id": None, "flags": 0,
    }


def make_attachment_payload(filename: str, size: int, content_type: str | None, url: str | None,
                            channel_id: str | None = None) -> dict[str, Any]:
    """An attachment object with a CDN URL signed the way Discord signs them (ex/is/hm query)."""
    att_id = snowflake()
    issued = int(time.time())
    expires = int((datetime.now(UTC) + timedelta(hours=24)).timestamp())
    signature = f"?ex={expires:08x}&is={issued:08x}&hm={secrets.token_hex(32)}&"
    path = f"attachments/{channel_id or snowflake()}/{att_id}/{filename}"
    data: dict[str, Any] = {
        "id": att_id, "filename": filename, "size": size,
        "url": url or f"https://cdn.discordapp.com/{path}{signature}",
        "proxy_url": f"https://media.discordapp.net/{path}{signature}",
    }
    if content_type is not None:
        data["content_type"] = content_type
    return data


def public(message: dict[str, Any]) -> dict[str, Any]:
    """The message as Discord would send it: bookkeeping keys ("_...") removed."""
    return {k: v for k, v in message.items() if not k.startswith("_")}


@dataclass
class FakeInteraction:
    """One interaction the fake dispatched, and everything the bot did with it.

    `original` and `followups` are the live message dicts (they follow later edits).
    """

    id: str
    token: str
    user_id: str
    channel_id: str
    guild_id: str | None
    type: int = 2
    ack: dict[str, Any] | None = None
    ack_latency: float | None = None
    original: dict[str, Any] | None = None
    followups: list[dict[str, Any]] = field(default_factory=list)
    original_deleted: bool = False
    payload: dict[str, Any] = field(default_factory=dict, repr=False)  # the INTERACTION_CREATE data
    dispatched_at: float = 0.0
    shard_id: int | None = None  # the gateway shard whose session received the INTERACTION_CREATE
    session_id: str | None = None  # that session's id (tells two processes holding the same shard apart)
    _waiter: Callable[..., Any] | None = field(default=None, repr=False)

    async def wait_ack(self, timeout: float = 5) -> dict[str, Any]:
        """Wait until the bot acknowledged this interaction; returns the callback body."""
        if self._waiter is None:  # pragma: no cover - always set by FakeDiscord
            raise RuntimeError("interaction not bound to a FakeDiscord")
        return await self._waiter(lambda: self.ack, timeout=timeout, what=f"ack of interaction {self.id}")

    def messages(self) -> list[dict[str, Any]]:
        """The original response (if any) followed by the followups, in order."""
        return ([self.original] if self.original is not None else []) + list(self.followups)


class ChangeSignal:
    """Wakes every waiter on each state change, without polling (an Event swapped on each notify)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        await asyncio.wait_for(self._event.wait(), timeout)
