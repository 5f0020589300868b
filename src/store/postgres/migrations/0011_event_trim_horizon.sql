-- ssod schema, migration 11: how far the retention has trimmed the audit log.
--
-- The sweep deletes events older than the retention, in batches, in no particular id order.
-- A watch that is behind could step over a trimmed event without noticing (its next page
-- simply starts later). The trim raises this one row to the newest id it deleted, in the same
-- statement, so a watch whose cursor is below it knows events after its cursor may be gone
-- and ends with CURSOR_EXPIRED instead (sql::events::FEED), as a cursor older than the
-- retention must.
CREATE TABLE event_trim_horizon (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    xact     bigint NOT NULL,
    sequence bigint NOT NULL
);

-- The events trimmed before this migration are unknown: nothing is taken as trimmed yet.
INSERT INTO event_trim_horizon (xact, sequence) VALUES (0, 0);
