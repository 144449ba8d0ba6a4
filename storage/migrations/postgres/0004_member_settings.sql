-- What a member chose for themself, whatever the server: for now whether results also come by DM.
CREATE TABLE member_settings (
    user_id     BIGINT PRIMARY KEY,
    result_dms  INTEGER NOT NULL DEFAULT 1      -- 0: the member turned result DMs off (/dms)
);
