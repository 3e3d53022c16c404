-- Live streaming (issue #15, PROTOCOL §10.5): one row per stream. Chat, reactions and
-- room membership are ephemeral (Redis / the nodes), never stored here.
--
-- One live stream per host: the partial unique index refuses a second one even when
-- two live.start commands race on two nodes. viewer_count is a snapshot the nodes'
-- sweep writes (live.list sorts by it); the exact count lives in room presence.
-- host_away_since is set by the first sweep that finds the host without a socket
-- anywhere and cleared when they are back; LIVE_HOST_GRACE_S after it the stream ends.

CREATE TABLE live_streams (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    host_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    pet_id uuid REFERENCES pets (id) ON DELETE SET NULL,
    title text NOT NULL CHECK (length(title) BETWEEN 1 AND 120),
    status text NOT NULL DEFAULT 'live' CHECK (status IN ('live', 'ended')),
    media text NOT NULL CHECK (media IN ('p2p', 'livekit')),
    viewer_count integer NOT NULL DEFAULT 0 CHECK (viewer_count >= 0),
    started_at timestamptz NOT NULL DEFAULT now(),
    ended_at timestamptz,
    ended_reason text CHECK (ended_reason IN ('host', 'admin', 'host_gone', 'media',
                                              'moderation')),
    host_away_since timestamptz,
    CHECK ((status = 'ended') = (ended_at IS NOT NULL))
);

CREATE UNIQUE INDEX live_streams_one_per_host ON live_streams (host_id) WHERE status = 'live';
-- live.list: most viewers first, keyset on (viewer_count, id).
CREATE INDEX live_streams_by_viewers ON live_streams (viewer_count DESC, id DESC)
    WHERE status = 'live';
