-- ssod schema, migration 2: failed-login counters for brute-force throttling.
--
-- Tables of their own rather than columns of users: attempts on usernames that do not exist
-- are counted exactly like the others, so refusals reveal nothing about which accounts exist,
-- and every replica shares the counts, which survive restarts. Each claim is one upsert on
-- one row by its primary key (the row lock serialises concurrent claims), with the
-- window and lockout arithmetic in SQL on the caller's clock.
--
-- login_failures_by_user     by the username key (NFKC + case fold, as the service computes
--                            it): consecutive failures since the last lockout, lockouts so
--                            far (each doubles the next), the end of the current lockout.
-- login_failures_by_address  by remote_addr as the caller reported it: failures in the
--                            window that started at window_start, the end of a lockout.

CREATE TABLE login_failures_by_user (
    username_key text        PRIMARY KEY,
    failures     integer     NOT NULL,
    lockouts     integer     NOT NULL,
    locked_until timestamptz
);

CREATE TABLE login_failures_by_address (
    remote_addr  text        PRIMARY KEY,
    failures     integer     NOT NULL,
    window_start timestamptz NOT NULL,
    locked_until timestamptz
);
