"""A throwaway PostgreSQL cluster for tests and benchmarks, and empty databases on any server that allows it.

The suite must run on PostgreSQL without anyone setting a server up: when `TEST_DATABASE_URL` is unset we start a
private cluster from the server binaries (`initdb`/`pg_ctl`) in a temporary folder, tuned for speed instead of
durability, on a free loopback port, and remove it afterwards. The server refuses to run as root, so as root it
runs as an unprivileged user (`postgres` if that user exists, else `nobody`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import glob
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

# Where distributions put the server binaries when they are not on PATH (Debian/Ubuntu, source builds,
# Homebrew, the PGDG RPMs); within one pattern the highest version wins.
SEARCH_PATTERNS: tuple[str, ...] = (
    "/usr/lib/postgresql/*/bin",
    "/usr/local/pgsql/bin",
    "/opt/homebrew/opt/postgresql*/bin",
    "/usr/pgsql-*/bin",
)
SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")
PREFIX = "upscale-pg-"  # each cluster's folder in the temporary directory
OWNER_FILE = "owner.pid"  # the process that started it: when that is gone, the next start removes the cluster

# Durability costs time and a test cluster is thrown away, so: no fsync, no waiting for the WAL, and enough
# connections for two bot processes with pools of 10 each plus the tests' own on every worker.
FAST_SETTINGS: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "32MB",
    "listen_addresses": "'127.0.0.1'",
    "logging_collector": "off",
    "log_min_messages": "warning",
}


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL to test against; the message is one line that says what is missing or what failed."""


def _version_key(path: str) -> tuple[int, ...]:
    """Sort key so /usr/lib/postgresql/16/bin comes before .../15/bin and postgresql@9.6 after @14."""
    return tuple(int(n) for n in re.findall(r"\d+", path))


def find_server_binaries(search_path: str | None = None, patterns: Sequence[str] | None = None) -> Path:
    """The folder that holds initdb, pg_ctl and postgres: PATH first, then the usual install folders.

    `search_path` replaces $PATH and `patterns` SEARCH_PATTERNS (tests pass bogus ones to check the message).
    """
    patterns = SEARCH_PATTERNS if patterns is None else patterns
    initdb = shutil.which("initdb", path=search_path if search_path is not None else os.environ.get("PATH", ""))
    candidates = [str(Path(initdb).parent)] if initdb else []
    for pattern in patterns:
        candidates += sorted(glob.glob(pattern), key=_version_key, reverse=True)
    for folder in candidates:
        if all(os.access(Path(folder, name), os.X_OK) for name in SERVER_BINARIES):
            return Path(folder)
    where = ", ".join(["PATH", *patterns])
    raise PostgresUnavailable(
        f"no PostgreSQL server binaries (initdb, pg_ctl, postgres) found on {where}; install the PostgreSQL server "
        "(e.g. apt-get install postgresql) or set TEST_DATABASE_URL")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reachable_by_others(folder: str) -> bool:
    """True when every folder up to `folder` lets other users through (an unprivileged server must reach it)."""
    path = Path(folder).resolve()
    return all(p.stat().st_mode & stat.S_IXOTH for p in (path, *path.parents))


