-- A login role per process kind, each with only the tables (and columns, and rows) its
-- code uses. Migrations stay with the owner: run this AS THE OWNER after `gateway db
-- migrate`, and again after every upgrade that adds a table (it starts each role from
-- no privileges, so it is safe to rerun):
--
--   psql "$OWNER_URL" -v ON_ERROR_STOP=1 \
--     -v ingest_password=... -v router_password=... -v outbound_password=... -v desk_password=... \
--     -f deploy/postgres/roles.sql
--
-- Who touches what (read from the code; docs/operations.md, "Database roles"):
--   ingest   web chat sockets (webchat_sessions, webchat_replies), a waiting person's place
--            in the queue (five columns of desk_conversations, no text, no handle), Masker 19
--            pharmacy sign-in (sessions and account_credentials, never the desk's rows),
--            the access log, delivery callbacks (sent_replies, reply_deliveries)
--   router   conversation_regions, auto_replies
--   outbound sent_replies, reply_deliveries, web chat replies
--   desk     the desk's tables, sessions, credentials, the access log, retention of all
-- Nobody but the owner may UPDATE the access log: it is append-only.
-- The roles are gw_ingest, gw_router, gw_outbound and gw_desk (`-v role_prefix=x` names
-- them x_ingest, ...: the tests' own, beside a deployment's on one server).

\if :{?role_prefix}
\else
\set role_prefix gw
\endif
\set ingest :role_prefix '_ingest'
\set router :role_prefix '_router'
\set outbound :role_prefix '_outbound'
\set desk :role_prefix '_desk'

SELECT format('CREATE ROLE %I LOGIN', name)
FROM unnest(ARRAY[:'ingest', :'router', :'outbound', :'desk']) AS name
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = name)
\gexec

ALTER ROLE :"ingest" LOGIN PASSWORD :'ingest_password';
ALTER ROLE :"router" LOGIN PASSWORD :'router_password';
ALTER ROLE :"outbound" LOGIN PASSWORD :'outbound_password';
ALTER ROLE :"desk" LOGIN PASSWORD :'desk_password';

BEGIN;

REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM :"ingest", :"router", :"outbound", :"desk";
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM :"ingest", :"router", :"outbound", :"desk";
GRANT USAGE ON SCHEMA public TO :"ingest", :"router", :"outbound", :"desk";
-- Every process checks at start that the schema is migrated (Alembic reads its version).
GRANT SELECT ON alembic_version TO :"ingest", :"router", :"outbound", :"desk";

-- ingest
GRANT SELECT, INSERT, UPDATE ON webchat_sessions TO :"ingest";
GRANT SELECT, DELETE ON webchat_replies TO :"ingest";
GRANT SELECT (conversation_id, team, status, urgent, waiting_since) ON desk_conversations TO :"ingest";
GRANT SELECT, INSERT, UPDATE, DELETE ON sessions, account_credentials TO :"ingest";
GRANT SELECT, INSERT, UPDATE ON audit_head TO :"ingest";
GRANT INSERT ON audit_log TO :"ingest";
GRANT SELECT ON sent_replies TO :"ingest";
GRANT SELECT, UPDATE ON reply_deliveries TO :"ingest";

-- router
GRANT SELECT, INSERT, UPDATE ON conversation_regions TO :"router";
GRANT SELECT, INSERT ON auto_replies TO :"router";

-- outbound
GRANT SELECT, INSERT ON sent_replies TO :"outbound";
GRANT SELECT, UPDATE ON reply_deliveries TO :"outbound";
GRANT SELECT, UPDATE ON webchat_sessions TO :"outbound";
GRANT SELECT, INSERT ON webchat_replies TO :"outbound";

-- desk: every table the gateway has, the access log without UPDATE
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"desk";
REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM :"desk";
REVOKE UPDATE ON audit_log FROM :"desk";

-- Sign-in rows: the ingest (Masker 19 pharmacies) never reads or writes the desk's, so
-- the process on the internet cannot mint a counsellor's session or read their second factor.
ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE account_credentials ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS pages_only ON sessions;
DROP POLICY IF EXISTS desk_all ON sessions;
DROP POLICY IF EXISTS pages_only ON account_credentials;
DROP POLICY IF EXISTS desk_all ON account_credentials;
CREATE POLICY pages_only ON sessions TO :"ingest" USING (realm <> 'desk') WITH CHECK (realm <> 'desk');
CREATE POLICY desk_all ON sessions TO :"desk" USING (true) WITH CHECK (true);
CREATE POLICY pages_only ON account_credentials TO :"ingest"
    USING (realm <> 'desk') WITH CHECK (realm <> 'desk');
CREATE POLICY desk_all ON account_credentials TO :"desk" USING (true) WITH CHECK (true);

COMMIT;
