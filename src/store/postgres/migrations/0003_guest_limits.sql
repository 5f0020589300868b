-- ssod schema, migration 3: a count of guest sessions, so that CreateSession can refuse the
-- guest beyond SSOD_MAX_GUEST_SESSIONS without counting a million rows.
--
-- guest_sessions_count holds one row: how many guest sessions (user_id IS NULL) the sessions
-- table holds, expired ones included until the sweep deletes them. Triggers keep it, so every
-- way a row comes or goes is counted: the store's inserts and deletes, the sweep, bulk
-- revocation, a cascade, a hand-written DELETE or TRUNCATE. They are statement triggers over
-- transition tables (one update per statement, not per row) and touch the count only when
-- the statement inserted or deleted a guest, so user sessions never wait for it.
--
-- A guest insert locks the row (SELECT ... FOR UPDATE, which re-reads the count after any
-- wait) and inserts only while it is below the limit; the insert's trigger raises it in the
-- same transaction. So the limit holds across replicas and concurrent calls. The row is the
-- last lock every transaction that touches it takes (guest rotation deletes the old session
-- before it inserts), so it cannot take part in a deadlock.

-- Counting and creating the triggers must see the same rows.
LOCK TABLE sessions IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE guest_sessions_count (
    singleton boolean PRIMARY KEY DEFAULT true
        CONSTRAINT guest_sessions_count_singleton CHECK (singleton),
    sessions  bigint  NOT NULL
        CONSTRAINT guest_sessions_count_sessions_check CHECK (sessions >= 0)
);

INSERT INTO guest_sessions_count (sessions)
SELECT count(*) FROM sessions WHERE user_id IS NULL;

CREATE FUNCTION ssod_guest_sessions_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    added bigint;
BEGIN
    SELECT count(*) INTO added FROM inserted WHERE user_id IS NULL;
    IF added > 0 THEN
        UPDATE guest_sessions_count SET sessions = sessions + added;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION ssod_guest_sessions_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    removed bigint;
BEGIN
    SELECT count(*) INTO removed FROM deleted WHERE user_id IS NULL;
    IF removed > 0 THEN
        UPDATE guest_sessions_count SET sessions = sessions - removed;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION ssod_guest_sessions_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE guest_sessions_count SET sessions = 0;
    RETURN NULL;
END
$$;

-- A session never changes its user: no UPDATE trigger is needed.
CREATE TRIGGER sessions_guests_inserted AFTER INSERT ON sessions
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION ssod_guest_sessions_inserted();

CREATE TRIGGER sessions_guests_deleted AFTER DELETE ON sessions
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION ssod_guest_sessions_deleted();

CREATE TRIGGER sessions_guests_truncated AFTER TRUNCATE ON sessions
    FOR EACH STATEMENT EXECUTE FUNCTION ssod_guest_sessions_truncated();
