-- Bulk-loads a realistic population into ssod's schema (run by measure.sh after
-- `ssod migrate`). psql variables: :sessions (N), :t0 (the clock's "now" for the load).
--
-- Mix, per N sessions (every row is live at :t0, the way a sweep every 60 s leaves it):
--   users               N / 5 (200k for 1M), Argon2id PHC hash of ssod's parameters (97 chars)
--   sessions            60 % of a user (uniform over the users), 40 % guests; created uniformly
--                       over the 12 h lifetime, last renewed in the hour before :t0, expiry one
--                       idle timeout (60 min) after that, capped at creation + 12 h
--   session_attributes  2.5 per session: "locale" (7 B, no expiry) on all; "csrf" (encrypted:
--                       12 B nonce + 24 B JSON + 16 B tag, key "k1", expires within 30 min) on
--                       all; "cart" (~300 B JSON, no expiry) on every other session
--   user_attributes     2 per user: "preferences" (~150 B JSON), "last_app" (~10 B)
-- Ids are UUIDv7-like (time-ordered, as ssod makes them), so primary keys grow at their right
-- edge. Session i's UST is capacity_ust(i), a well-formed UST derived from i, and its token
-- hash sha256 of that text, as ssod computes it: 32 random-looking bytes, so the token index
-- takes its inserts at random places, as in production, and a client that knows i (such as
-- `cargo bench --bench load`) can present the session's UST.

\set ON_ERROR_STOP on
\timing off

-- Also used by measure.sh's login script for new session ids.
CREATE FUNCTION capacity_v7(at timestamptz, seed bigint) RETURNS uuid LANGUAGE sql IMMUTABLE AS $$
  SELECT (lpad(to_hex((extract(epoch FROM at) * 1000)::bigint), 12, '0') || '7'
          || substr(md5(seed::text), 1, 3) || '8' || substr(md5(seed::text), 4, 15))::uuid
$$;

-- "ssod_ust_" and the URL-safe, unpadded base64 of sha256(i as 8 big-endian bytes).
CREATE FUNCTION capacity_ust(i bigint) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT 'ssod_ust_' || rtrim(translate(encode(sha256(int8send(i)), 'base64'), '+/', '-_'), '=')
$$;
CREATE FUNCTION capacity_token_hash(i bigint) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
  SELECT sha256(convert_to(capacity_ust(i), 'UTF8'))
$$;

INSERT INTO users (id, username, username_key, email, display_name, first_name, last_name,
                   approval_status, password_hash, created_at, last_login_at)
SELECT capacity_v7(:'t0'::timestamptz - interval '400 days' + u * interval '1 ms', u),
       'user' || u, 'user' || u, 'user' || u || '@example.com', 'User ' || u, 'First' || u, 'Last' || u,
       'approved',
       '$argon2id$v=19$m=19456,t=2,p=1$' || substr(md5(u::text), 1, 22) || '$'
         || substr(md5('h' || u) || md5('i' || u), 1, 43),
       :'t0'::timestamptz - interval '400 days' + u * interval '1 ms',
       :'t0'::timestamptz - interval '1 day'
FROM generate_series(1, :sessions / 5) AS u;

INSERT INTO sessions (id, token_hash, user_id, current_app, remote_addr, user_agent, created_at,
                      expires_at, last_renewed_at)
SELECT capacity_v7(created, i),
       capacity_token_hash(i),
       CASE WHEN i % 5 < 3 THEN capacity_v7(:'t0'::timestamptz - interval '400 days'
                                  + (1 + (hashint8(i) & 2147483647) % (:sessions / 5)) * interval '1 ms',
                                  1 + (hashint8(i) & 2147483647) % (:sessions / 5)) END,
       (ARRAY['portal', 'shop', 'mail', 'admin-console'])[1 + i % 4],
       CASE WHEN i % 10 = 0 THEN '2001:db8:' || to_hex(i % 65536) || '::' || to_hex(i % 4099)
            ELSE '198.' || (i % 200) || '.' || (i / 200 % 256) || '.' || (i % 253) END,
       (ARRAY['Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
              'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1',
              'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15',
              'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0'])[1 + i % 4],
       created,
       least(renewed + interval '60 min', created + interval '12 h'),
       renewed
FROM (SELECT i, created,
             greatest(created, :'t0'::timestamptz - random() * interval '60 min') AS renewed
      FROM (SELECT i, :'t0'::timestamptz - interval '12 h'
                      + i * (interval '12 h' / :sessions) - interval '1 ms' AS created
            FROM generate_series(1, :sessions) AS i) AS c) AS s
ORDER BY i;

INSERT INTO session_attributes (session_id, name, value, key_id, created_at, modified_at,
                                expires_at)
SELECT s.id, a.name, a.value, a.key_id, s.created_at, s.last_renewed_at, a.expires_at
FROM (SELECT id, created_at, last_renewed_at, row_number() OVER (ORDER BY id) AS i
      FROM sessions) AS s
CROSS JOIN LATERAL (VALUES
    ('locale', convert_to('"en-GB"', 'UTF8'), NULL::text, NULL::timestamptz),
    ('csrf', decode(md5('n' || s.i) || md5('c' || s.i) || md5('t' || s.i)
                    || substr(md5('u' || s.i), 1, 8), 'hex'),
     'k1', :'t0'::timestamptz + random() * interval '30 min'),
    ('cart', CASE WHEN s.i % 2 = 0 THEN convert_to(
        '{"items":[{"sku":"SKU-' || s.i || '","qty":1,"price":"19.99"},{"sku":"SKU-'
        || (s.i + 7) || '","qty":2,"price":"4.50"},{"sku":"SKU-' || (s.i + 13)
        || '","qty":1,"price":"129.00"}],"currency":"EUR","coupon":null,'
        || '"updated":"2026-11-30T11:00:00Z","shipping":{"country":"DE","method":"standard"},'
        || '"note":"leave at the door, please ring twice"}', 'UTF8') END,
     NULL, NULL)
) AS a (name, value, key_id, expires_at)
WHERE a.value IS NOT NULL
ORDER BY s.id, a.name;

INSERT INTO user_attributes (user_id, name, value, key_id, created_at, modified_at, expires_at)
SELECT u.id, a.name, convert_to(a.value, 'UTF8'), NULL, u.created_at, u.created_at, NULL
FROM users u
CROSS JOIN LATERAL (VALUES
    ('last_app', '"portal"'),
    ('preferences', '{"theme":"dark","language":"en-GB","timezone":"Europe/Berlin",'
                    || '"newsletter":false,"density":"compact","shortcuts":["g i","g s"]}')
) AS a (name, value)
ORDER BY u.id, a.name;

VACUUM (ANALYZE) users, sessions, session_attributes, user_attributes;
