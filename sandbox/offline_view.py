"""What the members of the offline sandbox see, printed from the fake Discord's record of the bot's requests.

Why from the record: it lists the bot's calls in the order Discord received them, so the transcript shows the
real order of delivery (DM, channel post, card edit) instead of an order the demo assumes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from babel.dates import format_datetime, format_timedelta

from sandbox.fake_discord import FakeDiscord, FakeInteraction, RecordedRequest

FAKE_LINK_NOTE = "(sandbox: a made-up link, nothing to download)"
EPHEMERAL = 1 << 6
_TOKEN = r"(?:/interactions/\d+/(?P<cb>[^/]+)/callback|/webhooks/\d+/(?P<hook>[^/]+)(?P<rest>/.*)?)$"
_CHANNEL_POST = re.compile(r"/channels/(?P<channel>\d+)/messages$")
_CHANNEL_EDIT = re.compile(r"/channels/\d+/messages/\d+$")


class Transcript:
    """Prints each new thing a member sees, in the order the fake Discord received the bot's requests."""

    def __init__(self, fake: FakeDiscord, names: dict[str, str], channels: dict[str, str],
                 fake_links: Callable[[], Iterable[str]]) -> None:
        self.fake = fake
        self.names = names  # user id -> name
        self.channels = channels  # channel id -> how the transcript labels a post there
        self.fake_links = fake_links  # the result links the fake Evolink made up
        self._seen = 0
        self._interactions: dict[str, FakeInteraction] = {}
        self._cards: dict[str, dict[str, str]] = {}  # interaction token -> the card's fields last shown

    def command(self, who: str, text: str, interaction: FakeInteraction) -> None:
        """Show what a member typed, and follow what the bot does with that interaction."""
        self._interactions[interaction.token] = interaction
        self.show(who, text)

    async def until(self, done: Callable[[], object], timeout: float = 30) -> None:
        """Print the bot's requests as they arrive until done() is true."""
        while True:
            self._catch_up()
            if done():
                return
            await self.fake.wait_for(lambda: len(self.fake.requests) > self._seen, timeout,
                                     what="the bot's next request")

    def show(self, who: str, text: str, locale: str = "en-US") -> None:
        """Print one block; timestamps as a Discord client in `locale` shows them (the reader's, for a private
        message; English for what the whole channel sees)."""
        indent = " " * (len(who) + 2)
        print(f"{who}: " + self._as_discord_shows(text, locale).replace("\n", "\n" + indent), flush=True)

    def _catch_up(self) -> None:
        requests = self.fake.requests
        while self._seen < len(requests):
            request = requests[self._seen]
            self._seen += 1
            if request.status < 300 and isinstance(request.json, dict):
                self._render(request)

    def _render(self, request: RecordedRequest) -> None:
        body: dict[str, Any] = request.json
        token = re.search(_TOKEN, request.path)
        if token is not None:
            interaction = self._interactions.get(token["cb"] or token["hook"])
            if interaction is None:
                return
            who = self.names.get(interaction.user_id, "?")
            if token["cb"] is not None:  # the interaction's first answer; type 5 ("thinking") shows nothing
                if body.get("type") == 4:
                    self._message(body.get("data") or {}, who, reader=interaction.user_id)
            elif request.method == "PATCH" and (token["rest"] or "").endswith("/@original"):
                self._card_or_message(interaction.token, body, who, interaction.user_id)
            elif request.method == "POST" and not token["rest"]:  # a followup
                self._message(body, who, reader=interaction.user_id)
            return
        post = _CHANNEL_POST.fullmatch(request.path)
        if request.method == "POST" and post is not None:
            self._message(body, "", label=f"bot ({self.channels.get(post['channel'], 'in a channel')})")
        elif request.method == "PATCH" and _CHANNEL_EDIT.fullmatch(request.path) and body.get("embeds"):
            # A card edited with the bot token once the interaction's token has expired.
            self._card_edit("bot (card edited)", body, None)

    def _message(self, body: dict[str, Any], who: str, label: str = "bot", reader: str | None = None) -> None:
        """Content and embed descriptions (where the bot puts a link too long for the content)."""
        locale = "en-US"
        if (body.get("flags") or 0) & EPHEMERAL:
            label = f"bot (only {who} sees this)"
            locale = self.fake.user_locale(reader) if reader else locale
        parts = [body.get("content")] + [embed.get("description") for embed in body.get("embeds") or []]
        self.show(label, "\n".join(part for part in parts if part), locale)

    def _card_or_message(self, token: str, body: dict[str, Any], who: str, reader: str) -> None:
        if not body.get("embeds"):
            self._message(body, who, reader=reader)
        elif token not in self._cards:
            self._cards[token] = _fields(body)
            self.show("bot (task card)", f"[{body['embeds'][0].get('title', '')}]\n" + _lines(self._cards[token]))
        else:
            self._card_edit("bot (card edited)", body, token)

    def _card_edit(self, label: str, body: dict[str, Any], token: str | None) -> None:
        """Only the fields that changed since the card was last shown, to keep the transcript short."""
        fields = _fields(body)
        before = self._cards.get(token or "", {})
        changed = {name: value for name, value in fields.items() if before.get(name) != value}
        if token is not None:
            self._cards[token] = fields
        self.show(label, _lines(changed) or "(no visible change)")

    def _as_discord_shows(self, text: str, locale: str) -> str:
        """Mentions, timestamps (in the reader's language, as their client shows them; UTC here) and markdown links
        the way the Discord client shows them; made-up links marked."""
        language = locale.replace("-", "_")
        text = re.sub(r"<t:(\d+):R>", lambda m: format_timedelta(
            timedelta(seconds=int(m[1]) - time.time()), add_direction=True, locale=language), text)
        text = re.sub(r"<t:(\d+):[fF]>", lambda m: format_datetime(
            datetime.fromtimestamp(int(m[1]), UTC), "long", tzinfo=UTC, locale=language), text)
        text = re.sub(r"<@!?(\d+)>", lambda m: "@" + self.names.get(m.group(1), m.group(1)), text)
        text = re.sub(r"\[([^\]]+)\]\((\S+?)\)", r"\1: \2", text).replace("**", "")
        for link in set(self.fake_links()):
            text = text.replace(link, f"{link} {FAKE_LINK_NOTE}")
        return text


def _fields(body: dict[str, Any]) -> dict[str, str]:
    """A card's fields and its description (under the name ""), to see what an edit changed."""
    embed = body["embeds"][0]
    fields = {field["name"]: field["value"] for field in embed.get("fields", [])}
    return fields | ({"": embed["description"]} if embed.get("description") else {})


def _lines(fields: dict[str, str]) -> str:
    return "\n".join(f"{name}: {value}" if name else value for name, value in fields.items())
