"""Discord's documented rules for application commands (API v10): command definitions (a bulk PUT) and the
answers to interactions (callback types, autocomplete choices, modals).

Kept apart from the message rules (sandbox/fake_discord_rules.py) so each module stays readable; both
answer the way Discord does: 400, code 50035, with an `errors` tree naming every offending path.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any

from sandbox.fake_discord_interactions import CHANNEL, INTEGER, NUMBER, STRING, SUB_COMMAND, SUB_COMMAND_GROUP
from sandbox.fake_discord_rules import (
    CALLBACK_TYPES,
    CALLBACKS_FOR,
    COMMAND_LIMITS,
    COMMAND_TYPE_NAMES,
    LOCALES,
    MAX_SAFE_INTEGER,
    Form,
    Path,
    message_form,
    present,
)

# ---- command definitions ----------------------------------------------------------------------------
# In the Devanagari and Thai blocks but of script Common, so not \p{sc=Deva}/\p{sc=Thai}: danda, double danda, baht.
_COMMON_IN_BLOCKS = frozenset({0x0964, 0x0965, 0x0E3F})


def valid_chat_input_name(name: str) -> bool:
    """^[-_'\\p{L}\\p{N}\\p{sc=Deva}\\p{sc=Thai}]{1,32}$, lowercase wherever a lowercase form exists."""
    if not 1 <= len(name) <= 32:
        return False
    for char in name:
        if char.lower() != char:
            return False
        if char in "-_'" or unicodedata.category(char)[0] in "LN":
            continue
        point = ord(char)
        if point in _COMMON_IN_BLOCKS:
            return False
        if 0x0900 <= point <= 0x097F or 0xA8E0 <= point <= 0xA8FF or 0x0E00 <= point <= 0x0E7F:
            continue  # Devanagari and Thai, including their combining vowel signs
        return False
    return True


def _chat_input_name(form: Form, path: Path, value: object) -> None:
    if value is None:
        form.add(path, "BASE_TYPE_REQUIRED", "This field is required")
    elif not isinstance(value, str):
        form.add(path, "BASE_TYPE_STRING", "Must be a string.")
    elif not valid_chat_input_name(value):
        form.add(path, "APPLICATION_COMMAND_INVALID_NAME",
                 f"Command name {value!r} is invalid: 1-32 lowercase letters, digits, - _ ' (no spaces).")


def localizations(form: Form, value: object, path: Path, check: Callable[[Path, object], object]) -> None:
    if value is None:
        return
    table = form.model(path, value)
    for locale, text in (table or {}).items():
        if locale not in LOCALES:
            form.add((*path, locale), "LOCALE_INVALID", f"Invalid locale {locale!r}.")
        else:
            check((*path, locale), text)



# ---- interaction callbacks ---------------------------------------------------------------------------
def check_callback(body: object, *, interaction_type: int, focused_type: int | None = None) -> None:
    """An interaction response: its type must suit the interaction, and its data the type."""
    form = Form()
    callback = form.model((), body)
    if callback is None:
        form.raise_if_any()
        return
    kind = callback.get("type")
    if kind not in CALLBACK_TYPES or isinstance(kind, bool):
        form.add(("type",), "BASE_TYPE_CHOICES", f"Value must be one of {CALLBACK_TYPES}.")
    elif kind not in CALLBACKS_FOR.get(interaction_type, set()):
        form.add(("type",), "INTERACTION_CALLBACK_TYPE_INVALID",
                 f"Callback type {kind} is not valid for an interaction of type {interaction_type} "
                 f"(valid: {sorted(CALLBACKS_FOR.get(interaction_type, set()))}).")
    data = callback.get("data")
    if kind in (4, 7, 5) and data is not None and (message := form.model(("data",), data)) is not None:
        message_form(form, message, ("data",))
    elif kind == 8:
        _autocomplete_result(form, data, focused_type)
    elif kind == 9:
        _modal(form, data)
    form.raise_if_any()


def focused_type(payload: dict[str, Any]) -> int | None:
    """The option type of the focused option of an autocomplete INTERACTION_CREATE (None when none is)."""
    stack = list((payload.get("data") or {}).get("options") or [])
    while stack:
        option = stack.pop()
        if option.get("focused"):
            return int(option["type"])
        stack.extend(option.get("options") or [])
    return None


def _autocomplete_result(form: Form, value: object, focused_type: int | None) -> None:
    data = form.model(("data",), value)
    if data is None:
        return
    path: Path = ("data", "choices")
    for index, item in enumerate(form.array(path, data.get("choices"), max_len=25)):
        _choice(form, item, (*path, index), focused_type if focused_type is not None else STRING)


def _choice(form: Form, item: object, where: Path, option_type: int) -> None:
    """One choice, in a command option or an autocomplete answer: name 1-100, localised names, a typed value."""
    choice = form.model(where, item)
    if choice is None:
        return
    form.required_string(choice, where, "name", max_len=100)
    localizations(form, choice.get("name_localizations"), (*where, "name_localizations"),
                  lambda p, v: form.string(p, v, min_len=1, max_len=100))
    choice_value(form, choice, where, option_type)


def choice_value(form: Form, choice: dict[str, Any], where: Path, option_type: int) -> None:
    """A choice value of the option's type: a string of at most 100 characters, an integer or a number."""
    value = choice.get("value")
    path = (*where, "value")
    if value is None:
        form.add(path, "BASE_TYPE_REQUIRED", "This field is required")
    elif option_type == STRING:
        form.string(path, value, max_len=100)
    elif option_type == INTEGER:
        form.integer(path, value, -(MAX_SAFE_INTEGER - 1), MAX_SAFE_INTEGER - 1)
    elif isinstance(value, bool) or not isinstance(value, int | float):
        form.add(path, "NUMBER_TYPE_COERCE", f"Value \"{value}\" is not a valid number.")
    elif not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        form.add(path, "NUMBER_TYPE_MAX", f"Value must be between {-MAX_SAFE_INTEGER} and {MAX_SAFE_INTEGER}.")


def _modal(form: Form, value: object) -> None:
    data = form.model(("data",), value)
    if data is None:
        return
    form.required_string(data, ("data",), "custom_id", max_len=100)
    form.required_string(data, ("data",), "title", max_len=45)
    for index, item in enumerate(form.array(("data", "components"), data.get("components"), min_len=1,
                                            max_len=5)):
        component = form.model(("data", "components", index), item)
        if component is not None and component.get("type") not in (1, 10, 18):
            form.add(("data", "components", index, "type"), "COMPONENT_TYPE_INVALID",
                     "Modal components must be action rows, labels or text displays.")


def check_commands(commands: object) -> None:
    """A bulk overwrite (PUT .../commands): the whole list as Discord would accept it, or 400 50035."""
    form = Form()
    if not isinstance(commands, list):
        form.add((), "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")
        form.raise_if_any()
        return
    seen: dict[tuple[int, str], int] = {}
    counts = dict.fromkeys(COMMAND_LIMITS, 0)
    for index, item in enumerate(commands):
        command = form.model((index,), item)
        if command is None:
            continue
        kind = command.get("type", 1)
        if kind not in COMMAND_LIMITS or isinstance(kind, bool):
            form.add((index, "type"), "BASE_TYPE_CHOICES", "Value must be one of (1, 2, 3).")
            continue
        counts[kind] += 1
        _command(form, command, (index,), kind)
        name = command.get("name")
        if isinstance(name, str):
            if (kind, name) in seen:
                form.add((index, "name"), "APPLICATION_COMMANDS_DUPLICATE_NAME",
                         f"Application command names must be unique per type: {name!r} is also command "
                         f"{seen[(kind, name)]}.")
            seen.setdefault((kind, name), index)
    for kind, limit in COMMAND_LIMITS.items():
        if counts[kind] > limit:
            form.add((), "APPLICATION_COMMANDS_TOO_MANY",
                     f"Maximum number of {COMMAND_TYPE_NAMES[kind]} commands reached ({limit}).")
    form.raise_if_any()


def _command(form: Form, command: dict[str, Any], path: Path, kind: int) -> None:
    if kind == 1:
        _chat_input_name(form, (*path, "name"), command.get("name"))
        localizations(form, command.get("name_localizations"), (*path, "name_localizations"),
                       lambda p, v: _chat_input_name(form, p, v))
        form.required_string(command, path, "description", max_len=100)
        localizations(form, command.get("description_localizations"), (*path, "description_localizations"),
                       lambda p, v: form.string(p, v, min_len=1, max_len=100))
        if present(command, "options"):
            _options(form, command["options"], (*path, "options"), parent=None)
    else:
        form.required_string(command, path, "name", max_len=32)
        localizations(form, command.get("name_localizations"), (*path, "name_localizations"),
                       lambda p, v: form.string(p, v, min_len=1, max_len=32))

        def empty_only(at: Path, text: object) -> None:
            if text != "":
                form.add(at, "APPLICATION_COMMAND_DESCRIPTION_NOT_EMPTY",
                         "USER and MESSAGE commands must have an empty description.")

        if command.get("description") is not None:
            empty_only((*path, "description"), command["description"])
        localizations(form, command.get("description_localizations"), (*path, "description_localizations"),
                       empty_only)
        if command.get("options"):
            form.add((*path, "options"), "APPLICATION_COMMAND_OPTIONS_NOT_ALLOWED",
                     "Only CHAT_INPUT commands can have options.")
    permissions = command.get("default_member_permissions")
    # Discord documents a string; it also accepts an integer (discord.py sends one).
    if permissions is not None and not (
            (isinstance(permissions, str) and permissions.isascii() and permissions.isdigit())
            or (isinstance(permissions, int) and not isinstance(permissions, bool) and permissions >= 0)):
        form.add((*path, "default_member_permissions"), "PERMISSIONS_INVALID",
                 "Must be null or a permission bit set as a string of digits.")
    for key in ("dm_permission", "nsfw"):
        if command.get(key) is not None:
            form.boolean((*path, key), command[key])
    for key, allowed in (("contexts", (0, 1, 2)), ("integration_types", (0, 1))):
        if command.get(key) is not None:
            for position, value in enumerate(form.array((*path, key), command[key], max_len=len(allowed))):
                if value not in allowed or isinstance(value, bool):
                    form.add((*path, key, position), "BASE_TYPE_CHOICES", f"Value must be one of {allowed}.")


def _options(form: Form, value: object, path: Path, *, parent: int | None) -> None:
    """One level of options: at most 25, unique names, required first, subcommands never mixed with values."""
    options = form.array(path, value, max_len=25)
    names: set[str] = set()
    seen_optional = False
    kinds: list[int] = []
    for index, item in enumerate(options):
        where = (*path, index)
        option = form.model(where, item)
        if option is None:
            continue
        kind = option.get("type")
        if isinstance(kind, bool) or kind not in range(1, 12):
            form.add((*where, "type"), "BASE_TYPE_CHOICES", "Value must be one of (1, 2, ..., 11).")
            continue
        kinds.append(kind)
        name = option.get("name")
        _chat_input_name(form, (*where, "name"), name)
        if isinstance(name, str):
            if name in names:
                form.add((*where, "name"), "APPLICATION_COMMAND_OPTIONS_DUPLICATE_NAME",
                         f"Option names must be unique within their level: {name!r} repeats.")
            names.add(name)
        _option(form, option, where, kind)
        if kind in (SUB_COMMAND, SUB_COMMAND_GROUP):
            continue
        if option.get("required"):
            if seen_optional:
                form.add(path, "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                         "Required options must be placed before non-required options")
        else:
            seen_optional = True
    nesting = [k for k in kinds if k in (SUB_COMMAND, SUB_COMMAND_GROUP)]
    if nesting and len(nesting) != len(kinds):
        form.add(path, "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID",
                 "Sub-command and sub-command group option types are mutually exclusive to all other types")
    if parent == SUB_COMMAND_GROUP and any(k != SUB_COMMAND for k in kinds):
        form.add(path, "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID", "A sub-command group contains only sub-commands.")
    if parent == SUB_COMMAND and nesting:
        form.add(path, "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID",
                 "A sub-command cannot contain sub-commands or groups.")


def _option(form: Form, option: dict[str, Any], where: Path, kind: int) -> None:
    localizations(form, option.get("name_localizations"), (*where, "name_localizations"),
                   lambda p, v: _chat_input_name(form, p, v))
    form.required_string(option, where, "description", max_len=100)
    localizations(form, option.get("description_localizations"), (*where, "description_localizations"),
                   lambda p, v: form.string(p, v, min_len=1, max_len=100))
    for key in ("required", "autocomplete"):
        if option.get(key) is not None:
            form.boolean((*where, key), option[key])
    if kind in (SUB_COMMAND, SUB_COMMAND_GROUP):
        if present(option, "options"):
            _options(form, option["options"], (*where, "options"), parent=kind)
    elif option.get("options"):
        form.add((*where, "options"), "APPLICATION_COMMAND_OPTION_FIELD_NOT_ALLOWED",
                 "Only sub-commands and groups have options.")

    def only_on(key: str, types: tuple[int, ...], label: str) -> bool:
        if option.get(key) is None or option.get(key) is False:  # autocomplete: false is as good as absent
            return False
        if kind not in types:
            form.add((*where, key), "APPLICATION_COMMAND_OPTION_FIELD_NOT_ALLOWED", f"{key} is only valid on {label}.")
            return False
        return True

    if only_on("choices", (STRING, INTEGER, NUMBER), "STRING, INTEGER and NUMBER options"):
        choices = form.array((*where, "choices"), option["choices"], max_len=25)
        if choices and option.get("autocomplete"):
            form.add((*where, "autocomplete"), "APPLICATION_COMMAND_OPTION_CHOICES_AUTOCOMPLETE",
                     "Autocomplete cannot be enabled on an option with choices.")
        for index, item in enumerate(choices):
            _choice(form, item, (*where, "choices", index), kind)
    only_on("autocomplete", (STRING, INTEGER, NUMBER), "STRING, INTEGER and NUMBER options")
    bounds: list[float] = []
    for key in ("min_value", "max_value"):
        if only_on(key, (INTEGER, NUMBER), "INTEGER and NUMBER options"):
            bound = option[key]
            if kind == INTEGER:
                checked = form.integer((*where, key), bound, -(MAX_SAFE_INTEGER - 1), MAX_SAFE_INTEGER - 1)
            elif isinstance(bound, bool) or not isinstance(bound, int | float):
                form.add((*where, key), "NUMBER_TYPE_COERCE", f"Value \"{bound}\" is not a valid number.")
                checked = None
            else:
                checked = bound
            if checked is not None:
                bounds.append(checked)
    if len(bounds) == 2 and bounds[0] > bounds[1]:
        form.add((*where, "min_value"), "NUMBER_TYPE_MAX", "min_value must be less than or equal to max_value.")
    lengths: list[int] = []
    for key, low in (("min_length", 0), ("max_length", 1)):
        if only_on(key, (STRING,), "STRING options"):
            checked_len = form.integer((*where, key), option[key], low, 6000)
            if checked_len is not None:
                lengths.append(checked_len)
    if len(lengths) == 2 and lengths[0] > lengths[1]:
        form.add((*where, "min_length"), "NUMBER_TYPE_MAX", "min_length must be less than or equal to max_length.")
    only_on("channel_types", (CHANNEL,), "CHANNEL options")
