"""The catalogues: every message of the code is translated in every language, with the same placeholders, and the
committed template is what the code marks; rendering falls back to English rather than failing a reply."""

from __future__ import annotations

import logging
import re

import discord
import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from bot import i18n
from bot.i18n import LOCALES_DIR, Phrase, catalogue, language_of, languages, placeholders, t, translate
from bot.i18n_extract import TEMPLATE, extracted

CODE_IDS = {message.id for message in extracted() if message.id}
OTHER_LANGUAGES = [language for language in languages() if language != "en"]
# The commands members type; a message that names one must name it as that language's client shows it.
COMMANDS = ("upscale", "tasks", "task", "dms", "usage", "quota")
COMMAND_MENTION = re.compile(r"/([a-z][a-z-]*)\b")


def _po(language: str) -> Catalog:
    with (LOCALES_DIR / language / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        return read_po(handle, locale=language)


def test_korean_is_one_of_the_languages() -> None:
    assert languages()[0] == "en" and "ko" in OTHER_LANGUAGES


def test_the_committed_template_is_what_the_code_marks() -> None:
    with TEMPLATE.open("rb") as handle:
        template = {message.id for message in read_po(handle) if message.id}
    assert template == CODE_IDS, ("run `.venv/bin/python -m bot.i18n_extract` after changing texts: "
                                  f"new {sorted(CODE_IDS - template)[:5]}, gone {sorted(template - CODE_IDS)[:5]}")


@pytest.mark.parametrize("language", OTHER_LANGUAGES)
def test_every_message_is_translated(language: str) -> None:
    po = _po(language)
    translated = {message.id for message in po if message.id and message.string and not message.fuzzy}
    missing = sorted(CODE_IDS - translated)
    assert not missing, f"{len(missing)} message(s) without a {language} translation, e.g. {missing[:5]}"
    fuzzy = [message.id for message in po if message.id and message.fuzzy]
    assert not fuzzy, f"fuzzy (changed in English, not checked in {language}): {fuzzy[:5]}"


@pytest.mark.parametrize("language", OTHER_LANGUAGES)
def test_translations_keep_the_placeholders(language: str) -> None:
    differ = [(message, translation) for message, translation in catalogue(language).items()
              if placeholders(message) != placeholders(translation)]
    assert not differ, f"placeholders differ in {language}: {differ[:3]}"


@pytest.mark.parametrize("language", OTHER_LANGUAGES)
def test_translations_keep_line_starts_markup_and_limit_names(language: str) -> None:
    """An emoji that starts the English starts the translation; backticked limit names stay as admins type them."""
    for message, translation in catalogue(language).items():
        if message[:1] in "✅❌⚠️⛔⏳⌛📬📭🎬":
            assert translation[:1] == message[:1], (message, translation)
        for name in re.findall(r"`([a-z_]+_(?:jobs|credits))`", message):
            assert f"`{name}`" in translation, (message, translation)


@pytest.mark.parametrize("language", OTHER_LANGUAGES)
def test_a_named_command_is_named_as_the_members_client_shows_it(language: str) -> None:
    """"/dms results:off" in English is the Korean command and option names in Korean, as the client lists them."""
    names = {command: translate(language, command) for command in COMMANDS}
    assert all(names.values()), f"every command name has a {language} translation: {names}"
    for message, translation in catalogue(language).items():
        for command in COMMAND_MENTION.findall(message):
            if command in COMMANDS:
                assert f"/{names[command]}" in translation, (message, translation)


def test_language_of_a_discord_locale() -> None:
    assert language_of("ko") == language_of(discord.Locale.korean) == "ko"
    assert language_of("en-US") == language_of(discord.Locale.british_english) == "en"
    for unknown in ("fr", "pt-BR", "zh-TW", "", None, "xx-not-a-locale"):
        assert language_of(unknown) == "en", unknown


def test_rendering_in_korean_and_falling_back_to_english() -> None:
    message = "You have no upscale jobs yet. Start one with /upscale."
    assert t("ko", message) == catalogue("ko")[message] != message
    assert t("fr", message) == t(None, message) == message
    assert t("ko", "a sentence no catalogue has: {n}", n=3) == "a sentence no catalogue has: 3"


def test_a_phrase_renders_its_values_in_the_same_language() -> None:
    refusal = Phrase("{command} works in servers: run it in a server channel where the bot is.",
                     command=Phrase("/upscale"))
    assert str(refusal).startswith("/upscale works in servers")
    korean = refusal.render("ko")
    assert korean.startswith(translate("ko", "/upscale") or "?") and "/upscale" not in korean


def test_a_broken_translation_falls_back_to_english(monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    message = "Today: **{jobs}** job(s)"
    monkeypatch.setattr(i18n, "catalogue", lambda language: {message: "오늘: {작업}"} if language == "ko" else {})
    with caplog.at_level(logging.ERROR, logger="bot.i18n"):
        assert t("ko", message, jobs=3) == "Today: **3** job(s)"
    assert "does not format" in caplog.text
