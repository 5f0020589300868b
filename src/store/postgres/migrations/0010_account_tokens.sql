-- ssod schema, migration 10: sign-up confirmation and password reset.
--
-- users.is_confirmed  false only between SignUp and ConfirmSignUp; every user that existed
--                     before (created by a super-user or at start-up) is confirmed.
--
-- account_tokens      single-use tokens, stored only as the SHA-256 of the token (as USTs
--                     are). Read by hash (primary key); at most one per user and purpose
--                     (unique (user_id, purpose)), so issuing a token is an upsert that
--                     replaces the older one atomically, however many requests race; the
--                     sweep deletes by expires_at. A reset token records a fingerprint (the
--                     SHA-256) of the password hash it was issued against and redeems only
--                     while the user's hash still has it: any password change, by whatever
--                     path, invalidates it without touching this table. Tokens go with their
--                     user (ON DELETE CASCADE).

ALTER TABLE users ADD COLUMN is_confirmed boolean NOT NULL DEFAULT true;

CREATE TABLE account_tokens (
    token_hash           bytea       PRIMARY KEY
        CONSTRAINT account_tokens_token_hash_check CHECK (length(token_hash) = 32),
    user_id              uuid        NOT NULL
        CONSTRAINT account_tokens_user_id_fkey REFERENCES users (id) ON DELETE CASCADE,
    purpose              text        NOT NULL
        CONSTRAINT account_tokens_purpose_check
        CHECK (purpose IN ('confirm_sign_up', 'reset_password')),
    password_fingerprint bytea,
    created_at           timestamptz NOT NULL,
    expires_at           timestamptz NOT NULL,
    CONSTRAINT account_tokens_user_purpose_key UNIQUE (user_id, purpose),
    CONSTRAINT account_tokens_fingerprint_check
        CHECK ((purpose = 'reset_password') = (password_fingerprint IS NOT NULL))
);

CREATE INDEX account_tokens_expires_at_idx ON account_tokens (expires_at);
