-- Languages: the member's Discord locale (their card, replies and DMs) and the server's preferred locale (the
-- public channel post), kept on the task so a result told after a restart is told in the same language.
ALTER TABLE tasks ADD COLUMN locale TEXT;
ALTER TABLE tasks ADD COLUMN guild_locale TEXT;

-- reserve_task() now takes the new row's values as one JSON object (status, quota day, month and state included).
DROP FUNCTION reserve_task(BIGINT, BIGINT, BIGINT, TEXT, TEXT, TEXT, INTEGER, DOUBLE PRECISION, TEXT, TEXT, TEXT,
                           BIGINT, BIGINT, BIGINT, BIGINT, BIGINT, TEXT, DOUBLE PRECISION, DOUBLE PRECISION);
CREATE FUNCTION reserve_task(
    p_row JSONB, p_guild BIGINT, p_user BIGINT, p_day TEXT, p_month TEXT,
    p_user_daily_jobs BIGINT, p_user_concurrent_jobs BIGINT, p_user_monthly_credits BIGINT,
    p_server_daily_jobs BIGINT, p_server_monthly_credits BIGINT)
RETURNS SETOF tasks LANGUAGE plpgsql AS $$
DECLARE
    g BIGINT := COALESCE(p_guild, 0);
    running BIGINT;
    columns TEXT;
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
    -- The row's own columns come as JSON, so a column added to tasks later needs no new version of this function.
    SELECT string_agg(quote_ident(key), ', ') INTO columns FROM jsonb_object_keys(p_row) AS key;
    RETURN QUERY EXECUTE format('INSERT INTO tasks (%1$s) SELECT %1$s FROM jsonb_populate_record(NULL::tasks, $1) '
                                'RETURNING *', columns) USING p_row;
END $$;
