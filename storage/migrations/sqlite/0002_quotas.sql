-- Quotas: limits per server and per role, blocked members, an audit log, and the ledger columns on tasks.

-- A row with value NULL means "unlimited, set explicitly"; no row means "the operator's default".
CREATE TABLE guild_limits (
    guild_id    INTEGER NOT NULL,
    name        TEXT    NOT NULL,
    value       INTEGER,
    PRIMARY KEY (guild_id, name)
);

CREATE TABLE role_limits (
    guild_id    INTEGER NOT NULL,
    role_id     INTEGER NOT NULL,
    name        TEXT    NOT NULL,
    value       INTEGER NOT NULL,
    PRIMARY KEY (guild_id, role_id, name)
);

CREATE TABLE blocked_members (
    guild_id    INTEGER NOT NULL,
    user_id     INTEGER NOT NULL,
    reason      TEXT,
    blocked_by  INTEGER NOT NULL,
    blocked_at  REAL    NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);

CREATE TABLE quota_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id    INTEGER NOT NULL,
    actor_id    INTEGER NOT NULL,
    at          REAL    NOT NULL,
    action      TEXT    NOT NULL
);
CREATE INDEX quota_log_recent ON quota_log (guild_id, id DESC);

-- The ledger lives on the task row: its UTC day and month, whether it still holds its job and credits,
-- what it is charged, and whether an admin zeroed it for the member (it still counts for the server).
ALTER TABLE tasks ADD COLUMN quota_day TEXT;
ALTER TABLE tasks ADD COLUMN quota_month TEXT;
ALTER TABLE tasks ADD COLUMN quota_state TEXT;
ALTER TABLE tasks ADD COLUMN credits_charged REAL;
ALTER TABLE tasks ADD COLUMN member_reset INTEGER NOT NULL DEFAULT 0;

CREATE INDEX tasks_guild_day ON tasks (guild_id, quota_day) WHERE quota_state = 'held';
CREATE INDEX tasks_guild_month ON tasks (guild_id, quota_month) WHERE quota_state = 'held';
CREATE INDEX tasks_member_status ON tasks (guild_id, user_id, status);
