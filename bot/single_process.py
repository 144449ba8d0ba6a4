"""One bot process per SQLite file: a second one is refused at start-up with one line.

SQLite takes one writer at a time and the bot's leases assume the database is shared only through PostgreSQL, so
two processes on one file would not share work, they would collide. An flock on `<file>.lock` (released by the
kernel when the process dies, even by SIGKILL) tells a second process that the first is still there.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from bot.startup import EXIT_CONFIGURATION, StartupError


class SQLiteProcessLock:
    def __init__(self, database_path: str) -> None:
        self.database_path = database_path
        self.path = Path(f"{database_path}.lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Hold the lock for this process's lifetime, or raise StartupError naming the process that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            who = f"process {holder}" if holder.isdigit() else "process"
            raise StartupError(
                f"another bot {who} is using the SQLite database {self.database_path}; SQLite serves one process: "
                "stop the other one, or use PostgreSQL (DATABASE_URL=postgresql://...) to run several",
                exit_code=EXIT_CONFIGURATION) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
