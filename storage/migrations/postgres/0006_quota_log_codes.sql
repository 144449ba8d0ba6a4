-- The quota audit log holds codes and values, not sentences: each admin's /quota log renders them in their own
-- language. `code` names the change (bot.quota.LOG_CODES) and `params` holds its values as JSON text (text, as on
-- SQLite, so copy-db moves it unchanged); rows written before keep their English `action` words and no code.
ALTER TABLE quota_log ALTER COLUMN action DROP NOT NULL;
ALTER TABLE quota_log ADD COLUMN code TEXT;
ALTER TABLE quota_log ADD COLUMN params TEXT;
