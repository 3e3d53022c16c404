-- Accounts and push delivery (issue #14, step 2): verified e-mail, single-use account
-- tokens, closed (deleted) accounts; acks visible to every node; Web Push subscriptions,
-- notification preferences and the per-(notification, device) delivery record that makes
-- each push happen once across nodes and restarts.

-- --- accounts ----------------------------------------------------------------------------

ALTER TABLE users ADD COLUMN email_verified boolean NOT NULL DEFAULT false;
-- A deleted account keeps its row as a tombstone ('Deleted user', an address that can
-- never be mailed or log in) so the chat messages and sightings it sent keep a sender;
-- everything else of it is removed (server/auth/deletion.py).
ALTER TABLE users ADD COLUMN deleted_at timestamptz;

-- E-mail verification and password-reset tokens: 32 random bytes mailed as a link, only
-- their SHA-256 stored; single-use (used_at), expiring, bound to the address they were
-- mailed to.
CREATE TABLE account_tokens (
    token_hash bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose text NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    email text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz
);
CREATE INDEX account_tokens_user ON account_tokens (user_id, purpose);

-- --- acks --------------------------------------------------------------------------------

-- The highest seq any socket of the user has acked (PROTOCOL §4 `ack`), written by each
-- node in small batches. A table of its own rather than a column of user_streams: an
-- append holds the user_streams row lock until its transaction ends, and an ack flush
-- must never wait for (or hold up) a chat message.
CREATE TABLE stream_acks (
    user_id uuid PRIMARY KEY,
    acked_seq bigint NOT NULL CHECK (acked_seq >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- --- devices -----------------------------------------------------------------------------

-- Web Push devices keep their endpoint in `token` (unique per subscription) and the
-- subscription's keys here. Web Push rows from before this migration have no keys and
-- can never be pushed: they go (the browser registers again with its subscription).
DELETE FROM devices WHERE platform = 'webpush';
ALTER TABLE devices ADD COLUMN p256dh text CHECK (length(p256dh) <= 200);
ALTER TABLE devices ADD COLUMN auth text CHECK (length(auth) <= 200);
ALTER TABLE devices ADD CONSTRAINT devices_webpush_keys
    CHECK ((platform = 'webpush') = (p256dh IS NOT NULL AND auth IS NOT NULL));
DROP INDEX devices_user;
CREATE INDEX devices_user ON devices (user_id, created_at, id);

-- One row per user who changed something; absent = every kind pushed.
CREATE TABLE notification_preferences (
    user_id uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    muted_kinds text[] NOT NULL DEFAULT '{}' CHECK (cardinality(muted_kinds) <= 50),
    push boolean NOT NULL DEFAULT true,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- --- the push outbox -----------------------------------------------------------------------

-- One row per notification (written by `notify` in the change's transaction). The worker
-- claims due rows FOR UPDATE SKIP LOCKED, decides (acked, muted, push off, read,
-- superseded by a newer push of the same conversation, too old, no devices) and, in the
-- same transaction, either records why it skips (`outcome`) or writes one push_deliveries
-- row per device the user has *then* — so a device registered meanwhile is included.
--
-- awaits_ack: the user had a live socket when it was written. Such a row is due
-- PUSH_DELAY_S after created_at and is skipped if a socket acked `event_seq` by then; a
-- row for a user with no live socket is due at once. Two partial indexes, one per kind,
-- let the claim read exactly the due rows of each.
DROP INDEX push_outbox_pending;
ALTER TABLE push_outbox DROP COLUMN sent_at;
ALTER TABLE push_outbox DROP COLUMN attempts;
ALTER TABLE push_outbox ADD COLUMN event_seq bigint;
ALTER TABLE push_outbox ADD COLUMN awaits_ack boolean NOT NULL DEFAULT false;
ALTER TABLE push_outbox ADD COLUMN collapse_key text CHECK (length(collapse_key) <= 200);
ALTER TABLE push_outbox ADD COLUMN handled_at timestamptz;
ALTER TABLE push_outbox ADD COLUMN outcome text;
CREATE INDEX push_outbox_due_now ON push_outbox (created_at, id)
    WHERE handled_at IS NULL AND NOT awaits_ack;
CREATE INDEX push_outbox_due_later ON push_outbox (created_at, id)
    WHERE handled_at IS NULL AND awaits_ack;
CREATE INDEX push_outbox_collapse ON push_outbox (user_id, collapse_key, id)
    WHERE collapse_key IS NOT NULL;
CREATE INDEX push_outbox_handled ON push_outbox (handled_at) WHERE handled_at IS NOT NULL;

-- The delivery record: one per (notification, device), the primary key. A worker claims a
-- pending row by committing state 'sending' with a lease, calls the provider, and commits
-- the outcome (sent, gone, failed, dropped — or pending again with next_attempt_at for a
-- retry). The outcome update names the attempt it belongs to, so a worker whose lease ran
-- out cannot overwrite a newer attempt. A 'sending' row whose lease expired belongs to a
-- crashed worker and is claimed again (see docs/protocol.md, "Push delivery").
CREATE TABLE push_deliveries (
    outbox_id bigint NOT NULL REFERENCES push_outbox (id) ON DELETE CASCADE,
    device_id uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    state text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'sending', 'sent', 'gone', 'failed', 'dropped', 'skipped')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until timestamptz,
    provider text,
    status integer,
    reason text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (outbox_id, device_id)
);
CREATE INDEX push_deliveries_pending ON push_deliveries (next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX push_deliveries_leased ON push_deliveries (lease_until) WHERE state = 'sending';
CREATE INDEX push_deliveries_device ON push_deliveries (device_id);
