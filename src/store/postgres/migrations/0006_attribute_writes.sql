-- ssod schema, migration 6: an attribute write in one round trip.
--
-- SetAttribute(s) was a transaction of four round trips: BEGIN, lock the owner row, the
-- upsert that counted the owner's other live attributes, COMMIT. One plain statement cannot
-- do the same: under READ COMMITTED its snapshot is taken before it waits for the owner's
-- lock, so its count would miss the rows that the writers it waited for had committed, and
-- concurrent writers could pass the per-owner limits together. A PL/pgSQL function called by
-- one statement can: each statement of a VOLATILE function takes a fresh snapshot, so the
-- count after the lock sees every row committed before it; the call is its statement's
-- transaction, so it commits once; and it writes nothing when a limit would be passed.
--
-- ssod_set_session_attributes / ssod_set_user_attributes
--   (owner_key, written_at, item_names, item_values, item_key_ids, item_expiries,
--    max_live, max_bytes)
-- lock the owner row FOR NO KEY UPDATE (a session only while it is live at written_at),
-- which conflicts with itself, so writers of one owner queue, but not with the KEY SHARE
-- lock that inserting a referencing row takes. Then they work out what the owner would hold:
-- its live attributes not named in the write plus the items, and the bytes of their values
-- (octet_length of the stored value: JSON text or ciphertext). Item names are distinct. Every
-- row returned carries those two figures (owner_live, owner_bytes):
-- - no row: the owner does not exist (or the session has expired);
-- - one row with null attribute columns: a limit would be passed and nothing was written
--   (or there were no items);
-- - otherwise one row per item, as written. Expired, unswept rows are replaced like live
--   ones, and take the write's time as their creation.
--
-- The two functions differ only in their table, owner column and owner row, so one template
-- makes both.

DO $migration$
DECLARE
    kind record;
BEGIN
    FOR kind IN
        SELECT * FROM (VALUES
            ('session_attributes', 'session_id', 'sessions', 'AND o.expires_at > written_at'),
            ('user_attributes', 'user_id', 'users', '')
        ) AS kinds (attribute_table, owner_column, owner_table, owner_is_live)
    LOOP
        EXECUTE format($template$
CREATE FUNCTION ssod_set_%1$s(
    owner_key uuid, written_at timestamptz, item_names text[], item_values bytea[],
    item_key_ids text[], item_expiries timestamptz[], max_live bigint, max_bytes bigint)
RETURNS TABLE (owner_live bigint, owner_bytes bigint, name text, value bytea, key_id text,
    created_at timestamptz, modified_at timestamptz, expires_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $function$
#variable_conflict use_column
DECLARE
    live_after bigint;
    bytes_after bigint;
BEGIN
    PERFORM 1 FROM %3$I o WHERE o.id = owner_key %4$s FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- A new snapshot, taken after the lock: every committed write of this owner counts.
    SELECT count(*) + cardinality(item_names),
           coalesce(sum(octet_length(a.value)), 0)
             + (SELECT coalesce(sum(octet_length(v)), 0) FROM unnest(item_values) AS v)
      INTO live_after, bytes_after
      FROM %1$I a
     WHERE a.%2$I = owner_key AND (a.expires_at IS NULL OR a.expires_at > written_at)
       AND a.name <> ALL (item_names);
    IF live_after <= max_live AND bytes_after <= max_bytes THEN
        RETURN QUERY
        INSERT INTO %1$I AS a (%2$I, name, value, key_id, created_at, modified_at, expires_at)
        SELECT owner_key, i.name, i.value, i.key_id, written_at, written_at, i.expires_at
          FROM unnest(item_names, item_values, item_key_ids, item_expiries)
            AS i (name, value, key_id, expires_at)
        ON CONFLICT (%2$I, name) DO UPDATE SET
            value = excluded.value, key_id = excluded.key_id,
            expires_at = excluded.expires_at,
            created_at = CASE WHEN a.expires_at IS NOT NULL
                AND a.expires_at <= excluded.modified_at
                THEN excluded.created_at ELSE a.created_at END,
            modified_at = excluded.modified_at
        RETURNING live_after, bytes_after, a.name, a.value, a.key_id, a.created_at,
            a.modified_at, a.expires_at;
        IF FOUND THEN
            RETURN;
        END IF;
    END IF;
    RETURN QUERY SELECT live_after, bytes_after, NULL::text, NULL::bytea, NULL::text,
        NULL::timestamptz, NULL::timestamptz, NULL::timestamptz;
END
$function$
$template$, kind.attribute_table, kind.owner_column, kind.owner_table,
            kind.owner_is_live);
    END LOOP;
END
$migration$;
