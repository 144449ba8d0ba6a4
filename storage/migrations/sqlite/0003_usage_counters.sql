-- Running usage totals per (server, member or 0 for the whole server, day 'd…' or month 'm…'), kept by
-- triggers on tasks, so the quota check reads a few rows by key instead of counting the server's whole month.
CREATE TABLE usage_counters (
    guild_key   INTEGER NOT NULL,               -- guild id, 0 for DMs
    user_id     INTEGER NOT NULL,               -- member id, 0 for the server total
    period      TEXT    NOT NULL,               -- 'd2026-11-28' or 'm2026-11'
    jobs        INTEGER NOT NULL DEFAULT 0,
    credits     REAL    NOT NULL DEFAULT 0,
    PRIMARY KEY (guild_key, user_id, period)
) WITHOUT ROWID;

CREATE TRIGGER tasks_usage_insert AFTER INSERT ON tasks WHEN NEW.quota_state IS 'held'
BEGIN
    INSERT INTO usage_counters (guild_key, user_id, period, jobs, credits)
    SELECT IFNULL(NEW.guild_id, 0), NEW.user_id, 'd' || NEW.quota_day, ((NEW.quota_state IS 'held') AND NEW.member_reset = 0), ((NEW.quota_state IS 'held') AND NEW.member_reset = 0) * IFNULL(NEW.credits_charged, 0)
    WHERE NEW.quota_day IS NOT NULL
    ON CONFLICT (guild_key, user_id, period) DO UPDATE SET jobs = jobs + excluded.jobs, credits = credits + excluded.credits;
    INSERT INTO usage_counters (guild_key, user_id, period, jobs, credits)
    SELECT IFNULL(NEW.guild_id, 0), NEW.user_id, 'm' || NEW.quota_month, ((NEW.quota_state IS 'held') AND NEW.member_reset = 0), ((NEW.quota_state IS 'held') AND NEW.member_reset = 0) * IFNULL(NEW.credits_charged, 0)
    WHERE NEW.quota_month IS NOT NULL
    ON CONFLICT (guild_key, user_id, period) DO UPDATE SET jobs = jobs + excluded.jobs, credits = credits + excluded.credits;
    INSERT INTO usage_counters (guild_key, user_id, period, jobs, credits)
    SELECT IFNULL(NEW.guild_id, 0), 0, 'd' || NEW.quota_day, (NEW.quota_state IS 'held'), (NEW.quota_state IS 'held') * IFNULL(NEW.credits_charged, 0)
    WHERE NEW.quota_day IS NOT NULL
    ON CONFLICT (guild_key, user_id, period) DO UPDATE SET jobs = jobs + excluded.jobs, credits = credits + excluded.credits;
    INSERT INTO usage_counters (guild_key, user_id, period, jobs, credits)
    SELECT IFNULL(NEW.guild_id, 0), 0, 'm' || NEW.quota_month, (NEW.quota_state IS 'held'), (NEW.quota_state IS 'held') * IFNULL(NEW.credits_charged, 0)
    WHERE NEW.quota_month IS NOT NULL
    ON CONFLICT (guild_key, user_id, period) DO UPDATE SET jobs = jobs + excluded.jobs, credits = credits + excluded.credits;
END;

