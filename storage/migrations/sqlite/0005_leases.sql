-- Leases: the process working on a task, and until when (a process that dies lets its tasks go when the lease
-- runs out). SQLite serves one process, but the columns and rules are the same as on PostgreSQL.
ALTER TABLE tasks ADD COLUMN lease_owner TEXT;
ALTER TABLE tasks ADD COLUMN lease_until REAL;

-- "At most once per interval, across processes" (operator alerts): the last time each was done.
CREATE TABLE throttles (
    name        TEXT PRIMARY KEY,
    last_at     REAL NOT NULL
);
