-- ssod schema, migration 8: the audit outbox. Every write inserts its events here in its own
-- transaction (a CTE of the write's statement, or a statement of its transaction), so an
-- event exists exactly when its change committed.
--
-- Order: an event's id is the writing transaction's id (its xid8, which never wraps, as
-- bigint) and then a sequence number. Transactions commit out of id order, so a watcher reads only events of
-- transactions below pg_snapshot_xmin(pg_current_snapshot()): every transaction there has
-- ended, so no event with a smaller id can appear after the watcher has passed it
-- (sql::events::FEED).
CREATE SEQUENCE event_sequence AS bigint;

CREATE TABLE events (
    xact             bigint      NOT NULL DEFAULT pg_current_xact_id()::text::bigint,
    sequence         bigint      NOT NULL DEFAULT nextval('event_sequence'),
    time             timestamptz NOT NULL,
    type             text        NOT NULL,
    cid              text        NOT NULL,
    actor_user_id    uuid,
    actor_session_id uuid,
    user_id          uuid,
    session_id       uuid,
    current_app      text        NOT NULL,
    remote_addr      text        NOT NULL,
    user_agent       text        NOT NULL,
    reason           text        NOT NULL,
    details          jsonb       NOT NULL,
    PRIMARY KEY (xact, sequence)
);

-- ListEvents filters by user, session and time; retention trims by time.
CREATE INDEX events_user ON events (user_id, xact, sequence) WHERE user_id IS NOT NULL;
CREATE INDEX events_session ON events (session_id, xact, sequence) WHERE session_id IS NOT NULL;
CREATE INDEX events_time ON events (time);

-- Wakes watchers on every replica: one notification per transaction that wrote events
-- (PostgreSQL folds equal payloads of one transaction), sent at commit. A statement whose
-- event CTE inserted nothing (a login claim that locked nobody out) stays silent.
CREATE FUNCTION ssod_notify_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM inserted) THEN
        PERFORM pg_notify('ssod_events', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_notify AFTER INSERT ON events
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION ssod_notify_events();
