-- Evolink callbacks: the secret part of each task's callback URL. Callbacks carry no signature, so a
-- callback is only a hint, and only one that names a task together with its token is taken.
ALTER TABLE tasks ADD COLUMN callback_token TEXT;
