"""Members acting on messages in the loopback fake Discord: posting a message with attachments, running a message
context-menu command on it (MESSAGE_COMMAND), and pressing a button or picking from a select menu on a message the
bot sent (MESSAGE_COMPONENT); plus the INTERACTION_CREATE envelope every interaction shares.

What Discord's client allows is enforced, so a test cannot produce an interaction Discord could never send: a
context menu targets a visible message of the channel it is used in; only the enabled buttons and selects of a live
message can be used; an ephemeral message is seen, so used, only by the member it was shown to (strict=False sends
such an interaction anyway, to test a bot's own check).
"""

from __future__ import annotations

import copy
import secrets
from typing import TYPE_CHECKING, Any

from sandbox.fake_discord_gateway import DISPATCH, GatewaySession
from sandbox.fake_discord_interactions import find_command
from sandbox.fake_discord_models import (
    DEFAULT_EVERYONE_PERMISSIONS,
    EPHEMERAL,
    FakeInteraction,
    channel_payload,
    iso_now,
    public,
    snowflake,
)
from sandbox.fake_discord_rules import SELECT_TYPES, known_locale

if TYPE_CHECKING:
    from sandbox.fake_discord import FakeDiscord

APPLICATION_COMMAND, MESSAGE_COMPONENT = 2, 3
MESSAGE_COMMAND = 3  # application command type of a message context menu
BUTTON, STRING_SELECT = 2, 3


