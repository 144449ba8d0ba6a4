-- The quota check and the `submitting` row in one call (one round trip instead of BEGIN, lock, insert, COMMIT):
-- the reservations of one server (of one member, in DMs) take turns under a transaction advisory lock, and in a
-- PL/pgSQL function each statement after the lock sees what the reservations before it committed. A limit
-- given as NULL is unlimited. Returns the new row, or nothing when a limit or a block refuses the job.
CREATE FUNCTION reserve_task(
    p_guild BIGINT, p_channel BIGINT, p_user BIGINT, p_source_kind TEXT, p_source_url TEXT, p_source_label TEXT,
    p_scale INTEGER, p_created_at DOUBLE PRECISION, p_callback_token TEXT, p_day TEXT, p_month TEXT,
    p_user_daily_jobs BIGINT, p_user_concurrent_jobs BIGINT, p_user_monthly_credits BIGINT,
    p_server_daily_jobs BIGINT, p_server_monthly_credits BIGINT)
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
                                    created_at, callback_token, status, quota_day, quota_month, quota_state)
        VALUES (p_guild, p_channel, p_user, p_source_kind, p_source_url, p_source_label, p_scale, p_created_at,
                p_callback_token, 'submitting', p_day, p_month, 'held')
        RETURNING *;
END $$;
