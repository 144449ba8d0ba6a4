-- Languages: the member's Discord locale (their card, replies and DMs) and the server's preferred locale (the
-- public channel post), kept on the task so a result told after a restart is told in the same language.
ALTER TABLE tasks ADD COLUMN locale TEXT;
ALTER TABLE tasks ADD COLUMN guild_locale TEXT;
