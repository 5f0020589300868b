-- Rows and on-disk sizes per table and index, and per live session (run by measure.sh).
\set ON_ERROR_STOP on
\pset footer off
\echo '== tables: rows, heap, indexes, total (bytes; total includes TOAST and the free-space and visibility maps) =='
SELECT c.relname AS "table",
       c.reltuples::bigint AS rows,
       pg_relation_size(c.oid) AS heap,
       pg_indexes_size(c.oid) AS indexes,
       pg_total_relation_size(c.oid) AS total,
       round(pg_relation_size(c.oid)::numeric / nullif(greatest(c.reltuples, 0), 0)::numeric, 1) AS heap_per_row,
       round(pg_indexes_size(c.oid)::numeric / nullif(greatest(c.reltuples, 0), 0)::numeric, 1) AS indexes_per_row
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'r'
ORDER BY pg_total_relation_size(c.oid) DESC;

\echo '== indexes (bytes; per row of their table) =='
SELECT i.indrelid::regclass AS "table", c.relname AS index, pg_relation_size(c.oid) AS bytes,
       round(pg_relation_size(c.oid)::numeric / nullif(greatest(t.reltuples, 0), 0)::numeric, 1) AS per_row,
       (pgstatindex(c.oid::regclass)).tree_level AS levels,
       (pgstatindex(c.oid::regclass)).avg_leaf_density AS leaf_fill_pct
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = 'public'
ORDER BY pg_relation_size(c.oid) DESC;

\echo '== per live session: every byte of sessions and session_attributes, plus users and user_attributes shared out =='
SELECT count(*) AS sessions,
       round(pg_relation_size('sessions')::numeric / count(*), 1) AS session_heap_per_session,
       round(pg_indexes_size('sessions')::numeric / count(*), 1) AS session_indexes_per_session,
       round(pg_relation_size('sessions_token_hash_key')::numeric / count(*), 1) AS token_index_per_session,
       round(pg_total_relation_size('session_attributes')::numeric / count(*), 1) AS attributes_per_session,
       round((pg_total_relation_size('sessions') + pg_total_relation_size('session_attributes'))::numeric
             / count(*), 1) AS session_total_per_session,
       round((pg_total_relation_size('users') + pg_total_relation_size('user_attributes'))::numeric
             / count(*), 1) AS users_share_per_session,
       round(avg(pg_column_size(s.*)), 1) AS avg_session_tuple_bytes
FROM sessions s;
