-- ssod schema, migration 9: second factors and password history.
--
-- users.totp_enabled  whether logins need a TOTP code. On users, not derived from the secret's
--                     row, so the auth cache sees it change through users' own NOTIFY trigger
--                     (migration 7) and every read of a user returns it with no join.
-- user_totp           one row per user with a TOTP secret: enabled when the user's
--                     totp_enabled is set, a pending enrolment otherwise. The secret is
--                     sealed with the key ring (key_id, nonce || ciphertext), never stored in
--                     the clear. last_step is the time step of the last accepted code: a code
--                     is accepted only for a later step (an UPDATE ... WHERE last_step < $step,
--                     so of two concurrent logins with one code only one passes).
-- totp_recovery_codes the SHA-256 of each unused recovery code: the codes are 80-bit random
--                     strings, so a fast hash cannot be reversed, and a use is one DELETE by
--                     primary key.
-- password_history    replaced Argon2id hashes, at most as many per user as the password
--                     policy keeps (trimmed in the write that replaces a password); seq
--                     orders them newest first.
--
-- All three go with their user (ON DELETE CASCADE).

ALTER TABLE users ADD COLUMN totp_enabled boolean NOT NULL DEFAULT false;

CREATE TABLE user_totp (
    user_id    uuid  PRIMARY KEY
        CONSTRAINT user_totp_user_id_fkey REFERENCES users (id) ON DELETE CASCADE,
    key_id     text  NOT NULL,
    secret     bytea NOT NULL,
    last_step  bigint
);

CREATE TABLE totp_recovery_codes (
    user_id    uuid  NOT NULL
        CONSTRAINT totp_recovery_codes_user_id_fkey REFERENCES users (id) ON DELETE CASCADE,
    code_hash  bytea NOT NULL
        CONSTRAINT totp_recovery_codes_code_hash_check CHECK (length(code_hash) = 32),
    CONSTRAINT totp_recovery_codes_pkey PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE password_history (
    seq           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       uuid        NOT NULL
        CONSTRAINT password_history_user_id_fkey REFERENCES users (id) ON DELETE CASCADE,
    password_hash text        NOT NULL,
    replaced_at   timestamptz NOT NULL
);

CREATE INDEX password_history_user_id_seq_idx ON password_history (user_id, seq DESC);
