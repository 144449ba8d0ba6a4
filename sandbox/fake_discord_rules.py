"""Discord's documented validation rules (API v10) for what a bot sends, as plain functions.

Why: a fake that accepts what Discord refuses lets a bot pass its tests and fail in production. These
functions check message bodies (content, embeds, nonce, allowed_mentions, components), interaction
callbacks and command definitions, and raise `DiscordError` the way Discord answers: 400, code 50035
"Invalid Form Body", with an `errors` tree naming every offending path ({"content": {"_errors": [...]}}).
They also compute which users, roles and @everyone a message pings, the way Discord does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sandbox.fake_discord_models import DiscordError, invalid_form_body

Path = tuple[str | int, ...]

MAX_CONTENT = 2000
MAX_EMBEDS = 10
MAX_EMBED_TOTAL = 6000
MAX_NONCE = 25
IS_COMPONENTS_V2 = 1 << 15
MAX_SAFE_INTEGER = 2**53
LOCALES = frozenset({
    "id", "da", "de", "en-GB", "en-US", "es-ES", "es-419", "fr", "hr", "it", "lt", "hu", "nl", "no", "pl",
    "pt-BR", "ro", "fi", "sv-SE", "vi", "tr", "cs", "el", "bg", "ru", "uk", "hi", "th", "zh-CN", "ja", "zh-TW",
    "ko",
})
# Interaction type -> the callback types Discord accepts for it (receiving-and-responding docs).
CALLBACKS_FOR = {1: {1}, 2: {4, 5, 9}, 3: {4, 5, 6, 7, 9}, 4: {8}, 5: {4, 5, 6, 7}}
CALLBACK_TYPES = (1, 4, 5, 6, 7, 8, 9, 10, 12)
COMMAND_LIMITS = {1: 100, 2: 5, 3: 5}  # per scope and type: CHAT_INPUT, USER, MESSAGE
COMMAND_TYPE_NAMES = {1: "CHAT_INPUT", 2: "USER", 3: "MESSAGE"}
SELECT_TYPES = (3, 5, 6, 7, 8)


# ---- the error collector ---------------------------------------------------------------------------
class Form:
    """Collects every problem of one request body in Discord's nested error shape, then raises once."""

    def __init__(self) -> None:
        self.errors: dict[str, Any] = {}

    def add(self, path: Path, code: str, message: str) -> None:
        node = self.errors
        for part in path:
            node = node.setdefault(str(part), {})
        node.setdefault("_errors", []).append({"code": code, "message": message})

    def raise_if_any(self) -> None:
        if self.errors:
            raise invalid_form_body(self.errors)

    def _length(self, path: Path, length: int, min_len: int, max_len: int) -> None:
        if not min_len <= length <= max_len:
            if min_len == 0:
                self.add(path, "BASE_TYPE_MAX_LENGTH", f"Must be {max_len} or fewer in length.")
            else:
                self.add(path, "BASE_TYPE_BAD_LENGTH", f"Must be between {min_len} and {max_len} in length.")

    # Typed field checks; each returns the value when its type is right (so callers can look inside).
    def string(self, path: Path, value: object, *, max_len: int, min_len: int = 0) -> str | None:
        if not isinstance(value, str):
            self.add(path, "BASE_TYPE_STRING", "Must be a string.")
            return None
        self._length(path, len(value), min_len, max_len)
        return value

    def required_string(self, parent: dict[str, Any], path: Path, key: str, *, max_len: int,
                        min_len: int = 1) -> str | None:
        if parent.get(key) is None:
            self.add((*path, key), "BASE_TYPE_REQUIRED", "This field is required")
            return None
        return self.string((*path, key), parent[key], max_len=max_len, min_len=min_len)

    def boolean(self, path: Path, value: object) -> None:
        if not isinstance(value, bool):
            self.add(path, "BASE_TYPE_BOOLEAN", "Must be either true or false.")

    def integer(self, path: Path, value: object, low: int, high: int) -> int | None:
        if value is None:
            self.add(path, "BASE_TYPE_REQUIRED", "This field is required")
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(path, "NUMBER_TYPE_COERCE", f"Value \"{value}\" is not int.")
            return None
        if value < low:
            self.add(path, "NUMBER_TYPE_MIN", f"int value should be greater than or equal to {low}.")
        elif value > high:
            self.add(path, "NUMBER_TYPE_MAX", f"int value should be less than or equal to {high}.")
        return value

    def array(self, path: Path, value: object, *, max_len: int, min_len: int = 0) -> list[Any]:
        if not isinstance(value, list):
            self.add(path, "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")
            return []
        self._length(path, len(value), min_len, max_len)
        return value

    def model(self, path: Path, value: object) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.add(path, "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
            return None
        return value


def present(body: dict[str, Any], key: str) -> bool:
    return body.get(key) is not None


def is_snowflake(value: object) -> bool:
    """A Discord id: a decimal string or an integer in 0..2^64-1 (discord.py sends ints in allowed_mentions)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 0 <= value < 2**64
    return isinstance(value, str) and value.isascii() and value.isdigit() and int(value) < 2**64

def known_locale(locale: str) -> str:
    """`locale` if it is one of Discord's locales (a member's client language, a server's preferred locale);
    else ValueError: a test cannot make a member or server use a language Discord does not have."""
    if locale not in LOCALES:
        raise ValueError(f"{locale!r} is not a Discord locale; Discord's are {sorted(LOCALES)}")
    return locale



# ---- messages ------------------------------------------------------------------------------------
def check_message(body: dict[str, Any], *, upload_bytes: int = 0, uploads: int = 0, size_limit: int,
                  kept_attachments: int = 0, prefix: Path = ()) -> None:
    """A message body Discord would create (or an edit's merged result): form rules, size, non-empty."""
    form = Form()
    message_form(form, body, prefix)
    form.raise_if_any()
    if upload_bytes > size_limit:
        raise DiscordError(413, 40005, "Request entity too large")
    if not (body.get("content") or body.get("embeds") or uploads or kept_attachments or body.get("components")
            or body.get("sticker_ids") or body.get("poll")):
        raise DiscordError(400, 50006, "Cannot send an empty message")


def message_form(form: Form, body: dict[str, Any], prefix: Path = ()) -> None:
    """Field rules of a message body (create, edit, interaction response, webhook) into `form`."""
    if present(body, "content"):
        form.string((*prefix, "content"), body["content"], max_len=MAX_CONTENT)
    if present(body, "embeds"):
        _embeds(form, body["embeds"], (*prefix, "embeds"))
    if "nonce" in body and body["nonce"] is not None:
        nonce = body["nonce"]
        if isinstance(nonce, str):
            form.string((*prefix, "nonce"), nonce, max_len=MAX_NONCE)
        elif isinstance(nonce, bool) or not isinstance(nonce, int):
            form.add((*prefix, "nonce"), "BASE_TYPE_STRING", "Must be an integer or a string.")
    if "enforce_nonce" in body:
        form.boolean((*prefix, "enforce_nonce"), body["enforce_nonce"])
    if present(body, "allowed_mentions"):
        _allowed_mentions(form, body["allowed_mentions"], (*prefix, "allowed_mentions"))
    if present(body, "components"):
        flags = body.get("flags")
        v2 = isinstance(flags, int) and bool(flags & IS_COMPONENTS_V2)
        if not v2:  # components v2 layouts (flag 1 << 15) are not modelled
            _components(form, body["components"], (*prefix, "components"))
    if present(body, "flags"):
        form.integer((*prefix, "flags"), body["flags"], 0, 2**31)
    if "tts" in body and body["tts"] is not None:
        form.boolean((*prefix, "tts"), body["tts"])
    if present(body, "message_reference"):
        form.model((*prefix, "message_reference"), body["message_reference"])
    if present(body, "attachments"):
        for index, item in enumerate(form.array((*prefix, "attachments"), body["attachments"], max_len=10)):
            form.model((*prefix, "attachments", index), item)


def _embeds(form: Form, embeds: object, path: Path) -> None:
    total = 0
    for index, embed in enumerate(form.array(path, embeds, max_len=MAX_EMBEDS)):
        total += _embed(form, embed, (*path, index))
    if total > MAX_EMBED_TOTAL:
        form.add(path, "MAX_EMBED_SIZE_EXCEEDED", f"Embed size exceeds maximum size of {MAX_EMBED_TOTAL}")


def _embed(form: Form, value: object, path: Path) -> int:
    """Checks one embed; returns its characters counted towards the 6000 of the whole message."""
    embed = form.model(path, value)
    if embed is None:
        return 0
    counted = 0

    def text(parent: dict[str, Any], where: Path, key: str, max_len: int, *, required: bool = False,
             min_len: int = 0) -> None:
        nonlocal counted
        if parent.get(key) is None:
            if required:
                form.add((*where, key), "BASE_TYPE_REQUIRED", "This field is required")
            return
        got = form.string((*where, key), parent[key], max_len=max_len, min_len=min_len)
        if got is not None:
            if min_len and not got.strip():  # Discord strips whitespace: "   " is empty
                form.add((*where, key), "BASE_TYPE_REQUIRED", "This field is required")
            counted += len(got)

    text(embed, path, "title", 256)
    text(embed, path, "description", 4096)
    for key in ("url", "type"):
        if present(embed, key):
            form.string((*path, key), embed[key], max_len=2048)
    if present(embed, "timestamp"):
        stamp = form.string((*path, "timestamp"), embed["timestamp"], max_len=64)
        try:
            if stamp is not None:
                datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            form.add((*path, "timestamp"), "DATE_TYPE_PARSE", f"Could not parse {stamp}. Should be ISO8601.")
    if present(embed, "color"):
        form.integer((*path, "color"), embed["color"], 0, 0xFFFFFF)
    if present(embed, "footer") and (footer := form.model((*path, "footer"), embed["footer"])) is not None:
        text(footer, (*path, "footer"), "text", 2048, required=True)
        if present(footer, "icon_url"):
            form.string((*path, "footer", "icon_url"), footer["icon_url"], max_len=2048)
    if present(embed, "author") and (author := form.model((*path, "author"), embed["author"])) is not None:
        text(author, (*path, "author"), "name", 256, required=True)
        for key in ("url", "icon_url"):
            if present(author, key):
                form.string((*path, "author", key), author[key], max_len=2048)
    for key in ("image", "thumbnail"):
        if present(embed, key) and (media := form.model((*path, key), embed[key])) is not None:
            form.required_string(media, (*path, key), "url", max_len=2048)
    if present(embed, "fields"):
        for index, item in enumerate(form.array((*path, "fields"), embed["fields"], max_len=25)):
            where = (*path, "fields", index)
            entry = form.model(where, item)
            if entry is None:
                continue
            text(entry, where, "name", 256, required=True, min_len=1)
            text(entry, where, "value", 1024, required=True, min_len=1)
            if "inline" in entry and entry["inline"] is not None:
                form.boolean((*where, "inline"), entry["inline"])
    return counted


def _allowed_mentions(form: Form, value: object, path: Path) -> None:
    mentions = form.model(path, value)
    if mentions is None:
        return
    for key in mentions:
        if key not in ("parse", "users", "roles", "replied_user"):
            form.add((*path, key), "UNKNOWN_FIELD", f"Unknown field {key!r} (allowed: parse, users, roles, "
                                                    "replied_user).")
    parse: list[Any] = []
    if present(mentions, "parse"):
        parse = form.array((*path, "parse"), mentions["parse"], max_len=3)
        for index, item in enumerate(parse):
            if item not in ("roles", "users", "everyone"):
                form.add((*path, "parse", index), "BASE_TYPE_CHOICES",
                         "Value must be one of ('roles', 'users', 'everyone').")
            elif parse.index(item) != index:
                form.add((*path, "parse", index), "SET_TYPE_ALREADY_CONTAINS_VALUE", "The set already contains "
                                                                                     f"{item!r}.")
    for key in ("users", "roles"):
        if not present(mentions, key):
            continue
        ids = form.array((*path, key), mentions[key], max_len=100)
        for index, item in enumerate(ids):
            if not is_snowflake(item):
                form.add((*path, key, index), "NUMBER_TYPE_COERCE", f"Value \"{item}\" is not snowflake.")
        if ids and key in parse:
            form.add(path, "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                     f"parse:[\"{key}\"] and {key}: [ids...] are mutually exclusive.")
    if "replied_user" in mentions and mentions["replied_user"] is not None:
        form.boolean((*path, "replied_user"), mentions["replied_user"])


def _components(form: Form, value: object, path: Path) -> None:
    custom_ids: dict[str, Path] = {}
    for row_index, item in enumerate(form.array(path, value, max_len=5)):
        row_path = (*path, row_index)
        row = form.model(row_path, item)
        if row is None:
            continue
        if row.get("type") != 1:
            form.add((*row_path, "type"), "COMPONENT_TYPE_INVALID",
                     "Top-level components must be action rows (type 1).")
            continue
        children = form.array((*row_path, "components"), row.get("components"), min_len=1, max_len=5)
        kinds = [child.get("type") for child in children if isinstance(child, dict)]
        if any(kind in SELECT_TYPES for kind in kinds) and len(children) > 1:
            form.add((*row_path, "components"), "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                     "The specified component exceeds the maximum width (a select menu fills its row).")
        for index, child in enumerate(children):
            where = (*row_path, "components", index)
            component = form.model(where, child)
            if component is None:
                continue
            kind = component.get("type")
            if kind == 2:
                _button(form, component, where)
            elif kind in SELECT_TYPES:
                _select(form, component, where)
            else:
                form.add((*where, "type"), "COMPONENT_TYPE_INVALID",
                         f"Component type {kind!r} is not valid in a message action row.")
            custom_id = component.get("custom_id")
            if isinstance(custom_id, str):
                if custom_id in custom_ids:
                    form.add((*where, "custom_id"), "COMPONENT_CUSTOM_ID_DUPLICATED",
                             "Component custom id cannot be duplicated")
                custom_ids[custom_id] = where


_LINK_SCHEMES = ("http://", "https://", "discord://")


def _button(form: Form, button: dict[str, Any], path: Path) -> None:
    style = form.integer((*path, "style"), button.get("style"), 1, 6)
    if present(button, "label"):
        form.string((*path, "label"), button["label"], max_len=80)
    if "disabled" in button and button["disabled"] is not None:
        form.boolean((*path, "disabled"), button["disabled"])
    if style == 5:
        url = form.required_string(button, path, "url", max_len=512)
        if url is not None and not url.lower().startswith(_LINK_SCHEMES):
            form.add((*path, "url"), "URL_TYPE_INVALID_SCHEME",
                     "Scheme must be one of ('http', 'https', 'discord').")
        if present(button, "custom_id"):
            form.add((*path, "custom_id"), "BUTTON_COMPONENT_CUSTOM_ID_NOT_ALLOWED",
                     "A link button cannot have a custom id.")
    elif style == 6:
        if not present(button, "sku_id"):
            form.add((*path, "sku_id"), "BASE_TYPE_REQUIRED", "This field is required")
        for key in ("custom_id", "url", "label"):
            if present(button, key):
                form.add((*path, key), "BUTTON_COMPONENT_FIELD_NOT_ALLOWED", f"A premium button cannot have {key}.")
    elif style is not None and 1 <= style <= 4:
        form.required_string(button, path, "custom_id", max_len=100)
        if present(button, "url"):
            form.add((*path, "url"), "BUTTON_COMPONENT_URL_NOT_ALLOWED", "Only link buttons (style 5) have a url.")


def _select(form: Form, select: dict[str, Any], path: Path) -> None:
    form.required_string(select, path, "custom_id", max_len=100)
    if present(select, "placeholder"):
        form.string((*path, "placeholder"), select["placeholder"], max_len=150)
    low = form.integer((*path, "min_values"), select["min_values"], 0, 25) if present(select, "min_values") else 1
    high = form.integer((*path, "max_values"), select["max_values"], 1, 25) if present(select, "max_values") else 1
    if low is not None and high is not None and low > high:
        form.add((*path, "min_values"), "SELECT_COMPONENT_MIN_VALUES_TOO_LARGE",
                 f"min_values ({low}) must be less than or equal to max_values ({high}).")
    if select.get("type") != 3:
        return
    options = form.array((*path, "options"), select.get("options"), min_len=1, max_len=25)
    if high is not None and options and high > len(options):
        form.add((*path, "max_values"), "SELECT_COMPONENT_MAX_VALUES_TOO_LARGE",
                 f"max_values must be less than or equal to the number of options ({len(options)}).")
    values: set[str] = set()
    for index, item in enumerate(options):
        where = (*path, "options", index)
        option = form.model(where, item)
        if option is None:
            continue
        form.required_string(option, where, "label", max_len=100)
        value = form.required_string(option, where, "value", max_len=100)
        if present(option, "description"):
            form.string((*where, "description"), option["description"], max_len=100)
        if value is not None:
            if value in values:
                form.add((*where, "value"), "SELECT_COMPONENT_OPTION_VALUE_DUPLICATED",
                         "Select component option values must be unique.")
            values.add(value)


# ---- mentions -------------------------------------------------------------------------------------
_USER_MENTION = re.compile(r"<@!?(\d{1,20})>")
_ROLE_MENTION = re.compile(r"<@&(\d{1,20})>")
_EVERYONE = re.compile(r"@(?:everyone|here)")


@dataclass
class Mentions:
    """Who a message pings: user ids, role ids, and whether @everyone/@here does."""

    users: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    everyone: bool = False


def compute_mentions(content: str, allowed: dict[str, Any] | None, *, known_user: Callable[[str], bool],
                     guild_roles: Container[str] | None, replied_user_id: str | None = None) -> Mentions:
    """Who `content` pings under `allowed` (allowed_mentions), as Discord computes it.

    Without allowed_mentions everything written pings (<@id>, <@!id>, <@&id>, @everyone, @here) and a reply
    pings the replied-to author; with it, only what it permits (a reply pings only with replied_user). Embeds
    never ping. Worst case on purpose: the bot is treated as allowed to mention every role and @everyone (as
    with Administrator), and a mention in a code block or after a backslash still counts, so a test catches a
    bot that relies on anything but allowed_mentions. `guild_roles` is None in DMs (no roles, no @everyone).
    """
    parse = set(allowed.get("parse") or []) if allowed is not None else {"users", "roles", "everyone"}
    allowed_users = {str(u) for u in (allowed or {}).get("users") or []}
    allowed_roles = {str(r) for r in (allowed or {}).get("roles") or []}
    result = Mentions()
    for user_id in _USER_MENTION.findall(content):
        if (("users" in parse or user_id in allowed_users) and known_user(user_id)
                and user_id not in result.users):
            result.users.append(user_id)
    replied = bool(allowed.get("replied_user")) if allowed is not None else True
    if replied_user_id is not None and replied and replied_user_id not in result.users:
        result.users.append(replied_user_id)
    if guild_roles is None:
        return result
    for role_id in _ROLE_MENTION.findall(content):
        if (("roles" in parse or role_id in allowed_roles) and role_id in guild_roles
                and role_id not in result.roles):
            result.roles.append(role_id)
    result.everyone = "everyone" in parse and bool(_EVERYONE.search(content))
    return result
