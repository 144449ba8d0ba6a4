"""Interaction callbacks and interaction webhooks (followups, @original) of the loopback fake Discord.

Kept apart from the channel routes (`sandbox.fake_discord_rest`) so each module stays readable. The rules are
Discord's: one acknowledgement within 3 s (10062 late, 40060 twice), callback types that suit the interaction
(a component interaction may also answer 6 DEFERRED_UPDATE_MESSAGE or 7 UPDATE_MESSAGE, which act on the message
the component is on, ephemeral or not), 15-minute webhook tokens (50027), and a deferred "thinking" message
filled by the first followup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandbox.fake_discord_commands import check_callback, focused_type
from sandbox.fake_discord_models import (
    EPHEMERAL,
    LOADING,
    DiscordError,
    FakeInteraction,
    public,
    unknown_channel,
    unknown_interaction,
    unknown_message,
    unknown_webhook,
)

if TYPE_CHECKING:
    from sandbox.fake_discord_rest import Call, RestApi

APPLICATION_COMMAND, MESSAGE_COMPONENT = 2, 3
CHAT_INPUT_COMMAND_MESSAGE, CONTEXT_MENU_COMMAND_MESSAGE = 20, 23  # message types of a command's response


def response_message_type(inter: FakeInteraction) -> int:
    """The type of a message an interaction's response creates: a slash command's (20), a context menu's (23),
    or a plain message (0) for a component's or a modal's."""
    if inter.type != APPLICATION_COMMAND:
        return 0
    command_type = (inter.payload.get("data") or {}).get("type", 1)
    return CHAT_INPUT_COMMAND_MESSAGE if command_type == 1 else CONTEXT_MENU_COMMAND_MESSAGE


def interaction_metadata(rest: RestApi, inter: FakeInteraction) -> dict[str, Any]:
    """`interaction_metadata` of a message created by an interaction's response or followup."""
    fake = rest.fake
    data = inter.payload.get("data") or {}
    metadata: dict[str, Any] = {
        "id": inter.id, "type": inter.type, "user": fake._users[inter.user_id].payload(),
        "authorizing_integration_owners": inter.payload.get("authorizing_integration_owners", {}),
    }
    if inter.type == APPLICATION_COMMAND:
        metadata.update(name=data.get("name"), command_type=data.get("type", 1))
        if data.get("type") == 3:
            metadata["target_message_id"] = data.get("target_id")
    elif inter.type == MESSAGE_COMPONENT:
        metadata["interacted_message_id"] = (inter.payload.get("message") or {}).get("id")
    if inter.original is not None:
        metadata["original_response_message_id"] = inter.original["id"]
    return metadata


