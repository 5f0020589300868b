-- ssod schema, migration 5: failed-login counters are forgotten, so they stay bounded.
--
-- A username's failures and lockout history are forgotten once its last failure is
-- SSOD_LOGIN_FAILURE_RESET old and no lockout of it is running (a claim then starts from
-- zero, and the sweep deletes the row); an address's row once its window and any lockout
-- have passed. Without this, a spray of made-up usernames would grow the table for good.
--
-- last_failure_at  the caller's clock at the username's last counted failure: the reset
--                  time counts from it.
--
-- Rows counted before this migration have no recorded last failure: they take the time of
-- the migration (the end of a running lockout, if later), which keeps them one reset time at
-- most longer than needed. This backfill is the only reading of the database's clock.

ALTER TABLE login_failures_by_user ADD COLUMN last_failure_at timestamptz;

UPDATE login_failures_by_user
SET last_failure_at = greatest(locked_until, now());

ALTER TABLE login_failures_by_user ALTER COLUMN last_failure_at SET NOT NULL;

-- The sweep looks stale rows up by these, batch by batch.
CREATE INDEX login_failures_by_user_last_failure_at
    ON login_failures_by_user (last_failure_at);
CREATE INDEX login_failures_by_address_window_start
    ON login_failures_by_address (window_start);
