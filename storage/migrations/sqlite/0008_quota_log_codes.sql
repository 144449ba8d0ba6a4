-- The quota audit log holds codes and values, not sentences: each admin's /quota log renders them in their own
-- language. `code` names the change (bot.quota.LOG_CODES) and `params` holds its values as JSON; rows written
-- before keep their English `action` words and no code. SQLite cannot drop a NOT NULL, so the table is rebuilt
-- with the same ids and the same AUTOINCREMENT high-water mark.
CREATE TABLE quota_log_new (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id    INTEGER NOT NULL,
    actor_id    INTEGER NOT NULL,
    at          REAL    NOT NULL,
    action      TEXT,                           -- rows from before codes: the change in English words
    code        TEXT,                           -- 'set_limit', 'role_limit', 'block', 'unblock', 'reset'
    params      TEXT                            -- the code's values, a JSON object
);
INSERT INTO quota_log_new (id, guild_id, actor_id, at, action)
    SELECT id, guild_id, actor_id, at, action FROM quota_log ORDER BY id;
DELETE FROM sqlite_sequence WHERE name = 'quota_log_new';
UPDATE sqlite_sequence SET name = 'quota_log_new' WHERE name = 'quota_log';
DROP TABLE quota_log;
ALTER TABLE quota_log_new RENAME TO quota_log;
CREATE INDEX quota_log_recent ON quota_log (guild_id, id DESC);
