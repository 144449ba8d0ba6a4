"""`python -m bot copy-db --to URL`: move the configured database (DATABASE_URL) into an empty one.

Made for outgrowing SQLite (SQLite -> PostgreSQL), and the same code runs any other way through the Storage seam.
Every table is copied with its ids (task numbers are in members' cards, DMs and callback URLs), then checked;
the source is only read. The copy is one transaction on the target, and the check runs inside it: a refused
target, a failed copy, a difference found or Ctrl-C all leave the target as empty as it was found.

usage_counters is not copied: the target's own triggers rebuild it from the tasks as they go in, exactly as the
bot's quota check will keep it from then on, and the check compares it with the source's row by row. Copying it
with the triggers off would need rights a database owner may not have (PostgreSQL's session_replication_role
is superuser-only) and would carry over any drift instead of revealing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from storage import Storage, database_password, is_postgres, open_storage, shown_url, sqlite_path
from storage.schema import COPIED_TABLES, ID_TABLES, USAGE_COLUMNS, USAGE_TABLE

BATCH = 1000
EXIT_DIFFERENT = 1
EXIT_REFUSED = 2
# Credits are floats summed in a different order on each side (adds and take-backs on the source, adds only on
# the target), so equal means equal to well under a thousandth of a credit.
CREDIT_TOLERANCE = 1e-6
URL_FORMS = "sqlite:///path/to/file.db or postgresql://user:password@host:5432/database"

UsageKey = tuple[int, int, str]


class CopyRefused(Exception):
    """Nothing was copied, for a reason the operator must fix first (exit 2); str() is the one line."""


class CopyCheckFailed(Exception):
    """The copy was made but the figures differ, so it was rolled back (exit 1); str() is the one line."""

    def __init__(self, message: str, report: CopyReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class CopyReport:
    """The figures of one copy: rows per table on each side, the usage check, and what the target numbers next."""

    source: str
    target: str
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # table -> (source rows, target rows)
    usage_rows: tuple[int, int] = (0, 0)  # usage_counters rows with any usage, source and target
    next_ids: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    source_migrated: bool = False

    def lines(self) -> list[str]:
        """The short table `copy-db` prints."""
        width = max(len(name) for name in (*self.counts, USAGE_TABLE))
        rows = [f"{'table':<{width}}  {'source':>10}  {'target':>10}"]
        rows += [f"{table:<{width}}  {source:>10,}  {target:>10,}" for table, (source, target) in self.counts.items()]
        source, target = self.usage_rows
        rows.append(f"{USAGE_TABLE:<{width}}  {source:>10,}  {target:>10,}  (rows with usage; the target's rebuilt "
                    "from its tasks)")
        return rows


def check_url(url: str, what: str) -> None:
    """CopyRefused naming `what` (`--to`, DATABASE_URL) unless `url` is a database URL the drivers accept."""
    if is_postgres(url):
        try:
            urlsplit(url).port  # noqa: B018 - raises on a malformed port
        except ValueError:
            raise CopyRefused(f"{what} is not a valid PostgreSQL URL: {shown(url)}") from None
        return
    try:
        path = sqlite_path(url)
    except ValueError:
        raise CopyRefused(f"{what} must look like {URL_FORMS}, got {shown(url)}") from None
    if path == ":memory:":
        raise CopyRefused(f"{what} names an in-memory SQLite database, which vanishes when the copy ends; "
                          "name a file")


def shown(url: str) -> str:
    """A URL as it may be printed: shown_url, and a login in a URL of any other scheme hidden as well."""
    return re.sub(r"^([a-zA-Z][\w+.-]*://)[^/@]*@", r"\1***@", shown_url(url)) if not is_postgres(url) \
        else shown_url(url)


def _same_place(source_url: str, target_url: str) -> bool:
    """The two URLs plainly name one database (the identity check after opening catches the rest)."""
    if is_postgres(source_url) != is_postgres(target_url):
        return False
    if not is_postgres(source_url):
        source, target = Path(sqlite_path(source_url)), Path(sqlite_path(target_url))
        if source.exists() and target.exists():
            return os.path.samefile(source, target)
        return source.resolve() == target.resolve()
    a, b = urlsplit(source_url), urlsplit(target_url)
    return ((a.hostname or "localhost").lower(), a.port or 5432, a.path.strip("/") or a.username) == \
        ((b.hostname or "localhost").lower(), b.port or 5432, b.path.strip("/") or b.username)


async def _open_source(url: str) -> tuple[Storage, bool]:
    """The source, and whether its pending migrations had to be applied. A SQLite file is opened read-only; only
    a file from an older version of the bot is migrated first (as the bot itself would on start). PostgreSQL is
    opened as the bot opens it (a fully migrated database is not written to) and read in a read-only snapshot."""
    if is_postgres(url):
        return await open_storage(url, pool_size=2), False
    from storage.sqlite import SQLiteStorage

    path = sqlite_path(url)
    try:
        store = await SQLiteStorage.open_readonly(path)
    except FileNotFoundError:
        raise CopyRefused(f"there is no database at {path} (DATABASE_URL={url}; a relative path is relative to "
                          "the working directory), so there is nothing to copy: run copy-db where the bot runs"
                          ) from None
    version, newest = await store.schema_version()
    if version == newest:
        return store, False
    await store.close()
    if version > newest:
        raise CopyRefused(f"the source database {url} was written by a newer version of the bot (schema {version}, "
                          f"this one knows up to {newest}): run copy-db from that version")
    return await open_storage(url), True


async def _open_target(url: str) -> Storage:
    """The target with its migrations applied (a new SQLite file is created), as the bot would open it."""
    try:
        return await open_storage(url, pool_size=2)
    except Exception as error:
        raise CopyRefused(f"cannot open the target database {shown(url)}: {_detail(error)}; check --to (and that "
                          "the server is running)") from error


def _detail(error: BaseException) -> str:
    return " ".join(str(error).split())[:200] or type(error).__name__


async def _usage(store: Storage, batch: int) -> dict[UsageKey, tuple[int, float]]:
    """usage_counters without the rows that count nothing (a job given back leaves a zero row on the source)."""
    found: dict[UsageKey, tuple[int, float]] = {}
    async with contextlib.aclosing(store.iter_rows(USAGE_TABLE, USAGE_COLUMNS, batch)) as batches:
        async for rows in batches:
            for guild_key, user_id, period, jobs, credits in rows:
                if jobs or abs(credits) > CREDIT_TOLERANCE:
                    found[(int(guild_key), int(user_id), str(period))] = (int(jobs), float(credits))
    return found


def usage_differences(source: Mapping[UsageKey, tuple[int, float]],
                      target: Mapping[UsageKey, tuple[int, float]]) -> list[str]:
    """Each counter row that is not the same on both sides (jobs exactly, credits within CREDIT_TOLERANCE)."""
    differences = []
    for key in sorted(source.keys() | target.keys()):
        a, b = source.get(key, (0, 0.0)), target.get(key, (0, 0.0))
        if a[0] != b[0] or not math.isclose(a[1], b[1], rel_tol=CREDIT_TOLERANCE, abs_tol=CREDIT_TOLERANCE):
            guild, user, period = key
            who = "the server" if user == 0 else f"member {user}"
            differences.append(f"server {guild}, {who}, {period}: source {a[0]} job(s) {a[1]:g} credits, "
                               f"target {b[0]} job(s) {b[1]:g} credits")
    return differences


async def copy_database(source_url: str, target_url: str, *, batch: int = BATCH) -> CopyReport:
    """Copy every table of `source_url` into the empty database `target_url` and check the result.

    Raises CopyRefused (nothing copied: bad URL, same database, a target with rows, a source missing or
    unopenable), CopyCheckFailed (the figures differ; rolled back), or the error that stopped the copy (rolled
    back). The source is only read.
    """
    check_url(target_url, "--to")
    check_url(source_url, "DATABASE_URL")
    if _same_place(source_url, target_url):
        raise CopyRefused(f"--to names the database the bot uses (DATABASE_URL={shown(source_url)}): "
                          "give an empty database to copy into")
    started = time.monotonic()
    source, migrated = await _open_source_checked(source_url)
    try:
        target = await _open_target(target_url)
        try:
            if await source.database_identity() == await target.database_identity():
                raise CopyRefused(f"--to {shown(target_url)} is the database the bot uses (DATABASE_URL="
                                  f"{shown(source_url)}): give an empty database to copy into")
            columns = await _columns(source, target)
            report = CopyReport(shown(source_url), shown(target_url), source_migrated=migrated)
            await _copy(source, target, columns, batch, report)
        finally:
            await target.close()
    finally:
        await source.close()
    report.seconds = time.monotonic() - started
    return report


async def _open_source_checked(url: str) -> tuple[Storage, bool]:
    try:
        return await _open_source(url)
    except CopyRefused:
        raise
    except Exception as error:
        raise CopyRefused(f"cannot open the source database {shown(url)}: {_detail(error)}; check DATABASE_URL "
                          "(in the environment or .env)") from error


async def _columns(source: Storage, target: Storage) -> dict[str, list[str]]:
    """Each copied table's columns, in the source's order; both sides must have the same (both fully migrated)."""
    columns = {}
    for table in COPIED_TABLES:
        theirs, ours = await source.table_columns(table), await target.table_columns(table)
        if set(theirs) != set(ours):
            raise CopyRefused(f"the {table} tables differ: only in the source {sorted(set(theirs) - set(ours))}, "
                              f"only in the target {sorted(set(ours) - set(theirs))}; both must be migrated by this "
                              "version of the bot")
        columns[table] = theirs
    return columns


async def _copy(source: Storage, target: Storage, columns: Mapping[str, list[str]], batch: int,
                report: CopyReport) -> None:
    """The copy and its check, all in the target's one transaction: any exception here rolls it back."""
    async with source.copy_session(write=False), target.copy_session(write=True):
        present = {table: rows for table, rows in (await target.table_counts()).items() if rows}
        if present:
            rows = ", ".join(f"{table} {count:,}" for table, count in present.items())
            raise CopyRefused(f"the target {report.target} is not empty ({rows} rows); copy-db only fills an empty "
                              "database: empty it (or create a new one) and run again. Nothing was written")
        before = await source.table_counts()
        high_water = await source.id_high_water()
        copied = dict.fromkeys(COPIED_TABLES, 0)
        for table, names in columns.items():
            async with contextlib.aclosing(source.iter_rows(table, names, batch)) as batches:
                async for rows in batches:
                    await target.insert_rows(table, names, rows)
                    copied[table] += len(rows)
        await target.after_copy(high_water)

        after = await target.table_counts()
        report.counts = {table: (before[table], after[table]) for table in COPIED_TABLES}
        source_usage, target_usage = await _usage(source, batch), await _usage(target, batch)
        report.usage_rows = (len(source_usage), len(target_usage))
        report.next_ids = {table: high + 1 for table, high in (await target.id_high_water()).items()}
        problems = [f"{table}: {before[table]:,} in the source, {copied[table]:,} read, {after[table]:,} in the "
                    "target" for table in COPIED_TABLES if not before[table] == copied[table] == after[table]]
        problems += [f"the next id of {table} would be {report.next_ids[table]:,}, not above {high_water[table]:,}"
                     for table in ID_TABLES if report.next_ids[table] <= high_water[table]]
        differences = usage_differences(source_usage, target_usage)
        if differences:
            more = f" (and {len(differences) - 1:,} more)" if len(differences) > 1 else ""
            problems.append(f"usage_counters differ: {differences[0]}{more}")
        if problems:
            raise CopyCheckFailed(f"the check found a difference: {'; '.join(problems)}. The copy was rolled back: "
                                  "nothing was written to the target", report)


