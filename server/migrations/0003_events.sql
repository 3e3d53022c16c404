-- Durable per-user event streams (PROTOCOL §3).
--
-- user_streams.last_seq is the user's latest seq. Appending takes that row's
-- lock until the transaction ends, so a user's seqs commit strictly in order:
-- seq N+1 can never be visible while N is still uncommitted, and a reader that
-- has delivered up to N can read "seq > N" without ever skipping one.
CREATE TABLE user_streams (
    user_id uuid PRIMARY KEY,
    last_seq bigint NOT NULL CHECK (last_seq >= 0)
);

-- payload is the event exactly as sent on the JSON sub-protocol (seq included),
-- so replay sends stored bytes without re-encoding.
CREATE TABLE events (
    user_id uuid NOT NULL,
    seq bigint NOT NULL,
    type text NOT NULL,
    payload bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, seq)
);
CREATE INDEX events_created_at ON events (created_at);

-- Creating commands keyed by (user, scope, key) return their first result on retry.
CREATE TABLE idempotency_keys (
    user_id uuid NOT NULL,
    scope text NOT NULL,
    key text NOT NULL,
    result bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, scope, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
