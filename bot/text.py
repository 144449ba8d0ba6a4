"""Discord's documented size limits, and the one way this bot shortens text to fit them.

Discord refuses (400, code 50035) a message that passes any of these limits, and a refused result post is
a result the member never gets. Every message the bot builds goes through here, so no input the bot
accepts (a long upstream link, a long file name, a long error) can push one over.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.i18n import _, t

if TYPE_CHECKING:
    import discord

CONTENT_MAX = 2000
EMBED_TITLE_MAX = 256
EMBED_DESCRIPTION_MAX = 4096
EMBED_FIELDS_MAX = 25
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1024
FOOTER_MAX = 2048
AUTHOR_MAX = 256
EMBED_TOTAL_MAX = 6000
CHOICE_MAX = 100          # autocomplete choice name and string value
LINK_BUTTON_URL_MAX = 512
ELLIPSIS = "…"
_TAIL_ROOM = 32  # "\n… and N more"
_MORE = _("… and {count} more")


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, ending in … when it was cut."""
    if limit <= 0:
        return ""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def clip_middle(text: str, limit: int) -> str:
    """Cut from the middle, so both the start (a link's host) and the end (its file name) stay visible."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return text[:head] + ELLIPSIS + text[len(text) - (limit - 1 - head):]


def one_line(text: str, limit: int) -> str:
    """Whitespace folded to single spaces, then clipped: for text that lands in logs and replies."""
    return clip(" ".join(text.split()), limit)


def figure(value: float) -> str:
    """Credits and usage as people read them: thousands separated, one decimal only when there is one."""
    return f"{value:,.1f}".removesuffix(".0")


def fit_lines(lines: Sequence[str], locale: object = None, limit: int = EMBED_DESCRIPTION_MAX) -> str:
    """Join lines while they fit in `limit`, then say (in the reader's language) how many were left out."""
    text = ""
    for index, line in enumerate(lines):
        last = index == len(lines) - 1
        room = limit if last else limit - _TAIL_ROOM  # keep room to say what was left out
        if not text:
            text = clip(line, room)
            continue
        if len(text) + 1 + len(line) > room:
            return f"{text}\n{t(locale, _MORE, count=len(lines) - index)}"
        text = f"{text}\n{line}"
    return text or t(locale, _("none yet"))


def _embed_total(embed: discord.Embed) -> int:
    total = len(embed.title or "") + len(embed.description or "")
    total += sum(len(field.name or "") + len(field.value or "") for field in embed.fields)
    return total + len(embed.footer.text or "") + len(embed.author.name or "")


def fit_embed(embed: discord.Embed) -> discord.Embed:
    """Make `embed` respect every per-part limit and the 6,000-character total (in place; returned).

    What gives way first when the total is over: the description, then fields from the last one, then
    the footer. Title and the first fields (what a card is about) are kept longest.
    """
    if embed.title:
        embed.title = clip(embed.title, EMBED_TITLE_MAX)
    if embed.description:
        embed.description = clip(embed.description, EMBED_DESCRIPTION_MAX)
    while len(embed.fields) > EMBED_FIELDS_MAX:
        embed.remove_field(-1)
    for index, field in enumerate(embed.fields):
        embed.set_field_at(index, name=clip(field.name or "\u200b", FIELD_NAME_MAX) or "\u200b",
                           value=clip(field.value or "\u200b", FIELD_VALUE_MAX) or "\u200b", inline=field.inline)
    if embed.footer.text:
        embed.set_footer(text=clip(embed.footer.text, FOOTER_MAX), icon_url=embed.footer.icon_url)
    if embed.author.name:
        embed.set_author(name=clip(embed.author.name, AUTHOR_MAX), url=embed.author.url,
                         icon_url=embed.author.icon_url)
    excess = _embed_total(embed) - EMBED_TOTAL_MAX
    if excess > 0 and embed.description:
        embed.description = clip(embed.description, max(0, len(embed.description) - excess)) or None
        excess = _embed_total(embed) - EMBED_TOTAL_MAX
    while excess > 0 and embed.fields:
        embed.remove_field(-1)
        excess = _embed_total(embed) - EMBED_TOTAL_MAX
    if excess > 0 and embed.footer.text:
        embed.set_footer(text=clip(embed.footer.text, max(0, len(embed.footer.text) - excess)) or None)
    return embed
