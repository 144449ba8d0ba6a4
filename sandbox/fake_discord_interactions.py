"""Build the `data` of an INTERACTION_CREATE from the command schema the bot synced.

Discord's client only lets a member send options the command declares, with the declared types and
choices; the fake enforces the same, so a test that passes a wrong option fails loudly here instead of
producing an interaction Discord could never send.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sandbox.fake_discord_models import DEFAULT_EVERYONE_PERMISSIONS, channel_payload

if TYPE_CHECKING:
    from sandbox.fake_discord import FakeDiscord

SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2
STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = 3, 4, 5, 6, 7, 8, 9, 10, 11

# (option type, value) -> (wire value, {"users": {...}, "members": {...}, ...} to merge into data.resolved)
Resolver = Callable[[int, object], tuple[Any, dict[str, dict[str, Any]]]]


def find_command(commands: dict[str, list[dict[str, Any]]], name: str,
                 guild_id: str | None, *, kind: int = 1) -> tuple[dict[str, Any], bool]:
    """The synced command of this type (1 chat input, 2 user, 3 message) called `name` (guild commands first);
    True when guild-scoped."""
    if guild_id is not None:
        for command in commands.get(guild_id, []):
            if command["name"] == name and command.get("type", 1) == kind:
                return command, True
    for command in commands.get("global", []):
        if command["name"] == name and command.get("type", 1) == kind:
            return command, False
    synced = {scope: [(c["name"], c.get("type", 1)) for c in cmds] for scope, cmds in commands.items()}
    shown = f"/{name}" if kind == 1 else f"the type-{kind} command {name!r}"
    raise AssertionError(f"{shown} was not synced for guild {guild_id} or globally; synced (name, type): {synced}")


def _select_subcommand(command: dict[str, Any], path: list[str]) -> list[dict[str, Any]]:
    """The schema options of the (group, sub)command at `path`; checks each level exists."""
    schema = command.get("options") or []
    for depth, part in enumerate(path):
        wanted = SUB_COMMAND_GROUP if depth < len(path) - 1 else SUB_COMMAND
        match = next((o for o in schema if o["name"] == part and o["type"] == wanted), None)
        if match is None:
            names = [(o["name"], o["type"]) for o in schema]
            raise AssertionError(f"/{command['name']}: no {'group' if wanted == 2 else 'subcommand'} "
                                 f"{part!r} at {path[:depth]}; have {names}")
        schema = match.get("options") or []
    if path == [] and any(o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP) for o in schema):
        raise AssertionError(f"/{command['name']} has subcommands; pass subcommand=[...]")
    return schema


def _coerce(command: str, option: dict[str, Any], value: object, resolve: Resolver,
            resolved: dict[str, dict[str, Any]], strict: bool) -> Any:
    kind = option["type"]
    name = option["name"]
    if kind == STRING:
        wire: Any = str(value)
    elif kind == INTEGER:
        if isinstance(value, bool) or not isinstance(value, int):
            raise AssertionError(f"/{command} {name}: integer option got {value!r}")
        wire = value
    elif kind == NUMBER:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise AssertionError(f"/{command} {name}: number option got {value!r}")
        wire = value
    elif kind == BOOLEAN:
        if not isinstance(value, bool):
            raise AssertionError(f"/{command} {name}: boolean option got {value!r}")
        wire = value
    else:
        wire, extra = resolve(kind, value)
        for section, entries in extra.items():
            resolved.setdefault(section, {}).update(entries)
    choices = option.get("choices")
    if strict and choices and wire not in [c["value"] for c in choices]:
        raise AssertionError(f"/{command} {name}: {wire!r} is not one of the choices "
                             f"{[c['value'] for c in choices]} (Discord's client cannot send it; "
                             "strict=False sends it anyway)")
    return wire


def build_command_data(command: dict[str, Any], *, guild_scoped: bool, guild_id: str | None,
                       options: dict[str, object], subcommand: list[str] | None, resolve: Resolver,
                       focused: str | None = None, strict: bool = True) -> dict[str, Any]:
    """`data` for a type-2 (or, with `focused`, type-4 autocomplete) interaction.

    strict=False skips the checks Discord's client makes (required options, choices), to test how
    the bot copes with input Discord would not normally let through.
    """
    name = command["name"]
    path = list(subcommand or [])
    top = command.get("options") or []
    if path and path[0] == name and not any(o["name"] == name and o["type"] in (1, 2) for o in top):
        path = path[1:]  # tolerate subcommand=["quota", "set"] for /quota set
    schema = _select_subcommand(command, path)
    by_name = {o["name"]: o for o in schema}
    unknown = set(options) - set(by_name)
    if unknown:
        raise AssertionError(f"/{name}: unknown option(s) {sorted(unknown)}; declared {sorted(by_name)}")
    if focused is None:
        missing = [o["name"] for o in schema if o.get("required") and o["name"] not in options]
        if missing and strict:
            raise AssertionError(f"/{name}: required option(s) missing: {missing} (strict=False sends "
                                 "the interaction anyway)")
    elif focused not in by_name:
        raise AssertionError(f"/{name}: focused option {focused!r} is not declared")
    elif not by_name[focused].get("autocomplete"):
        raise AssertionError(f"/{name}: option {focused!r} has no autocomplete")

    resolved: dict[str, dict[str, Any]] = {}
    leaf: list[dict[str, Any]] = []
    for option in schema:  # schema order, as Discord sends them
        if option["name"] not in options and option["name"] != focused:
            continue
        value = options.get(option["name"], "")
        if option["name"] == focused:
            leaf.append({"name": option["name"], "type": option["type"], "value": str(value),
                         "focused": True})
        else:
            wire = _coerce(name, option, value, resolve, resolved, strict)
            leaf.append({"name": option["name"], "type": option["type"], "value": wire})

    nested = leaf
    for depth in range(len(path) - 1, -1, -1):
        kind = SUB_COMMAND if depth == len(path) - 1 else SUB_COMMAND_GROUP
        nested = [{"name": path[depth], "type": kind, "options": nested}]

    data: dict[str, Any] = {"id": command["id"], "name": name, "type": 1, "options": nested}
    if guild_scoped:
        data["guild_id"] = guild_id
    if resolved:
        data["resolved"] = resolved
    return data


def make_resolver(fake: FakeDiscord, guild_id: str | None) -> Resolver:
    """Turns USER/ROLE/CHANNEL/MENTIONABLE/ATTACHMENT option values into ids + data.resolved."""

    def resolve(kind: int, value: object) -> tuple[Any, dict[str, dict[str, Any]]]:
        if kind == ATTACHMENT:
            if not isinstance(value, dict) or "id" not in value:
                raise AssertionError(f"attachment options take make_attachment() dicts, got {value!r}")
            return value["id"], {"attachments": {value["id"]: value}}
        ident = str(value)
        if kind == USER or (kind == MENTIONABLE and ident in fake._users):
            extra: dict[str, dict[str, Any]] = {"users": {ident: fake._user(ident).payload()}}
            if guild_id is not None and ident in fake._guild(guild_id).members:
                member = fake._member_payload(guild_id, ident)
                member.pop("user")
                perms = str(fake.member_permissions(guild_id, ident))
                extra["members"] = {ident: {**member, "permissions": perms}}
            return ident, extra
        if kind in (ROLE, MENTIONABLE):
            if ident not in fake._roles:
                raise AssertionError(f"unknown role {ident}")
            return ident, {"roles": {ident: fake._roles[ident].payload()}}
        if kind == CHANNEL:
            channel = fake._channel(ident)
            data = {**channel_payload(channel, fake._users),
                    "permissions": str(DEFAULT_EVERYONE_PERMISSIONS)}
            return ident, {"channels": {ident: data}}
        raise AssertionError(f"unsupported option type {kind}")

    return resolve