class MessageInteractions:
    """FakeDiscord's part for messages members post and act on; mixed into FakeDiscord."""

    def post_user_message(self: FakeDiscord, channel_id: str, author_id: str, content: str = "", *,
                          attachments: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """A member posts a message (attachments: `make_attachment()` dicts) in a guild channel, or in their DM
        with the bot; returns a copy of it as Discord would send it."""
        channel = self._channel(channel_id)
        if channel.deleted:
            raise AssertionError(f"channel {channel_id} was deleted")
        author = self._user(author_id)
        if channel.guild_id is not None and author_id not in self._guild(channel.guild_id).members:
            raise AssertionError(f"user {author_id} is not a member of guild {channel.guild_id}")
        if channel.guild_id is None and channel.recipient_id != author_id:
            raise AssertionError(f"channel {channel_id} is not user {author_id}'s DM with the bot")
        if not (content or attachments):
            raise AssertionError("Discord does not let a member post an empty message")
        message: dict[str, Any] = {
            "id": snowflake(), "type": 0, "channel_id": channel_id, "author": author.payload(), "content": content,
            "embeds": [], "components": [], "attachments": copy.deepcopy(list(attachments or [])),
            **self._rest._mentions(channel_id, {"content": content}), "pinned": False, "tts": False, "flags": 0,
            "nonce": None, "timestamp": iso_now(), "edited_timestamp": None, "_edits": 0, "_via": "member",
            "_interaction_id": None, "_deleted": False, "_created_at": self.now(), "_last_edit_at": None,
            "_sent": {},
        }
        self._messages[message["id"]] = message
        channel.message_ids.append(message["id"])
        self._emit_message("MESSAGE_CREATE", message)
        self._changed()
        return copy.deepcopy(public(message))

    async def message_command(self: FakeDiscord, name: str, *, user_id: str, channel_id: str,
                              message: dict[str, Any], guild_id: str | None = None,
                              locale: str | None = None) -> FakeInteraction:
        """Run the message context-menu command `name` ("Apps" > name) on `message` (INTERACTION_CREATE type 2,
        data.type 3, data.target_id, the message with its attachments in data.resolved.messages).

        With guild_id None it is used in the member's DM with the bot; the message must be in that channel.
        `locale` is the member's client language for this one interaction (default: set_user_locale's).
        """
        command, guild_scoped = find_command(self.commands, name, guild_id, kind=MESSAGE_COMMAND)
        payload, session = self._interaction_base(APPLICATION_COMMAND, user_id=user_id, channel_id=channel_id,
                                                  guild_id=guild_id, permissions=None, locale=locale)
        target = self._messages.get(str(message.get("id")))
        if target is None or target["_deleted"] or target["channel_id"] != payload["channel_id"]:
            raise AssertionError(f"message {message.get('id')} is not a live message in channel "
                                 f"{payload['channel_id']}: a context menu acts on a message where it is used")
        if target["flags"] & EPHEMERAL:
            raise AssertionError("Discord's client offers no context-menu commands on an ephemeral message")
        data: dict[str, Any] = {"id": command["id"], "name": command["name"], "type": MESSAGE_COMMAND,
                                "target_id": target["id"],
                                "resolved": {"messages": {target["id"]: copy.deepcopy(public(target))}}}
        if guild_scoped:
            data["guild_id"] = guild_id
        payload["data"] = data
        return self._send_interaction(payload, session)

    async def press_button(self: FakeDiscord, message: dict[str, Any], custom_id: str, *, user_id: str,
                           strict: bool = True, locale: str | None = None) -> FakeInteraction:
        """`user_id` presses the button `custom_id` on a message the bot sent (INTERACTION_CREATE type 3).

        strict=False presses a disabled button, or one on an ephemeral message shown to someone else.
        `locale` is the member's client language for this one press (default: set_user_locale's).
        """
        stored, component = self._usable_component(message, custom_id, user_id, strict)
        if component.get("type") != BUTTON or component.get("style") not in (1, 2, 3, 4):
            raise AssertionError(f"{custom_id!r} is not a button with a custom id (link and premium buttons send "
                                 "no interaction)")
        return self._use(stored, {"custom_id": custom_id, "component_type": BUTTON}, user_id, locale)

    async def select(self: FakeDiscord, message: dict[str, Any], custom_id: str, values: list[str], *,
                     user_id: str, strict: bool = True) -> FakeInteraction:
        """`user_id` picks `values` in the string select `custom_id` on a message the bot sent."""
        stored, component = self._usable_component(message, custom_id, user_id, strict)
        if component.get("type") != STRING_SELECT:
            kind = component.get("type")
            raise AssertionError(f"{custom_id!r} is not a string select" +
                                 (" (user, role and channel selects are not modelled)" if kind in SELECT_TYPES else ""))
        offered = [option["value"] for option in component.get("options") or []]
        low, high = component.get("min_values", 1), component.get("max_values", 1)
        if any(value not in offered for value in values) or not low <= len(values) <= high:
            raise AssertionError(f"Discord's client cannot pick {values!r} from {offered} ({low} to {high} values)")
        return self._use(stored, {"custom_id": custom_id, "component_type": STRING_SELECT, "values": list(values)},
                         user_id)

    def _usable_component(self: FakeDiscord, message: dict[str, Any], custom_id: str, user_id: str,
                          strict: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        """The live message and its component `custom_id`, if Discord's client lets `user_id` use it."""
        stored = self._messages.get(str(message.get("id")))
        if stored is None or stored["_deleted"]:
            raise AssertionError(f"message {message.get('id')} does not exist (or was deleted)")
        if stored["author"]["id"] != self.bot_user_id:
            raise AssertionError("only the bot's own messages carry its components")
        found = [c for row in stored["components"] for c in row.get("components") or []]
        component = next((c for c in found if c.get("custom_id") == custom_id), None)
        if component is None:
            raise AssertionError(f"no component {custom_id!r} on message {stored['id']}; it has "
                                 f"{[c.get('custom_id') for c in found]}")
        if strict and component.get("disabled"):
            raise AssertionError(f"{custom_id!r} is disabled: Discord's client cannot use it (strict=False does)")
        if strict and stored["flags"] & EPHEMERAL:
            owner = self._interactions[stored["_interaction_id"]].user_id
            if owner != user_id:
                raise AssertionError(f"only user {owner} sees that ephemeral message (strict=False uses it anyway)")
        return stored, component

    def _use(self: FakeDiscord, stored: dict[str, Any], data: dict[str, Any], user_id: str,
             locale: str | None = None) -> FakeInteraction:
        channel = self._channels[stored["channel_id"]]
        payload, session = self._interaction_base(MESSAGE_COMPONENT, user_id=user_id, channel_id=channel.id,
                                                  guild_id=channel.guild_id, permissions=None, locale=locale)
        payload["message"] = copy.deepcopy(public(stored))
        payload["data"] = data
        return self._send_interaction(payload, session)

    # ---- the envelope every interaction shares ----------------------------------------------------
    def _interaction_base(self: FakeDiscord, kind: int, *, user_id: str, channel_id: str, guild_id: str | None,
                          permissions: int | None, locale: str | None = None
                          ) -> tuple[dict[str, Any], GatewaySession]:
        """An INTERACTION_CREATE without `data`, and the session that will receive it (the guild's shard; DMs go
        to shard 0). In a DM a `channel_id` that is not the member's DM channel with the bot is replaced by it.
        `locale` (the member's client language) is the user's own unless given; a guild's sends its preferred one
        as `guild_locale` and `guild.locale`."""
        session = self._shards.require(guild_id)
        user = self._user(user_id)
        locale = user.locale if locale is None else known_locale(locale)
        payload: dict[str, Any] = {
            "id": snowflake(), "application_id": self.application_id, "type": kind,
            "token": "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(48), "version": 1,
            "attachment_size_limit": self.attachment_size_limit, "locale": locale, "entitlements": [],
            "authorizing_integration_owners": {"0": guild_id or "0"}, "context": 0 if guild_id else 1,
        }
        if guild_id is not None:
            channel = self._channel(channel_id)
            if channel.guild_id != guild_id or channel.deleted:
                raise AssertionError(f"channel {channel_id} is not a live channel of guild {guild_id}")
            perms = self.member_permissions(guild_id, user_id) if permissions is None else permissions
            member = self._member_payload(guild_id, user_id)
            guild_locale = self._guild(guild_id).preferred_locale
            payload.update(guild_id=guild_id, guild={"id": guild_id, "locale": guild_locale, "features": []},
                           guild_locale=guild_locale, member={**member, "permissions": str(perms)},
                           app_permissions=str(self.member_permissions(guild_id, self.bot_user_id)))
        else:
            if self._dm_channels.get(user_id) != channel_id:
                channel_id = self.dm_channel_id(user_id)
            channel = self._channels[channel_id]
            perms = DEFAULT_EVERYONE_PERMISSIONS if permissions is None else permissions
            payload.update(user=user.payload(), app_permissions=str(DEFAULT_EVERYONE_PERMISSIONS))
        payload["channel_id"] = channel_id
        payload["channel"] = {**channel_payload(channel, self._users), "permissions": str(perms)}
        return payload, session

    def _send_interaction(self: FakeDiscord, payload: dict[str, Any], session: GatewaySession) -> FakeInteraction:
        """Record the interaction (its token works for webhooks from now on) and dispatch it."""
        inter = FakeInteraction(id=payload["id"], token=payload["token"],
                                user_id=(payload.get("member") or payload)["user"]["id"],
                                channel_id=payload["channel_id"], guild_id=payload.get("guild_id"),
                                type=payload["type"], payload=payload, dispatched_at=self.now(),
                                shard_id=session.shard_id, session_id=session.session_id, _waiter=self.wait_for)
        self._interactions[inter.id] = inter
        self._tokens[inter.token] = inter
        session.send(DISPATCH, payload, "INTERACTION_CREATE")
        self._changed()
        return inter
