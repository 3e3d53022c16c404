-- Safety (issue #12, PROTOCOL §10.3): blocks between users, and reports for moderation.
--
-- A block is one row per (blocker, blocked); it applies in both directions: neither side
-- sees the other's pets, listings, posts, comments, live streams or presence, and neither
-- can message or apply to the other. The reverse index serves "blocked either way".

CREATE TABLE user_blocks (
    blocker_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (blocker_id, blocked_id),
    CHECK (blocker_id <> blocked_id)
);
CREATE INDEX user_blocks_blocked ON user_blocks (blocked_id, blocker_id);

-- A report of something a user could see. One open report per reporter and target
-- (the partial unique index); reports of one target feed one moderation queue item.
CREATE TABLE reports (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    reporter_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    target_kind text NOT NULL
        CHECK (target_kind IN ('user', 'post', 'comment', 'message', 'listing', 'live')),
    target_id uuid NOT NULL,
    target_owner_id uuid REFERENCES users (id) ON DELETE SET NULL,
    reason text NOT NULL CHECK (reason IN ('spam', 'harassment', 'nudity', 'violence', 'scam',
                                           'animal_welfare', 'other')),
    note text CHECK (length(note) <= 1000),
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    created_at timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz
);
CREATE UNIQUE INDEX reports_one_open ON reports (reporter_id, target_kind, target_id)
    WHERE status = 'open';
CREATE INDEX reports_target ON reports (target_kind, target_id, status);
CREATE INDEX reports_open_by_time ON reports (created_at, id) WHERE status = 'open';