class InteractionRoutes:
    """The callback and webhook handlers; mixed into RestApi, whose message helpers they use."""

    def callback(self: RestApi, call: Call, interaction_id: str, token: str) -> tuple[int, Any]:
        fake = self.fake
        inter = fake._interactions.get(interaction_id)
        if inter is None or inter.token != token:
            raise unknown_interaction()
        if inter.ack is not None:
            raise DiscordError(400, 40060, "Interaction has already been acknowledged.")
        now = fake.now()
        if now - inter.dispatched_at > fake.ack_timeout:
            raise unknown_interaction()
        check_callback(call.json, interaction_type=inter.type, focused_type=focused_type(inter.payload))
        body = call.json
        kind = body.get("type")
        data = body.get("data") or {}
        message = None
        if kind == 4:
            message = self._create(inter.channel_id, data, call.files, via="interaction", inter=inter,
                                   msg_type=response_message_type(inter), prefix=("data",))
        elif kind == 5:
            flags = LOADING | (int(data.get("flags") or 0) & EPHEMERAL)
            message = self._create(inter.channel_id, {"flags": flags}, [], via="interaction", inter=inter,
                                   msg_type=response_message_type(inter), loading=True)
        elif kind in (6, 7):
            # The response is the message the component is on (the @original of this interaction's token).
            message = self._interacted_message(inter)
            if kind == 7:
                self._update(message, data, call)
        inter.ack = body
        inter.ack_latency = now - inter.dispatched_at
        inter.original = message
        fake._changed()
        if not call.flag("with_response"):
            return 204, None
        info: dict[str, Any] = {"id": inter.id, "type": inter.type}
        resource: dict[str, Any] = {"type": kind}
        if message is not None:
            info.update(response_message_id=message["id"], response_message_loading=kind == 5,
                        response_message_ephemeral=bool(message["flags"] & EPHEMERAL))
            if kind != 6:
                resource["message"] = public(message)
        return 200, {"interaction": info, "resource": resource}

    def _interacted_message(self: RestApi, inter: FakeInteraction) -> dict[str, Any]:
        """The live message whose component was used (10008 when it was deleted meanwhile)."""
        message = self.fake._messages.get(str((inter.payload.get("message") or {}).get("id")))
        if message is None or message["_deleted"]:
            raise unknown_message()
        return message

    def _update(self: RestApi, message: dict[str, Any], data: dict[str, Any], call: Call) -> None:
        """UPDATE_MESSAGE: edit the component's message the way an edit would (its ephemerality is kept)."""
        merged = {"content": message["content"], "embeds": message["embeds"],
                  "components": message["components"], **data}
        self._validate(merged, call.files, len(message["attachments"]), prefix=("data",))
        self._apply(message, data, call.files, fill=False, mentions_from=data if "content" in data else None)
        message["_edits"] += 1
        message["_last_edit_at"] = self.fake.now()

    def _webhook(self: RestApi, app_id: str, token: str) -> FakeInteraction:
        """The interaction behind a webhook token, applying Discord's token rules."""
        inter = self.fake._tokens.get(token)
        if app_id != self.fake.application_id or inter is None:
            raise unknown_webhook()
        if self.fake.now() - inter.dispatched_at > self.fake.token_ttl:
            raise DiscordError(401, 50027, "Invalid Webhook Token")
        if inter.ack is None or inter.ack.get("type") == 8:
            raise unknown_webhook()
        channel = self.fake._channels.get(inter.channel_id)
        if channel is None or channel.deleted:
            raise unknown_channel()
        return inter

    def _webhook_message(self: RestApi, inter: FakeInteraction, message_id: str) -> dict[str, Any]:
        if message_id == "@original":
            message = inter.original
        else:
            message = next((m for m in inter.messages() if m["id"] == message_id), None)
        if message is None or message["_deleted"]:
            raise unknown_message()
        return message

    def followup(self: RestApi, call: Call, app_id: str, token: str) -> tuple[int, Any]:
        inter = self._webhook(app_id, token)
        body = call.json if isinstance(call.json, dict) else {}
        original = inter.original
        if original is not None and not original["_deleted"] and original["flags"] & LOADING:
            # Discord fills a deferred "thinking" response with the first followup; the defer's
            # ephemerality wins over the followup's flags.
            self._validate(body, call.files, len(original["attachments"]))
            self._apply(original, body, call.files, fill=True, mentions_from=body)
            message = original
        else:
            message = self._create(inter.channel_id, body, call.files, via="interaction", inter=inter,
                                   msg_type=0)
            inter.followups.append(message)
        self.fake._changed()
        return (200, public(message)) if call.flag("wait") else (204, None)

    def webhook_get(self: RestApi, call: Call, app_id: str, token: str, message_id: str) -> tuple[int, Any]:
        return 200, public(self._webhook_message(self._webhook(app_id, token), message_id))

    def webhook_edit(self: RestApi, call: Call, app_id: str, token: str, message_id: str) -> tuple[int, Any]:
        message = self._webhook_message(self._webhook(app_id, token), message_id)
        self._edit(message, call)
        return 200, public(message)

    def webhook_delete(self: RestApi, call: Call, app_id: str, token: str, message_id: str) -> tuple[int, Any]:
        inter = self._webhook(app_id, token)
        message = self._webhook_message(inter, message_id)
        self.remove(message)
        if message is inter.original:
            inter.original = None
            inter.original_deleted = True
        return 204, None
