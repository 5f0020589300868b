-- ssod schema, migration 4: usernames are unique and looked up by a key computed in Rust.
--
-- Until now the unique index was on lower(username): lower() follows the database's ctype
-- (under "C" it folds ASCII only) and is not Unicode case folding (Straße stays apart from
-- STRASSE), so the PostgreSQL store disagreed with the in-memory one. The key is now
-- Username::key (NFKC of the full case fold), written by ssod on insert and compared as
-- bytes ("C" collation, so listings page by code point like the memory store and a prefix
-- LIKE is a range scan of the unique index).
--
-- Backfill: lower(normalize(username, NFKC)) is the closest SQL equivalent. Stored
-- usernames are already NFKC (ssod normalises them on creation), and they were unique under
-- lower(), so the backfill cannot collide. It differs from the Rust key only for names whose
-- full case fold differs from lower() (ß, final sigma, ...) or, under a "C" ctype, for
-- non-ASCII capitals; ssod rewrites exactly those keys in Rust in this migration's own
-- transaction (see migrations.rs), so no existing user becomes unreachable.

ALTER TABLE users ADD COLUMN username_key text COLLATE "C";

UPDATE users SET username_key = lower(normalize(username, NFKC));

ALTER TABLE users ALTER COLUMN username_key SET NOT NULL;

DROP INDEX users_username_key;

ALTER TABLE users ADD CONSTRAINT users_username_key_unique UNIQUE (username_key);
