-- ssod schema, migration 7: announce every ended session and every changed user on the
-- NOTIFY channel ssod_auth, so each replica's cache of resolved USTs (src/store/cache.rs)
-- drops what it must not serve any more.
--
-- Triggers rather than the store's calls: sessions also end by cascades (a deleted user),
-- by bulk revocation and by statements the service never sees, and a trigger catches them
-- all. They are statement triggers over transition tables: one notification per statement,
-- sent by PostgreSQL at commit (never for a rollback), in commit order.
--
-- Payloads: 's:<id>,<id>,…' (sessions ended), 'u:<id>,…' (users changed or deleted: every
-- session of theirs), or '*' (drop everything) when the ids would pass ~7000 bytes
-- (PostgreSQL refuses payloads of 8000). A UUID takes 36 bytes and a comma 1: 189 ids fit.
--
-- Not announced: renewals (UPDATE of sessions, which ends nothing) and the expiry sweep,
-- which deletes only sessions a cache already refuses by their expiry. The sweep's
-- statement says so itself: it sets ssod.sweeping for its own transaction
-- (sql::sessions::PURGE_SESSIONS), and the trigger stays silent for it.

CREATE FUNCTION ssod_notify_auth(kind text, ids uuid[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF cardinality(ids) = 0 THEN
        RETURN;
    END IF;
    IF cardinality(ids) > 189 THEN
        PERFORM pg_notify('ssod_auth', '*');
    ELSE
        PERFORM pg_notify('ssod_auth', kind || ':' || array_to_string(ids, ','));
    END IF;
END
$$;

CREATE FUNCTION ssod_auth_sessions_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('ssod.sweeping', true) = 'on' THEN
        RETURN NULL;
    END IF;
    -- One id past the limit is enough to know it is passed.
    PERFORM ssod_notify_auth('s', ARRAY(SELECT id FROM ended LIMIT 190));
    RETURN NULL;
END
$$;

-- Any change of a user's row counts, whichever column: the cache holds the whole user.
CREATE FUNCTION ssod_auth_users_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM ssod_notify_auth('u', ARRAY(SELECT id FROM old_users LIMIT 190));
    ELSE
        PERFORM ssod_notify_auth('u', ARRAY(
            SELECT o.id FROM old_users o JOIN new_users n ON n.id = o.id
            WHERE o IS DISTINCT FROM n LIMIT 190));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER sessions_ended_notify_auth AFTER DELETE ON sessions
    REFERENCING OLD TABLE AS ended
    FOR EACH STATEMENT EXECUTE FUNCTION ssod_auth_sessions_ended();

-- A TRUNCATE has no transition table: everything goes.
CREATE FUNCTION ssod_auth_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ssod_auth', '*');
    RETURN NULL;
END
$$;

CREATE TRIGGER sessions_truncated_notify_auth AFTER TRUNCATE ON sessions
    FOR EACH STATEMENT EXECUTE FUNCTION ssod_auth_truncated();

-- A trigger with transition tables has one event, so UPDATE and DELETE get one each.
CREATE TRIGGER users_changed_notify_auth AFTER UPDATE ON users
    REFERENCING OLD TABLE AS old_users NEW TABLE AS new_users
    FOR EACH STATEMENT EXECUTE FUNCTION ssod_auth_users_changed();

CREATE TRIGGER users_deleted_notify_auth AFTER DELETE ON users
    REFERENCING OLD TABLE AS old_users
    FOR EACH STATEMENT EXECUTE FUNCTION ssod_auth_users_changed();

CREATE TRIGGER users_truncated_notify_auth AFTER TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION ssod_auth_truncated();
