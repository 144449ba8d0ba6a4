-- Tasks: one row per /upscale, from before the paid POST to the member being told.
CREATE TABLE tasks (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id            INTEGER,                 -- NULL when started in a DM
    channel_id          INTEGER NOT NULL,
    user_id             INTEGER NOT NULL,
    source_kind         TEXT    NOT NULL,        -- 'attachment' | 'url'
    source_url          TEXT    NOT NULL,
    source_label        TEXT    NOT NULL,
    scale               INTEGER NOT NULL,
    status              TEXT    NOT NULL,        -- submitting, pending, processing, completed, failed, cancelled, expired
    upstream_id         TEXT    UNIQUE,
    upstream_status     TEXT,                    -- the raw status last seen (kept when unknown)
    progress            INTEGER NOT NULL DEFAULT 0,
    estimated_time      REAL,
    credits_reserved    REAL,
    credits_used        REAL,
    result_url          TEXT,
    error_code          TEXT,
    error_message       TEXT,
    created_at          REAL    NOT NULL,
    submitted_at        REAL,
    finished_at         REAL,
    next_poll_at        REAL,                    -- NULL: nothing left for the poller (told, or never submitted)
    poll_failures       INTEGER NOT NULL DEFAULT 0,
    card_message_id     INTEGER,
    card_edited_at      REAL,
    card_progress       INTEGER,                 -- progress and status the card last showed
    card_status         TEXT,
    card_state          TEXT,                    -- NULL live, 'final' when the last edit is done, 'gone'
    dm_state            TEXT,                    -- NULL not yet, 'sent', 'refused', 'failed'
    dm_message_id       INTEGER,
    channel_state       TEXT,                    -- NULL not yet, 'sent', 'gone'
    channel_message_id  INTEGER,
    delivery_failures   INTEGER NOT NULL DEFAULT 0,
    notified_at         REAL
);

-- The poller asks "what is due now", /tasks asks "this member's latest".
CREATE INDEX tasks_due ON tasks (next_poll_at) WHERE next_poll_at IS NOT NULL;
CREATE INDEX tasks_user_recent ON tasks (user_id, created_at DESC);
CREATE INDEX tasks_status ON tasks (status);