class PostgresCluster:
    """A private PostgreSQL cluster in a temporary folder: `start()` / `stop()`, or `with` / `async with`.

    `url` is the admin URL (user `postgres`, trust authentication, database `postgres`) once started.
    """

    def __init__(self, bin_dir: Path | None = None, *, settings: dict[str, str] | None = None) -> None:
        self.bin_dir = bin_dir
        self.settings = {**FAST_SETTINGS, **(settings or {})}
        self.root: Path | None = None
        self.port: int | None = None
        self.run_as: str | None = None
        self._started = False

    @property
    def data_dir(self) -> Path:
        assert self.root is not None, "the cluster is not started"
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        assert self.root is not None, "the cluster is not started"
        return self.root / "server.log"

    @property
    def url(self) -> str:
        assert self._started and self.port is not None, "the cluster is not started"
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> str:
        """initdb and start the server (pg_ctl -w waits until it accepts connections); returns the admin URL."""
        if self._started:
            return self.url
        self.bin_dir = self.bin_dir or find_server_binaries()
        uid, gid = self._unprivileged_user()
        base = tempfile.gettempdir()
        if uid is not None and not _reachable_by_others(base):
            base = "/tmp"  # TMPDIR may sit under root's home, which the server's user cannot enter
        self._reap_orphans(Path(base))
        self.root = Path(tempfile.mkdtemp(prefix=PREFIX, dir=base))
        (self.root / OWNER_FILE).write_text(str(os.getpid()))
        atexit.register(self.stop)
        try:
            if uid is not None:
                os.chmod(self.root, 0o700)
                os.chown(self.root, uid, gid)  # type: ignore[arg-type]
            self._run("initdb", "-D", str(self.data_dir), "--auth=trust", "-U", "postgres", "--no-sync",
                      "-E", "UTF8", "--locale=C", what="initdb")
            conf = {**self.settings, "unix_socket_directories": f"'{self.root}'"}
            with (self.data_dir / "postgresql.conf").open("a") as handle:
                handle.write("\n# upscale bot test cluster\n")
                handle.writelines(f"{name} = {value}\n" for name, value in conf.items())
            self._start_on_a_free_port()
        except BaseException:
            self.stop()
            raise
        self._started = True
        return self.url

    def _start_on_a_free_port(self) -> None:
        """pg_ctl start on a free port, again on another if a parallel worker took that one in between."""
        for attempt in range(3):
            self.port = _free_port()
            try:
                self._run("pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_path), "-w", "-t", "60",
                          "-o", f"-p {self.port}", what="pg_ctl start")
                return
            except PostgresUnavailable:
                if attempt == 2 or "already in use" not in self._log_tail():
                    raise
                self.log_path.unlink(missing_ok=True)

    def stop(self) -> None:
        """Stop the server at once (nothing in it is worth a checkpoint) and remove the folder; safe to repeat."""
        root = self.root
        if root is None:
            return
        atexit.unregister(self.stop)
        data = root / "data"
        try:
            if (data / "postmaster.pid").exists() and self.bin_dir is not None:
                try:
                    self._run("pg_ctl", "stop", "-D", str(data), "-m", "immediate", "-w", "-t", "30",
                              what="pg_ctl stop")
                except (PostgresUnavailable, OSError):
                    self._kill_postmaster(data)
        finally:
            self.root = None
            self._started = False
            shutil.rmtree(root, ignore_errors=True)

    def _reap_orphans(self, base: Path) -> None:
        """Stop and remove the clusters of runs that were killed before they could (their owner process is gone),
        so a machine that runs the suite again and again does not gather servers."""
        for root in base.glob(f"{PREFIX}*"):
            try:
                owner = int((root / OWNER_FILE).read_text())
            except (OSError, ValueError):
                continue  # not ours to judge (another user's, or being created right now)
            if _alive(owner):
                continue
            orphan = PostgresCluster(self.bin_dir)
            orphan.root, orphan.run_as = root, self.run_as
            orphan.stop()

    @staticmethod
    def _kill_postmaster(data: Path) -> None:
        """Last resort when pg_ctl stop failed: SIGKILL the postmaster named in postmaster.pid."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((data / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, signal.SIGKILL)

    def _unprivileged_user(self) -> tuple[int | None, int | None]:
        """(uid, gid) to run the server as when we are root, else (None, None): postgres refuses to run as root."""
        if os.geteuid() != 0:
            return None, None
        for name in ("postgres", "nobody"):
            with contextlib.suppress(KeyError):
                entry = pwd.getpwnam(name)
                self.run_as = name
                return entry.pw_uid, entry.pw_gid
        raise PostgresUnavailable("running as root and neither a 'postgres' nor a 'nobody' user exists to run the "
                                  "PostgreSQL server as; run the tests as another user or set TEST_DATABASE_URL")

    def _command(self, program: str, *args: str) -> list[str]:
        """The command line, wrapped to drop root when needed (runuser, else setpriv, else su)."""
        assert self.bin_dir is not None
        command = [str(self.bin_dir / program), *args]
        if self.run_as is None:
            return command
        if shutil.which("runuser"):
            return ["runuser", "-u", self.run_as, "--", *command]
        if shutil.which("setpriv"):
            entry = pwd.getpwnam(self.run_as)
            return ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups", *command]
        if shutil.which("su"):
            return ["su", "-s", "/bin/sh", self.run_as, "-c", shlex.join(command)]
        raise PostgresUnavailable(f"running as root and none of runuser, setpriv or su is available to run the "
                                  f"PostgreSQL server as {self.run_as!r}; set TEST_DATABASE_URL")

    def _run(self, program: str, *args: str, what: str) -> None:
        assert self.root is not None
        try:
            done = subprocess.run(self._command(program, *args), cwd=self.root, stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, timeout=120, check=False)
        except subprocess.TimeoutExpired:
            raise PostgresUnavailable(f"{what} did not finish within 120 s in {self.root}") from None
        if done.returncode != 0:
            said = (done.stderr.strip() or done.stdout.strip() or self._log_tail()).splitlines()
            detail = said[-1] if said else "no output"
            raise PostgresUnavailable(f"{what} failed (exit {done.returncode}) in {self.root}: {detail}")

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except (OSError, AssertionError):
            return ""

    def __enter__(self) -> PostgresCluster:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    async def __aenter__(self) -> PostgresCluster:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await asyncio.to_thread(self.stop)


@contextlib.contextmanager
def postgres_admin_url(environ: dict[str, str] | None = None) -> Iterator[str]:
    """`TEST_DATABASE_URL` when set (it must allow CREATE DATABASE), else a throwaway cluster for the block.

    Raises PostgresUnavailable when neither is possible.
    """
    environ = dict(os.environ) if environ is None else environ
    configured = environ.get("TEST_DATABASE_URL", "").strip()
    if configured:
        yield configured
        return
    with PostgresCluster() as cluster:
        yield cluster.url


def database_url(admin_url: str, name: str) -> str:
    """`admin_url` with its database replaced by `name` (user, password, host, port and options kept)."""
    parts = urlsplit(admin_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def _checked_name(name: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise ValueError(f"database name {name!r} must be lower-case letters, digits and _ (at most 63)")
    return name


def new_database_name(prefix: str = "upscale_test") -> str:
    """A name no other worker or concurrent run will pick, even on a shared TEST_DATABASE_URL server."""
    return f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"


async def create_database(admin_url: str, name: str | None = None) -> str:
    """Create an empty database on the server behind `admin_url`; returns its URL."""
    import asyncpg

    name = _checked_name(name or new_database_name())
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return database_url(admin_url, name)


async def drop_database(admin_url: str, name_or_url: str) -> None:
    """Drop a database made by create_database, even with connections still open (a killed bot's, say)."""
    import asyncpg

    name = name_or_url.rsplit("/", 1)[-1].split("?", 1)[0] if "://" in name_or_url else name_or_url
    name = _checked_name(name)
    conn = await asyncpg.connect(admin_url)
    try:
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except asyncpg.PostgresSyntaxError:  # before PostgreSQL 13: end the sessions ourselves
            await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await conn.close()