# ---- the command ----------------------------------------------------------------------------------------------

def _say(message: str, secrets: tuple[str, ...]) -> None:
    for secret in secrets:
        if len(secret) >= 4:
            message = message.replace(secret, "***")
    print(f"upscale-bot: {message}", file=sys.stderr, flush=True)


async def run_copy_db(target_url: str, stop: asyncio.Event) -> int:
    """`python -m bot copy-db --to URL`: needs only DATABASE_URL (environment or .env), never the credentials.
    Prints the figures; exit 0 copied and checked, 1 the check found a difference or the copy failed (rolled
    back), 2 refused (bad URL, same database, non-empty target, no source); one line on stderr for 1 and 2."""
    from bot.config import ConfigError, load_settings

    secrets = tuple(s for s in (database_password(target_url),) if s)
    try:
        settings = load_settings(require_credentials=False)
    except ConfigError as error:
        _say(f"configuration error: {error}", secrets)
        return EXIT_REFUSED
    source_url = settings.database_url
    secrets += tuple(s for s in (database_password(source_url),) if s)
    print(f"copying {shown(source_url)} -> {shown(target_url)}", flush=True)
    work = asyncio.create_task(copy_database(source_url, target_url))
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if not work.done():
        work.cancel()
        await asyncio.wait({work})
        _say("interrupted: the copy was rolled back, nothing was written to the target; the source was not changed",
             secrets)
        return EXIT_DIFFERENT
    try:
        report = work.result()
    except CopyRefused as error:
        _say(str(error), secrets)
        return EXIT_REFUSED
    except CopyCheckFailed as error:
        print("\n".join(error.report.lines()), flush=True)
        _say(str(error), secrets)
        return EXIT_DIFFERENT
    except Exception as error:
        _say(f"the copy failed: {_detail(error)}. Its transaction was not committed, so nothing was written to the "
             "target (if in doubt, empty it before running again); the source was not changed", secrets)
        return EXIT_DIFFERENT
    print("\n".join(report.lines()))
    untouched = ("The source was only read, after its pending migrations were applied (it was from an older version "
                 "of the bot; the bot applies them when it starts)") if report.source_migrated \
        else "The source was only read"
    print(f"copied and checked in {report.seconds:.1f} s; new tasks on the target are numbered from "
          f"#{report.next_ids.get('tasks', 1):,}. {untouched}.")
    print("next: set DATABASE_URL to the --to URL and start the bot", flush=True)
    return 0
