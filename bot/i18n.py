"""Member-facing text in the member's language, from gettext catalogues translators can edit.

English is the source language: a message id is the English sentence with `{name}` placeholders, marked in the
code with `_()` (which returns it unchanged) and rendered at the edge with `t(locale, message, **values)`.
Each other language is `bot/locales/<lang>/LC_MESSAGES/messages.po`, read with Babel (no compile step);
`scripts/i18n` extracts the ids into `bot/locales/messages.pot` and merges them into every catalogue. A locale
Discord sends that has no catalogue falls back to English. Adding a language is adding a catalogue.
Operator logs stay in English.
"""

from __future__ import annotations

import functools
import logging
import string
from collections.abc import Mapping
from pathlib import Path

import discord
from babel.messages.pofile import read_po
from discord import app_commands

log = logging.getLogger(__name__)

LOCALES_DIR = Path(__file__).resolve().parent / "locales"
SOURCE_LANGUAGE = "en"


def _(message: str) -> str:
    """Mark `message` for the catalogues; it stays English until rendered with t()."""
    return message


@functools.cache
def languages() -> tuple[str, ...]:
    """English, then every language that has a catalogue (read once: catalogues ship with the code)."""
    found = sorted(path.parent.parent.name for path in LOCALES_DIR.glob("*/LC_MESSAGES/messages.po"))
    return (SOURCE_LANGUAGE, *found)


def language_of(locale: object) -> str:
    """The catalogue for a Discord locale ("ko", "en-US", discord.Locale...): its language if we have it, else
    English."""
    code = str(getattr(locale, "value", locale) or "").split("-", 1)[0].split("_", 1)[0].lower()
    return code if code in languages() else SOURCE_LANGUAGE


@functools.cache
def catalogue(language: str) -> Mapping[str, str]:
    """The translations of one language (msgid -> msgstr), without fuzzy or empty entries."""
    if language == SOURCE_LANGUAGE:
        return {}
    path = LOCALES_DIR / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        po = read_po(handle, locale=language)
    return {message.id: message.string for message in po
            if message.id and isinstance(message.id, str) and message.string and not message.fuzzy}


def translate(locale: object, message: str) -> str | None:
    """The translation of `message` for `locale`, or None when there is none (English, or missing)."""
    return catalogue(language_of(locale)).get(message)


def t(locale: object, message: str, /, **values: object) -> str:
    """`message` in the locale's language with its `{placeholders}` filled; English when no translation exists.

    A translation whose placeholders do not format (a catalogue mistake) falls back to English rather than
    failing a member's reply; tests/test_i18n.py keeps the catalogues from having such mistakes.
    """
    text = translate(locale, message) or message
    try:
        return text.format(**values)
    except (KeyError, IndexError, ValueError):
        log.error("translation of %r for %s does not format; using English", message[:60], language_of(locale))
        return message.format(**values)


class Phrase:
    """A message id and its values, rendered later in the reader's language: render(locale). A value that is itself
    a Phrase (a command's name, one reason inside another) is rendered in the same language. str() is English."""

    def __init__(self, message: str, /, **values: object) -> None:
        self.message = message
        self.values = values

    def render(self, locale: object) -> str:
        values = {name: value.render(locale) if isinstance(value, Phrase) else value
                  for name, value in self.values.items()}
        if not values:
            # Nothing to fill in: the text is used as it is, so braces in a sentence built elsewhere stay harmless.
            return translate(locale, self.message) or self.message
        return t(locale, self.message, **values)

    def __str__(self) -> str:
        return self.render(SOURCE_LANGUAGE)


def placeholders(text: str) -> set[str]:
    """The `{names}` a message or a translation uses (to check that a translation keeps them all)."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


class CatalogueTranslator(app_commands.Translator):
    """Command names, descriptions, options and choices in every language with a catalogue (Discord shows each
    member the one for their client's language). The English strings in the code are the message ids."""

    async def translate(self, string: app_commands.locale_str, locale: discord.Locale,
                        context: app_commands.TranslationContextTypes) -> str | None:
        if language_of(locale) == SOURCE_LANGUAGE:
            return None
        return translate(locale, string.message)
