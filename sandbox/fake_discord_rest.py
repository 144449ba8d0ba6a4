"""REST v10 routes of the loopback fake Discord, with the Discord rules that break real bots.

Every request is parsed (JSON, or multipart with `payload_json`), checked against injected errors,
routed, authorised, answered and recorded. Answers carry `Content-Type: application/json` exactly:
discord.py only parses a body as JSON on that exact header value.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from sandbox.fake_discord_commands import check_commands
from sandbox.fake_discord_models import (
    API_PREFIX,
    EPHEMERAL,
    LOADING,
    Channel,
    DiscordError,
    FakeInteraction,
    RecordedRequest,
    channel_payload,
    iso_now,
    json_body,
    make_attachment_payload,
    public,
    snowflake,
    unknown_channel,
    unknown_message,
)
from sandbox.fake_discord_rules import check_message, compute_mentions
from sandbox.fake_discord_webhooks import InteractionRoutes, interaction_metadata

if TYPE_CHECKING:
    from sandbox.fake_discord import FakeDiscord

log = logging.getLogger(__name__)

# Flags a bot may set on a message it sends: SUPPRESS_EMBEDS, EPHEMERAL, SUPPRESS_NOTIFICATIONS.
SESSION_START_TOTAL = 1000  # IDENTIFYs a bot may start per day (reported by GET /gateway/bot, not enforced)
SETTABLE_FLAGS = (1 << 2) | EPHEMERAL | (1 << 12)
_WEBHOOK = r"/webhooks/(?P<app_id>\d+)/(?P<token>[^/]+)"


@dataclass
class Upload:
    name: str
    filename: str
    content_type: str | None
    data: bytes


@dataclass
class Call:
    """A parsed request handed to a route handler."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    files: list[Upload] = field(default_factory=list)

    def flag(self, name: str) -> bool:
        return self.query.get(name, "").lower() in ("1", "true")


Handler = Callable[..., tuple[int, Any]]


def json_response(status: int, data: Any, headers: dict[str, str] | None = None) -> web.Response:
    if status == 204:
        return web.Response(status=204)
    return web.Response(status=status, body=json_body(data),
                        headers={"Content-Type": "application/json", **(headers or {})})


def error_response(error: DiscordError) -> web.Response:
    headers: dict[str, str] = {}
    if error.status == 429:
        # discord.py treats a 429 without a Via header as a Cloudflare ban and does not retry it.
        headers = {"Retry-After": str(math.ceil(error.retry_after or 0)), "Via": "1.1 google",
                   "X-RateLimit-Scope": "user", "X-RateLimit-Global": "false"}
    return json_response(error.status, error.body(), headers)


