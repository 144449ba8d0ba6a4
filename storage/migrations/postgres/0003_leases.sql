-- Leases: the process working on a task, and until when (a process that dies lets its tasks go when the lease
-- runs out, and another takes them over).
ALTER TABLE tasks ADD COLUMN lease_owner TEXT;
ALTER TABLE tasks ADD COLUMN lease_until DOUBLE PRECISION;

-- "At most once per interval, across processes" (operator alerts): the last time each was done.
CREATE TABLE throttles (
    name        TEXT PRIMARY KEY,
    last_at     DOUBLE PRECISION NOT NULL
);

-- reserve_task() now writes the submitting process's lease on the new row, and when the row falls due if that
-- process dies mid-POST (then whoever claims it tells the member; the POST is never repeated).
DROP FUNCTION reserve_task(BIGINT, BIGINT, BIGINT, TEXT, TEXT, TEXT, INTEGER, DOUBLE PRECISION, TEXT, TEXT, TEXT,
                           BIGINT, BIGINT, BIGINT, BIGINT, BIGINT);
CREATE FUNCTION reserve_task(
    p_guild BIGINT, p_channel BIGINT, p_user BIGINT, p_source_kind TEXT, p_source_url TEXT, p_source_label TEXT,
    p_scale INTEGER, p_created_at DOUBLE PRECISION, p_callback_token TEXT, p_day TEXT, p_month TEXT,
    p_user_daily_jobs BIGINT, p_user_concurrent_jobs BIGINT, p_user_monthly_credits BIGINT,
    p_server_daily_jobs BIGINT, p_server_monthly_credits BIGINT,
    p_lease_owner TEXT, p_lease_until DOUBLE PRECISION, p_next_poll_at DOUBLE PRECISION)
RETURNS SETOF tasks LANGUAGE plpgsql AS $$
DECLARE
    g BIGINT := COALESCE(p_guild, 0);
    running BIGINT;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(
        CASE WHEN p_guild IS NULL THEN 'reserve:dm:' || p_user ELSE 'reserve:guild:' || p_guild END, 0));
    IF EXISTS (SELECT 1 FROM blocked_members WHERE guild_id = p_guild AND user_id = p_user) THEN
        RETURN;
    END IF;
    IF p_user_concurrent_jobs IS NOT NULL THEN
        -- Two forms, so each can use tasks_member_status (IS NOT DISTINCT FROM could not).
        IF p_guild IS NULL THEN
            SELECT COUNT(*) INTO running FROM tasks WHERE guild_id IS NULL AND user_id = p_user
                AND status IN ('submitting', 'pending', 'processing');
        ELSE
            SELECT COUNT(*) INTO running FROM tasks WHERE guild_id = p_guild AND user_id = p_user
                AND status IN ('submitting', 'pending', 'processing');
        END IF;
        IF running >= p_user_concurrent_jobs THEN
            RETURN;
        END IF;
    END IF;
    IF p_user_daily_jobs IS NOT NULL AND COALESCE((SELECT jobs FROM usage_counters WHERE guild_key = g
            AND user_id = p_user AND period = 'd' || p_day), 0) >= p_user_daily_jobs THEN
        RETURN;
    END IF;
    IF p_user_monthly_credits IS NOT NULL AND COALESCE((SELECT credits FROM usage_counters WHERE guild_key = g
            AND user_id = p_user AND period = 'm' || p_month), 0) >= p_user_monthly_credits THEN
        RETURN;
    END IF;
    IF p_server_daily_jobs IS NOT NULL AND COALESCE((SELECT jobs FROM usage_counters WHERE guild_key = g
            AND user_id = 0 AND period = 'd' || p_day), 0) >= p_server_daily_jobs THEN
        RETURN;
    END IF;
    IF p_server_monthly_credits IS NOT NULL AND COALESCE((SELECT credits FROM usage_counters WHERE guild_key = g
            AND user_id = 0 AND period = 'm' || p_month), 0) >= p_server_monthly_credits THEN
        RETURN;
    END IF;
    RETURN QUERY INSERT INTO tasks (guild_id, channel_id, user_id, source_kind, source_url, source_label, scale,
                                    created_at, callback_token, lease_owner, lease_until, next_poll_at, status,
                                    quota_day, quota_month, quota_state)
        VALUES (p_guild, p_channel, p_user, p_source_kind, p_source_url, p_source_label, p_scale, p_created_at,
                p_callback_token, p_lease_owner, p_lease_until, p_next_poll_at, 'submitting', p_day, p_month, 'held')
        RETURNING *;
END $$;
