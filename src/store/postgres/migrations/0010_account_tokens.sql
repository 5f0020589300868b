-- ssod schema, migration 10: sign-up confirmation and password reset.
--
-- users.is_confirmed  false only between SignUp and ConfirmSignUp; every user that existed
--                     before (created by a super-user or at start-up) is confirmed.
--
-- account_tokens      single-use tokens, stored only as the SHA-256 of the token (as USTs
--                     are). Read by hash (primary key). A token belongs to a username key
--                     and is bound to a password: password_fingerprint is the SHA-256 of the
--                     user's password hash when the token was issued, and the token redeems
--                     only while the user of that key still has that hash. So any password
--                     change, by whatever path, invalidates it, and so does deleting the
--                     user (a later user of the same name has another, salted, hash). At
--                     most one token per username key and purpose (unique (user_key,
--                     purpose)): issuing is an upsert that replaces the older token
--                     atomically, however many requests race. A reset request for a name no
--                     user may reset writes its row all the same, with no fingerprint (it
--                     never redeems): known and unknown names cost the database the same
--                     write. The sweep deletes by expires_at.

ALTER TABLE users ADD COLUMN is_confirmed boolean NOT NULL DEFAULT true;

CREATE TABLE account_tokens (
    token_hash           bytea       PRIMARY KEY
        CONSTRAINT account_tokens_token_hash_check CHECK (length(token_hash) = 32),
    user_key             text        COLLATE "C" NOT NULL,
    purpose              text        NOT NULL
        CONSTRAINT account_tokens_purpose_check
        CHECK (purpose IN ('confirm_sign_up', 'reset_password')),
    password_fingerprint bytea,
    created_at           timestamptz NOT NULL,
    expires_at           timestamptz NOT NULL,
    CONSTRAINT account_tokens_user_purpose_key UNIQUE (user_key, purpose)
);

CREATE INDEX account_tokens_expires_at_idx ON account_tokens (expires_at);
