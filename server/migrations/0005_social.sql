-- Social (issue #6): pets, discovery preferences, swipes, matches, conversations,
-- messages, the notification inbox, push devices and the push outbox.
--
-- Distances are computed with plain great-circle (haversine) SQL over lat/lng;
-- a btree on (lat, lng) serves the bounding-box prefilter. No cube/earthdistance:
-- not every PostgreSQL we run on ships them.

CREATE TABLE pets (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 60),
    species text NOT NULL CHECK (species IN ('dog', 'cat', 'rabbit', 'bird', 'other')),
    breed text CHECK (length(breed) BETWEEN 1 AND 60),
    sex text CHECK (sex IN ('male', 'female', 'unknown')),
    birth_date date,
    bio text CHECK (length(bio) <= 1000),
    photo_ids uuid[] NOT NULL DEFAULT '{}' CHECK (cardinality(photo_ids) <= 10),
    lat double precision CHECK (lat BETWEEN -90 AND 90),
    lng double precision CHECK (lng BETWEEN -180 AND 180),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((lat IS NULL) = (lng IS NULL))
);
CREATE INDEX pets_owner ON pets (owner_id, created_at);
CREATE INDEX pets_lat_lng ON pets (lat, lng) WHERE lat IS NOT NULL;

-- One row per user; absent = defaults (any species, no age bounds, 50 km).
CREATE TABLE preferences (
    user_id uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    species text[] NOT NULL DEFAULT '{}',
    min_age_years integer CHECK (min_age_years BETWEEN 0 AND 40),
    max_age_years integer CHECK (max_age_years BETWEEN 0 AND 40),
    max_distance_km integer NOT NULL DEFAULT 50 CHECK (max_distance_km BETWEEN 1 AND 500),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (min_age_years IS NULL OR max_age_years IS NULL OR min_age_years <= max_age_years)
);

-- A swipe is final: the primary key makes a repeat a no-op.
CREATE TABLE swipes (
    pet_id uuid NOT NULL REFERENCES pets (id) ON DELETE CASCADE,
    target_pet_id uuid NOT NULL REFERENCES pets (id) ON DELETE CASCADE,
    direction text NOT NULL CHECK (direction IN ('like', 'pass')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pet_id, target_pet_id),
    CHECK (pet_id <> target_pet_id)
);
-- "Did the target already like me?" is a primary-key lookup on the reverse pair.

CREATE TABLE conversations (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at timestamptz NOT NULL DEFAULT now(),
    last_activity_at timestamptz NOT NULL DEFAULT now(),
    last_message_id uuid,
    closed_at timestamptz
);

-- One match per unordered pet pair, stored ordered (pet_a < pet_b): the unique
-- key is what makes "both liked at the same instant on two nodes" produce one
-- match even if the pair lock were ever bypassed.
CREATE TABLE matches (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    pet_a uuid NOT NULL REFERENCES pets (id) ON DELETE CASCADE,
    pet_b uuid NOT NULL REFERENCES pets (id) ON DELETE CASCADE,
    user_a uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_b uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    conversation_id uuid NOT NULL UNIQUE REFERENCES conversations (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    unmatched_at timestamptz,
    unmatched_by uuid,
    CHECK (pet_a < pet_b),
    UNIQUE (pet_a, pet_b)
);
CREATE INDEX matches_user_a ON matches (user_a, created_at DESC) WHERE unmatched_at IS NULL;
CREATE INDEX matches_user_b ON matches (user_b, created_at DESC) WHERE unmatched_at IS NULL;

CREATE TABLE conversation_members (
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Read mark: every message with pos <= last_read_pos is read.
    last_read_pos bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX conversation_members_user ON conversation_members (user_id);

CREATE TABLE messages (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Global order; paging and read marks use it (timestamps can tie).
    pos bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    sender_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_msg_id text NOT NULL,
    body text NOT NULL CHECK (length(body) <= 4000),
    attachment_ids uuid[] NOT NULL DEFAULT '{}' CHECK (cardinality(attachment_ids) <= 10),
    created_at timestamptz NOT NULL DEFAULT now(),
    edited_at timestamptz,
    deleted_at timestamptz
);
CREATE INDEX messages_conversation_pos ON messages (conversation_id, pos DESC);

-- The one inbox for every user-facing happening.
CREATE TABLE notifications (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (length(kind) BETWEEN 1 AND 64),
    title text NOT NULL,
    body text NOT NULL,
    data jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    read_at timestamptz
);
CREATE INDEX notifications_user ON notifications (user_id, created_at DESC, id DESC);
CREATE INDEX notifications_user_unread ON notifications (user_id, created_at DESC, id DESC)
    WHERE read_at IS NULL;

-- Push targets. A token belongs to one user: the newest to register it.
CREATE TABLE devices (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    platform text NOT NULL CHECK (platform IN ('fcm', 'apns', 'webpush')),
    token text NOT NULL CHECK (length(token) BETWEEN 1 AND 4096),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (platform, token)
);
CREATE INDEX devices_user ON devices (user_id);

-- Notifications to push because their user had no live connection when they
-- were written. A later issue's sender claims rows (FOR UPDATE SKIP LOCKED),
-- resolves the user's devices at send time and sets sent_at.
CREATE TABLE push_outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id uuid NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0,
    sent_at timestamptz
);
CREATE INDEX push_outbox_pending ON push_outbox (created_at) WHERE sent_at IS NULL;
