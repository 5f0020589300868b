-- ssod schema, migration 1: users, sessions and their attributes.
--
-- Every table is shaped by how the service reads it. Expiry is always decided by the
-- caller's clock (`$now` parameters), never by SQL now(), and expired rows stay until the
-- sweep deletes them in batches.
--
-- users        by id (primary key); by username case-insensitively (unique index on
--              lower(username) in the "C" collation, so listing pages by code point exactly
--              like the in-memory store, and a prefix LIKE is a range scan of it).
-- sessions     by token hash (unique: the hot path, one probe joined to users by primary
--              key); by id; a user's sessions paged by id and the cascade from users
--              ((user_id, id)); the sweep (expires_at).
-- *_attributes one table per owner kind, so each has a real foreign key with ON DELETE
--              CASCADE and a plain primary key (owner, name) that serves the upsert, reads by
--              name and listing in name order ("C" collation: byte order, like the memory
--              store). A value is plain JSON text as UTF-8 bytes when key_id is null, else
--              nonce || ciphertext sealed with that key. A partial index on expires_at feeds
--              the sweep; attributes that never expire are not in it.

CREATE TABLE users (
    id                   uuid        PRIMARY KEY,
    username             text        NOT NULL,
    email                text        NOT NULL DEFAULT '',
    display_name         text        NOT NULL DEFAULT '',
    first_name           text        NOT NULL DEFAULT '',
    middle_name          text        NOT NULL DEFAULT '',
    last_name            text        NOT NULL DEFAULT '',
    is_super_user        boolean     NOT NULL DEFAULT false,
    is_locked            boolean     NOT NULL DEFAULT false,
    approval_status      text        NOT NULL
        CONSTRAINT users_approval_status_check
        CHECK (approval_status IN ('approved', 'rejected', 'pending')),
    password_hash        text        NOT NULL,
    password_must_change boolean     NOT NULL DEFAULT false,
    password_expiry      timestamptz,
    created_at           timestamptz NOT NULL,
    last_login_at        timestamptz
);

CREATE UNIQUE INDEX users_username_key ON users ((lower(username)) COLLATE "C");

CREATE TABLE sessions (
    id              uuid        PRIMARY KEY,
    token_hash      bytea       NOT NULL
        CONSTRAINT sessions_token_hash_key UNIQUE
        CONSTRAINT sessions_token_hash_check CHECK (length(token_hash) = 32),
    user_id         uuid
        CONSTRAINT sessions_user_id_fkey REFERENCES users (id) ON DELETE CASCADE,
    current_app     text        NOT NULL,
    remote_addr     text        NOT NULL,
    user_agent      text        NOT NULL,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    last_renewed_at timestamptz NOT NULL
);

CREATE INDEX sessions_user_id_id_idx ON sessions (user_id, id);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

CREATE TABLE session_attributes (
    session_id  uuid        NOT NULL
        CONSTRAINT session_attributes_session_id_fkey
        REFERENCES sessions (id) ON DELETE CASCADE,
    name        text        COLLATE "C" NOT NULL,
    value       bytea       NOT NULL,
    key_id      text,
    created_at  timestamptz NOT NULL,
    modified_at timestamptz NOT NULL,
    expires_at  timestamptz,
    CONSTRAINT session_attributes_pkey PRIMARY KEY (session_id, name)
);

CREATE INDEX session_attributes_expires_at_idx
    ON session_attributes (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE user_attributes (
    user_id     uuid        NOT NULL
        CONSTRAINT user_attributes_user_id_fkey
        REFERENCES users (id) ON DELETE CASCADE,
    name        text        COLLATE "C" NOT NULL,
    value       bytea       NOT NULL,
    key_id      text,
    created_at  timestamptz NOT NULL,
    modified_at timestamptz NOT NULL,
    expires_at  timestamptz,
    CONSTRAINT user_attributes_pkey PRIMARY KEY (user_id, name)
);

CREATE INDEX user_attributes_expires_at_idx
    ON user_attributes (expires_at) WHERE expires_at IS NOT NULL;