class RestApi(InteractionRoutes):
    """Route table and handlers (interactions and webhooks: InteractionRoutes); all state lives on the FakeDiscord
    they serve."""

    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        ch = r"/channels/(?P<channel_id>\d+)"
        app = r"/applications/(?P<app_id>\d+)"
        table: list[tuple[str, str, Handler, bool]] = [
            ("GET", r"/users/@me", self.get_me, True),
            ("GET", r"/oauth2/applications/@me", self.get_application, True),
            ("GET", r"/gateway", self.get_gateway, False),
            ("GET", r"/gateway/bot", self.get_gateway_bot, True),
            ("POST", r"/users/@me/channels", self.create_dm, True),
            ("GET", r"/users/(?P<user_id>\d+)", self.get_user, True),
            ("GET", r"/guilds/(?P<guild_id>\d+)", self.get_guild, True),
            ("PUT", app + r"/commands", self.put_commands, True),
            ("GET", app + r"/commands", self.get_commands, True),
            ("PUT", app + r"/guilds/(?P<guild_id>\d+)/commands", self.put_commands, True),
            ("GET", app + r"/guilds/(?P<guild_id>\d+)/commands", self.get_commands, True),
            ("POST", r"/interactions/(?P<interaction_id>\d+)/(?P<token>[^/]+)/callback", self.callback,
             False),
            ("POST", _WEBHOOK, self.followup, False),
            ("GET", _WEBHOOK + r"/messages/(?P<message_id>@original|\d+)", self.webhook_get, False),
            ("PATCH", _WEBHOOK + r"/messages/(?P<message_id>@original|\d+)", self.webhook_edit, False),
            ("DELETE", _WEBHOOK + r"/messages/(?P<message_id>@original|\d+)", self.webhook_delete, False),
            ("GET", ch, self.get_channel, True),
            ("POST", ch + r"/messages", self.post_message, True),
            ("GET", ch + r"/messages/(?P<message_id>\d+)", self.get_message, True),
            ("PATCH", ch + r"/messages/(?P<message_id>\d+)", self.edit_message, True),
            ("DELETE", ch + r"/messages/(?P<message_id>\d+)", self.delete_message, True),
        ]
        self.routes = [(m, re.compile(p), h, auth) for m, p, h, auth in table]

    # ---- plumbing -------------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path.removeprefix(API_PREFIX)
        call = Call(request.method, path, dict(request.query), None)
        try:
            await self._parse_body(request, call)
            response = self._answer(request, call)
            hold = self.fake._take_hold(call.method, call.path) if response.status < 300 else None
            if hold is not None:
                self.fake._changed()
                await hold.released.wait()
        except DiscordError as error:
            response = error_response(error)
        except Exception as exc:
            # A bug in the fake: answer 501, which discord.py raises at once (500 it would retry for ~25 s).
            log.exception("fake discord failed on %s %s", call.method, call.path)
            response = json_response(501, {"message": f"fake discord internal error: {exc!r}", "code": 0})
        self.fake._record(RecordedRequest(
            method=call.method, path=call.path, query=call.query, json=call.json, status=response.status,
            at=self.fake.now(), files=[{"name": f.name, "filename": f.filename, "size": len(f.data),
                                        "content_type": f.content_type} for f in call.files]))
        return response

    async def _parse_body(self, request: web.Request, call: Call) -> None:
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, aiohttp.BodyPartReader):  # pragma: no cover - nested multipart
                    continue
                if part.name == "payload_json":
                    call.json = json.loads(await part.text())
                else:
                    call.files.append(Upload(part.name or "", part.filename or "file",
                                             part.headers.get("Content-Type"), bytes(await part.read())))
        elif request.can_read_body:
            raw = await request.read()
            if raw:
                try:
                    call.json = json.loads(raw)
                except ValueError:
                    raise DiscordError(400, 50109, "The request body contains invalid JSON.") from None

    def _answer(self, request: web.Request, call: Call) -> web.Response:
        if not request.path.startswith(API_PREFIX + "/"):
            return json_response(404, {"message": "404: Not Found", "code": 0})
        injected = self.fake._take_injection(call.method, call.path)
        if injected is not None:
            raise injected
        for method, pattern, handler, needs_auth in self.routes:
            match = pattern.fullmatch(call.path)
            if match is None or method != call.method:
                continue
            if needs_auth and request.headers.get("Authorization") != f"Bot {self.fake.bot_token}":
                raise DiscordError(401, 0, "401: Unauthorized")
            status, data = handler(call, **match.groupdict())
            return json_response(status, data)
        return json_response(404, {"message": "404: Not Found", "code": 0})

    # ---- identity ----------------------------------------------------------------------------------
    def get_me(self, call: Call) -> tuple[int, Any]:
        bot = self.fake._users[self.fake.bot_user_id]
        return 200, {**bot.payload(), "verified": True, "mfa_enabled": False, "flags": 0, "locale": bot.locale}

    def get_application(self, call: Call) -> tuple[int, Any]:
        fake = self.fake
        return 200, {
            "id": fake.application_id, "name": "upscale bot (fake)", "description": "", "icon": None,
            "bot_public": True, "bot_require_code_grant": False, "verify_key": "0" * 64, "flags": 0,
            "owner": fake._users[fake.owner_user_id].payload(), "team": None,
            "bot": fake._users[fake.bot_user_id].payload(), "approximate_guild_count": len(fake._guilds),
        }

    def get_gateway(self, call: Call) -> tuple[int, Any]:
        return 200, {"url": self.fake.gateway_url}

    def get_gateway_bot(self, call: Call) -> tuple[int, Any]:
        """Where to connect and how many shards to use (`recommended_shards`); the start limit is only reported."""
        remaining = max(0, SESSION_START_TOTAL - self.fake.identify_count)
        limit = {"total": SESSION_START_TOTAL, "remaining": remaining,
                 "reset_after": 86_400_000 if remaining < SESSION_START_TOTAL else 0, "max_concurrency": 1}
        return 200, {"url": self.fake.gateway_url, "shards": self.fake.recommended_shards,
                     "session_start_limit": limit}

    def get_user(self, call: Call, user_id: str) -> tuple[int, Any]:
        user = self.fake._users.get(user_id)
        if user is None:
            raise DiscordError(404, 10013, "Unknown User")
        return 200, user.payload()

    def get_guild(self, call: Call, guild_id: str) -> tuple[int, Any]:
        """The guild object (its preferred_locale included); with_counts adds the approximate counts."""
        if guild_id not in self.fake._guilds:
            raise DiscordError(404, 10004, "Unknown Guild")
        guild = self.fake._guild_payload(guild_id)
        if call.query.get("with_counts") in ("1", "true", "True"):
            guild.update(approximate_member_count=len(self.fake._guilds[guild_id].members),
                         approximate_presence_count=0)
        return 200, guild

    def create_dm(self, call: Call) -> tuple[int, Any]:
        recipient = str((call.json or {}).get("recipient_id", ""))
        if recipient not in self.fake._users or recipient == self.fake.bot_user_id:
            raise DiscordError(400, 50033, "Invalid Recipient(s)")
        channel = self.fake._channels[self.fake.dm_channel_id(recipient)]
        return 200, channel_payload(channel, self.fake._users)

    # ---- application commands ----------------------------------------------------------------------
    def _scope(self, app_id: str, guild_id: str | None) -> str:
        if app_id != self.fake.application_id:
            raise DiscordError(403, 50001, "Missing Access")
        if guild_id is not None and guild_id not in self.fake._guilds:
            raise DiscordError(403, 50001, "Missing Access")
        return guild_id or "global"

    def put_commands(self, call: Call, app_id: str, guild_id: str | None = None) -> tuple[int, Any]:
        scope = self._scope(app_id, guild_id)
        check_commands(call.json)
        ids = self.fake._command_ids
        stored = []
        for command in call.json:
            kind = command.get("type", 1)
            key = (scope, command["name"], kind)
            ids.setdefault(key, snowflake())
            entry = {"description": "", "default_member_permissions": None, "nsfw": False, **command,
                     "id": ids[key], "application_id": app_id, "type": kind, "version": snowflake()}
            if guild_id is not None:
                entry["guild_id"] = guild_id
            stored.append(entry)
        self.fake.commands[scope] = stored
        return 200, stored

    def get_commands(self, call: Call, app_id: str, guild_id: str | None = None) -> tuple[int, Any]:
        return 200, self.fake.commands.get(self._scope(app_id, guild_id), [])

    # ---- channels ---------------------------------------------------------------------------------
    def _channel(self, channel_id: str) -> Channel:
        channel = self.fake._channels.get(channel_id)
        if channel is None or channel.deleted:
            raise unknown_channel()
        return channel

    def _channel_message(self, channel_id: str, message_id: str) -> dict[str, Any]:
        self._channel(channel_id)
        message = self.fake._messages.get(message_id)
        if (message is None or message["_deleted"] or message["channel_id"] != channel_id
                or message["flags"] & EPHEMERAL):
            raise unknown_message()
        return message

    def get_channel(self, call: Call, channel_id: str) -> tuple[int, Any]:
        return 200, channel_payload(self._channel(channel_id), self.fake._users)

    def post_message(self, call: Call, channel_id: str) -> tuple[int, Any]:
        fake = self.fake
        channel = self._channel(channel_id)
        if channel.type == 1 and not fake._users[channel.recipient_id or ""].dms_open:
            raise DiscordError(403, 50007, "Cannot send messages to this user")
        body = call.json if isinstance(call.json, dict) else {}
        self._validate(body, call.files)  # the form is checked before any nonce de-duplication
        nonce = body.get("nonce")
        if nonce is not None and body.get("enforce_nonce"):
            seen = fake._nonces.get((channel_id, str(nonce)))
            if seen is not None and fake.now() - seen[1] <= fake.nonce_window:
                existing = fake._messages[seen[0]]
                if not existing["_deleted"]:
                    return 200, public(existing)
        body = {**body, "flags": int(body.get("flags") or 0) & ~EPHEMERAL}  # no ephemeral channel posts
        message = self._create(channel_id, body, call.files, via="bot",
                               msg_type=19 if body.get("message_reference") else 0)
        if nonce is not None:
            fake._nonces[(channel_id, str(nonce))] = (message["id"], fake.now())
        fake._changed()
        return 200, public(message)

    def get_message(self, call: Call, channel_id: str, message_id: str) -> tuple[int, Any]:
        return 200, public(self._channel_message(channel_id, message_id))

    def edit_message(self, call: Call, channel_id: str, message_id: str) -> tuple[int, Any]:
        message = self._channel_message(channel_id, message_id)
        if message["author"]["id"] != self.fake.bot_user_id:  # a member's own message (post_user_message)
            raise DiscordError(403, 50005, "Cannot edit a message authored by another user")
        self._edit(message, call)
        return 200, public(message)

    def delete_message(self, call: Call, channel_id: str, message_id: str) -> tuple[int, Any]:
        self.remove(self._channel_message(channel_id, message_id))
        return 204, None

    # ---- messages ---------------------------------------------------------------------------------
    def _validate(self, body: dict[str, Any], files: list[Upload], kept_attachments: int = 0,
                  prefix: tuple[str, ...] = ()) -> None:
        """Discord's rules for a message body (sandbox.fake_discord_rules): 400 50035 naming the path."""
        check_message(body, upload_bytes=sum(len(f.data) for f in files), uploads=len(files),
                      size_limit=self.fake.attachment_size_limit, kept_attachments=kept_attachments, prefix=prefix)

    def _mentions(self, channel_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """`mentions`, `mention_roles`, `mention_everyone` of a message with this content and allowed_mentions."""
        fake = self.fake
        channel = fake._channels[channel_id]
        guild = fake._guilds.get(channel.guild_id or "")
        replied = None
        reference = body.get("message_reference")
        if isinstance(reference, dict):
            target = fake._messages.get(str(reference.get("message_id")))
            replied = target["author"]["id"] if target is not None else None
        allowed = body.get("allowed_mentions")
        roles = None if guild is None else {r for r in guild.role_ids if r != guild.id}
        found = compute_mentions(body.get("content") or "", allowed if isinstance(allowed, dict) else None,
                                 known_user=lambda user_id: user_id in fake._users, guild_roles=roles,
                                 replied_user_id=replied)
        users = []
        for user_id in found.users:
            user = fake._users[user_id].payload()
            if guild is not None and user_id in guild.members:
                member = fake._member_payload(guild.id, user_id)
                member.pop("user")
                user["member"] = member
            users.append(user)
        return {"mentions": users, "mention_roles": found.roles, "mention_everyone": found.everyone}

    def _uploads(self, channel_id: str, files: list[Upload]) -> list[dict[str, Any]]:
        return [make_attachment_payload(f.filename, len(f.data), f.content_type, None, channel_id)
                for f in files]

    def _create(self, channel_id: str, body: dict[str, Any], files: list[Upload], *, via: str,
                msg_type: int, inter: FakeInteraction | None = None, loading: bool = False,
                prefix: tuple[str, ...] = ()) -> dict[str, Any]:
        """Store a new message by the bot; visible in the channel unless ephemeral."""
        fake = self.fake
        if not loading:
            self._validate(body, files, prefix=prefix)
        flags = int(body.get("flags") or 0)
        flags = flags if loading else flags & SETTABLE_FLAGS
        message: dict[str, Any] = {
            "id": snowflake(), "type": msg_type, "channel_id": channel_id,
            "author": fake._users[fake.bot_user_id].payload(), "content": body.get("content") or "",
            "embeds": body.get("embeds") or [], "components": body.get("components") or [],
            "attachments": self._uploads(channel_id, files), **self._mentions(channel_id, body),
            "pinned": False, "tts": bool(body.get("tts")), "flags": flags,
            "nonce": body.get("nonce"), "timestamp": iso_now(), "edited_timestamp": None,
            "_edits": 0, "_via": via, "_interaction_id": inter.id if inter else None, "_deleted": False,
            "_created_at": fake.now(), "_last_edit_at": None, "_sent": body,
        }
        for key in ("allowed_mentions", "message_reference", "poll"):
            if key in body:
                message[key] = body[key]
        if inter is not None:
            message.update(webhook_id=fake.application_id, application_id=fake.application_id)
            message["interaction_metadata"] = interaction_metadata(self, inter)
        fake._messages[message["id"]] = message
        if not flags & EPHEMERAL:
            fake._channels[channel_id].message_ids.append(message["id"])
            fake._emit_message("MESSAGE_CREATE", message)
        return message

    def _edit(self, message: dict[str, Any], call: Call) -> None:
        fake = self.fake
        last = message["_last_edit_at"]
        now = fake.now()
        if fake.edit_min_interval > 0 and last is not None and now - last < fake.edit_min_interval:
            raise DiscordError(429, 0, "You are being rate limited.",
                               retry_after=round(fake.edit_min_interval - (now - last), 3))
        body = call.json if isinstance(call.json, dict) else {}
        kept = len(message["attachments"])
        if "attachments" in body:
            kept = len([a for a in body["attachments"] or [] if isinstance(a, dict) and str(a.get("id")) in
                        {att["id"] for att in message["attachments"]}])
        merged = {"content": message["content"], "embeds": message["embeds"],
                  "components": message["components"], **body}
        self._validate(merged, call.files, kept)
        fill = bool(message["flags"] & LOADING)
        # Discord re-parses mentions when content is edited, with the edit's allowed_mentions or the defaults.
        self._apply(message, body, call.files, fill=fill, mentions_from=body if fill or "content" in body else None)
        message["_edits"] += 1
        message["_last_edit_at"] = now
        fake._changed()

    def _apply(self, message: dict[str, Any], body: dict[str, Any], files: list[Upload], *,
               fill: bool, mentions_from: dict[str, Any] | None = None) -> None:
        """Apply an edit (or the fill of a deferred response) to a stored message."""
        for key in ("content", "embeds", "components"):
            if key in body:
                message[key] = body[key] or ("" if key == "content" else [])
        if mentions_from is not None:
            message.update(self._mentions(message["channel_id"], {**mentions_from, "content": message["content"]}))
        for key in ("allowed_mentions", "poll"):
            if key in body:
                message[key] = body[key]
        if "attachments" in body:
            keep = {str(a.get("id")) for a in body["attachments"] or []}
            message["attachments"] = [a for a in message["attachments"] if a["id"] in keep]
        message["attachments"] = message["attachments"] + self._uploads(message["channel_id"], files)
        base = message["flags"] & EPHEMERAL
        if "flags" in body and body["flags"] is not None:
            message["flags"] = base | (int(body["flags"]) & SETTABLE_FLAGS & ~EPHEMERAL)
        else:
            message["flags"] = message["flags"] & ~LOADING
        if not fill:
            message["edited_timestamp"] = iso_now()
        if not message["flags"] & EPHEMERAL:
            self.fake._emit_message("MESSAGE_UPDATE", message)

    def remove(self, message: dict[str, Any]) -> None:
        """Delete a message: it leaves its channel, and later reads/edits answer 10008."""
        message["_deleted"] = True
        channel = self.fake._channels.get(message["channel_id"])
        if channel is not None and message["id"] in channel.message_ids:
            channel.message_ids.remove(message["id"])
            self.fake._emit_message("MESSAGE_DELETE", message)
        self.fake._changed()