CREATE TRIGGER tasks_usage_update AFTER UPDATE OF quota_state, credits_charged, member_reset ON tasks
WHEN OLD.quota_state IS 'held' OR NEW.quota_state IS 'held'
BEGIN
    INSERT INTO usage_counters (guild_key, user_id, period, jobs, credits)
    SELECT IFNULL(OLD.guild_id, 0), OLD.user_id, 'd' || OLD.quota_day, -((OLD.quota_state IS 'held') AND OLD.member_reset = 0), -((OLD.quota_state IS 'held') AND OLD.member_reset = 0) * IFNULL(OLD.credits_charged, 0)
    WHERE OLD.quota_day IS NOT NULL
    ON CONFLICT (guild_key, user_id, period) DO UPDATE SET jobs = jobs + excluded.jobs, credits = credits + excluded.credits;
    INSERT INTO usage_counters (guild_key, user_id, period, jobs, credits)
    SELECT IFNULL(OLD.guild_id, 0), OLD.user_id, 'm' || OLD.quota_month, -((OLD.quota_state IS 'held') AND OLD.member_reset = 0), -((OLD.quota_state IS 'held') AND OLD.member_reset = 0) * IFNULL(OLD.credits_charged, 0)
    WHERE OLD.quota_month IS NOT NULL
    ON CONFLICT (guild_key, user_id, period) DO UPDATE SET jobs = jobs + excluded.jobs, credits = credits + excluded.credits;
    INSERT INTO usage_counters (guild_key, user_id, period, jobs, credits)
    SELECT IFNULL(OLD.guild_id, 0), 0, 'd' || OLD.quota_day, -(OLD.quota_state IS 'held'), -(OLD.quota_state IS 'held') * IFNULL(OLD.credits_charged, 0)
    WHERE OLD.quota_day IS NOT NULL
    ON CONFLICT (guild_key, user_id, period) DO UPDATE SET jobs = jobs + excluded.jobs, credits = credits + excluded.credits;
    INSERT INTO usage_counters (guild_key, user_id, period, jobs, credits)
    SELECT IFNULL(OLD.guild_id, 0), 0, 'm' || OLD.quota_month, -(OLD.quota_state IS 'held'), -(OLD.quota_state IS 'held') * IFNULL(OLD.credits_charged, 0)
    WHERE OLD.quota_month IS NOT NULL
    ON CONFLICT (guild_key, user_id, period) DO UPDATE SET jobs = jobs + excluded.jobs, credits = credits + excluded.credits;
    INSERT INTO usage_counters (guild_key, user_id, period, jobs, credits)
    SELECT IFNULL(NEW.guild_id, 0), NEW.user_id, 'd' || NEW.quota_day, ((NEW.quota_state IS 'held') AND NEW.member_reset = 0), ((NEW.quota_state IS 'held') AND NEW.member_reset = 0) * IFNULL(NEW.credits_charged, 0)
    WHERE NEW.quota_day IS NOT NULL
    ON CONFLICT (guild_key, user_id, period) DO UPDATE SET jobs = jobs + excluded.jobs, credits = credits + excluded.credits;
    INSERT INTO usage_counters (guild_key, user_id, period, jobs, credits)
    SELECT IFNULL(NEW.guild_id, 0), NEW.user_id, 'm' || NEW.quota_month, ((NEW.quota_state IS 'held') AND NEW.member_reset = 0), ((NEW.quota_state IS 'held') AND NEW.member_reset = 0) * IFNULL(NEW.credits_charged, 0)
    WHERE NEW.quota_month IS NOT NULL
    ON CONFLICT (guild_key, user_id, period) DO UPDATE SET jobs = jobs + excluded.jobs, credits = credits + excluded.credits;
    INSERT INTO usage_counters (guild_key, user_id, period, jobs, credits)
    SELECT IFNULL(NEW.guild_id, 0), 0, 'd' || NEW.quota_day, (NEW.quota_state IS 'held'), (NEW.quota_state IS 'held') * IFNULL(NEW.credits_charged, 0)
    WHERE NEW.quota_day IS NOT NULL
    ON CONFLICT (guild_key, user_id, period) DO UPDATE SET jobs = jobs + excluded.jobs, credits = credits + excluded.credits;
    INSERT INTO usage_counters (guild_key, user_id, period, jobs, credits)
    SELECT IFNULL(NEW.guild_id, 0), 0, 'm' || NEW.quota_month, (NEW.quota_state IS 'held'), (NEW.quota_state IS 'held') * IFNULL(NEW.credits_charged, 0)
    WHERE NEW.quota_month IS NOT NULL
    ON CONFLICT (guild_key, user_id, period) DO UPDATE SET jobs = jobs + excluded.jobs, credits = credits + excluded.credits;
END;

-- Totals for the rows written before this migration.
INSERT INTO usage_counters (guild_key, user_id, period, jobs, credits)
SELECT IFNULL(guild_id, 0), user_id, 'd' || quota_day, COUNT(*), IFNULL(SUM(credits_charged), 0)
FROM tasks WHERE quota_state = 'held' AND quota_day IS NOT NULL AND member_reset = 0 GROUP BY 1, 2, 3
ON CONFLICT (guild_key, user_id, period) DO UPDATE SET jobs = jobs + excluded.jobs, credits = credits + excluded.credits;

INSERT INTO usage_counters (guild_key, user_id, period, jobs, credits)
SELECT IFNULL(guild_id, 0), user_id, 'm' || quota_month, COUNT(*), IFNULL(SUM(credits_charged), 0)
FROM tasks WHERE quota_state = 'held' AND quota_month IS NOT NULL AND member_reset = 0 GROUP BY 1, 2, 3
ON CONFLICT (guild_key, user_id, period) DO UPDATE SET jobs = jobs + excluded.jobs, credits = credits + excluded.credits;

INSERT INTO usage_counters (guild_key, user_id, period, jobs, credits)
SELECT IFNULL(guild_id, 0), 0, 'd' || quota_day, COUNT(*), IFNULL(SUM(credits_charged), 0)
FROM tasks WHERE quota_state = 'held' AND quota_day IS NOT NULL GROUP BY 1, 2, 3
ON CONFLICT (guild_key, user_id, period) DO UPDATE SET jobs = jobs + excluded.jobs, credits = credits + excluded.credits;

INSERT INTO usage_counters (guild_key, user_id, period, jobs, credits)
SELECT IFNULL(guild_id, 0), 0, 'm' || quota_month, COUNT(*), IFNULL(SUM(credits_charged), 0)
FROM tasks WHERE quota_state = 'held' AND quota_month IS NOT NULL GROUP BY 1, 2, 3
ON CONFLICT (guild_key, user_id, period) DO UPDATE SET jobs = jobs + excluded.jobs, credits = credits + excluded.credits;
