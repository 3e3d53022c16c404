-- Foundation: extensions and a key/value table for node coordination.
-- Domain tables arrive with their features (users: 0002, events: 0003, ...).

CREATE TABLE IF NOT EXISTS server_meta (
    key text PRIMARY KEY,
    value jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
